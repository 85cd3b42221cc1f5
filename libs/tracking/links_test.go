package tracking_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/libs/tracking"
)

func TestLinks(t *testing.T) {
	t.Parallel()
	k := newKeys(t, secretA)
	l, err := tracking.NewLinks("https://t.example.com/", k)
	require.NoError(t, err)
	m := newMessage()

	open, err := l.Open(m)
	require.NoError(t, err)
	tok, ok := strings.CutPrefix(open, "https://t.example.com"+tracking.PathOpen)
	require.True(t, ok, open)
	got, err := k.Verify(tok, tracking.PurposeOpen)
	require.NoError(t, err)
	require.Equal(t, m, got.Message)

	click, err := l.Click(m, target)
	require.NoError(t, err)
	tok, ok = strings.CutPrefix(click, "https://t.example.com"+tracking.PathClick)
	require.True(t, ok, click)
	got, err = k.Verify(tok, tracking.PurposeClick)
	require.NoError(t, err)
	require.Equal(t, target, got.URL)
	_, err = url.Parse(click)
	require.NoError(t, err)

	_, err = l.Click(m, "javascript:alert(1)")
	require.Error(t, err, "never an open redirect")

	ref, err := l.MessageRef(m)
	require.NoError(t, err)
	got, err = k.Verify(ref, tracking.PurposeMessage)
	require.NoError(t, err)
	require.Equal(t, m, got.Message)

	prefixed, err := tracking.NewLinks("https://example.com/herald", k)
	require.NoError(t, err)
	u, err := prefixed.Unsubscribe(m)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u, "https://example.com/herald"+tracking.PathUnsubscribe), u)

	for _, bad := range []string{"", "t.example.com", "ftp://t.example.com", "https://t.example.com/?a=b", "https://u:p@t.example.com"} {
		_, err := tracking.NewLinks(bad, k)
		require.Error(t, err, "%q", bad)
	}
	_, err = tracking.NewLinks("https://t.example.com", nil)
	require.Error(t, err)
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	k := newKeys(t, secretA)
	m := newMessage()
	l, err := tracking.NewLinks("https://t.example.com", k)
	require.NoError(t, err)

	h, err := l.Headers(m, "")
	require.NoError(t, err)
	require.Equal(t, "List-Unsubscribe=One-Click", h.ListUnsubscribePost)
	require.True(t, strings.HasPrefix(h.ListUnsubscribe, "<https://t.example.com"+tracking.PathUnsubscribe), h.ListUnsubscribe)
	require.True(t, strings.HasSuffix(h.ListUnsubscribe, ">"))
	tok := strings.TrimSuffix(strings.TrimPrefix(h.ListUnsubscribe, "<https://t.example.com"+tracking.PathUnsubscribe), ">")
	got, err := k.Verify(tok, tracking.PurposeUnsubscribe)
	require.NoError(t, err)
	require.Equal(t, m, got.Message)

	h, err = l.Headers(m, "Unsubscribe@Example.com")
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(h.ListUnsubscribe, ">, <mailto:unsubscribe@example.com?subject=unsubscribe>"), h.ListUnsubscribe)
	_, err = l.Headers(m, "not an address")
	require.Error(t, err)

	// RFC 8058 one-click needs an https URI: over http only the plain header is set.
	plain, err := tracking.NewLinks("http://localhost:3001", k)
	require.NoError(t, err)
	h, err = plain.Headers(m, "")
	require.NoError(t, err)
	require.Empty(t, h.ListUnsubscribePost)
	require.NotEmpty(t, h.ListUnsubscribe)
}

func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"events":[]}`)
	v, err := tracking.NewWebhookVerifier(5*time.Minute, secretB, secretA)
	require.NoError(t, err)

	ts, sig := tracking.SignWebhook(secretB, now, body)
	require.NoError(t, v.Verify(ts, sig, body, now))
	require.NoError(t, v.Verify(ts, sig, body, now.Add(5*time.Minute)), "at the edge of the window")
	ts, sigOld := tracking.SignWebhook(secretA, now, body)
	require.NoError(t, v.Verify(ts, sigOld, body, now), "the previous secret during a rotation")
	require.NoError(t, v.Verify(ts, "v1=00,"+sigOld, body, now), "several signatures, one valid")

	require.ErrorIs(t, v.Verify(ts, sig, []byte(`{"events":[{}]}`), now), tracking.ErrWebhookSignature, "another body")
	require.ErrorIs(t, v.Verify(ts, "", body, now), tracking.ErrWebhookSignature)
	require.ErrorIs(t, v.Verify(ts, strings.TrimPrefix(sig, "v1="), body, now), tracking.ErrWebhookSignature, "no scheme")
	require.ErrorIs(t, v.Verify(ts, sig[:len(sig)-2], body, now), tracking.ErrWebhookSignature, "truncated")
	_, stranger := tracking.SignWebhook("stranger-secret-0123456789abcdefghijklmno", now, body)
	require.ErrorIs(t, v.Verify(ts, stranger, body, now), tracking.ErrWebhookSignature)

	// The timestamp is signed: moving it breaks the signature; an old request is a replay.
	later, _ := tracking.SignWebhook(secretB, now.Add(time.Second), body)
	require.ErrorIs(t, v.Verify(later, sig, body, now), tracking.ErrWebhookSignature)
	require.ErrorIs(t, v.Verify(ts, sig, body, now.Add(5*time.Minute+time.Second)), tracking.ErrWebhookStale)
	require.ErrorIs(t, v.Verify(ts, sig, body, now.Add(-5*time.Minute-time.Second)), tracking.ErrWebhookStale)
	for _, bad := range []string{"", "abc", "+" + ts, "0" + ts, ts + ".0"} {
		require.ErrorIs(t, v.Verify(bad, sig, body, now), tracking.ErrWebhookStale, "%q", bad)
	}

	_, err = tracking.NewWebhookVerifier(time.Minute, "short")
	require.Error(t, err)
	_, err = tracking.NewWebhookVerifier(0, secretA)
	require.Error(t, err)
	_, err = tracking.NewWebhookVerifier(time.Minute, secretA, "short")
	require.Error(t, err)
}
