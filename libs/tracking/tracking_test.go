package tracking_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/libs/tracking"
)

const (
	secretA = "tracking-secret-a-0123456789abcdefghijklmnop"
	secretB = "tracking-secret-b-0123456789abcdefghijklmnop"
	target  = "https://shop.example.com/offer?id=42&utm_source=herald#top"
)

func newMessage() tracking.Message {
	return tracking.Message{
		CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New(),
		CampaignID: uuid.New(), RecipientID: uuid.New(),
	}
}

func newKeys(t *testing.T, current string, previous ...string) *tracking.Keys {
	t.Helper()
	k, err := tracking.NewKeys(current, previous...)
	require.NoError(t, err)
	return k
}

var enc = base64.RawURLEncoding

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	k := newKeys(t, secretA)
	m := newMessage()
	for _, tc := range []struct {
		purpose tracking.Purpose
		url     string
	}{
		{tracking.PurposeOpen, ""},
		{tracking.PurposeClick, target},
		{tracking.PurposeClick, "http://EXAMPLE.com"},
		{tracking.PurposeUnsubscribe, ""},
		{tracking.PurposeMessage, ""},
	} {
		tok, err := k.Sign(m, tc.purpose, tc.url)
		require.NoError(t, err)
		require.NotContains(t, tok, "=", "unpadded")
		require.NotContains(t, tok, "/")
		require.NotContains(t, tok, "+")
		got, err := k.Verify(tok, tc.purpose)
		require.NoError(t, err, tc.purpose.String())
		require.Equal(t, tracking.Token{Message: m, Purpose: tc.purpose, URL: tc.url}, got)
	}
}

func TestSignRefusesBadInput(t *testing.T) {
	t.Parallel()
	k := newKeys(t, secretA)
	m := newMessage()
	for _, bad := range []string{
		"", "javascript:alert(1)", "data:text/html,hi", "ftp://example.com/x", "//example.com/x",
		"/relative/path", "https://", "https://user:pass@example.com/", "https://bank.example@evil.example/",
		"https://example.com/a b", "https://example.com/\r\nSet-Cookie:x", "https://example.com/\t",
		"mailto:a@example.com", "https:example.com", "https://example.com/" + strings.Repeat("a", tracking.MaxURLLen),
	} {
		_, err := k.Sign(m, tracking.PurposeClick, bad)
		require.Error(t, err, "%q", bad)
	}
	_, err := k.Sign(m, tracking.PurposeOpen, target)
	require.Error(t, err, "an open token carries no URL")
	_, err = k.Sign(m, tracking.Purpose(9), "")
	require.Error(t, err)
	for i := range 5 {
		mm := m
		ids := []*uuid.UUID{&mm.CompanyID, &mm.WorkspaceID, &mm.DomainID, &mm.CampaignID, &mm.RecipientID}
		*ids[i] = uuid.Nil
		_, err := k.Sign(mm, tracking.PurposeOpen, "")
		require.Error(t, err, "id %d missing", i)
	}
}

func TestNewKeysRefusesWeakSecrets(t *testing.T) {
	t.Parallel()
	_, err := tracking.NewKeys("short")
	require.Error(t, err)
	_, err = tracking.NewKeys(secretA, "short")
	require.Error(t, err)
	_, err = tracking.NewKeys(secretA, secretA)
	require.Error(t, err, "the previous secret must differ")
	_, err = tracking.NewKeys(secretA, "")
	require.NoError(t, err, "an empty previous secret is no previous secret")
}

// TestEveryBitFlipIsInvalid flips every bit of every byte of a click token (version, key id,
// purpose, each id, the URL and the tag) and expects each result to be invalid.
func TestEveryBitFlipIsInvalid(t *testing.T) {
	t.Parallel()
	k := newKeys(t, secretA)
	tok, err := k.Sign(newMessage(), tracking.PurposeClick, target)
	require.NoError(t, err)
	raw, err := enc.DecodeString(tok)
	require.NoError(t, err)
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			for _, p := range []tracking.Purpose{tracking.PurposeOpen, tracking.PurposeClick, tracking.PurposeUnsubscribe, tracking.PurposeMessage} {
				_, err := k.Verify(enc.EncodeToString(b), p)
				require.ErrorIs(t, err, tracking.ErrInvalid, "byte %d bit %d purpose %s", i, bit, p)
			}
		}
	}
}

func TestTruncatedOrExtendedIsInvalid(t *testing.T) {
	t.Parallel()
	k := newKeys(t, secretA)
	tok, err := k.Sign(newMessage(), tracking.PurposeClick, target)
	require.NoError(t, err)
	raw, err := enc.DecodeString(tok)
	require.NoError(t, err)
	for n := range len(raw) {
		_, err := k.Verify(enc.EncodeToString(raw[:n]), tracking.PurposeClick)
		require.ErrorIs(t, err, tracking.ErrInvalid, "first %d bytes", n)
	}
	for n := range len(tok) {
		_, err := k.Verify(tok[:n], tracking.PurposeClick)
		require.ErrorIs(t, err, tracking.ErrInvalid, "first %d characters", n)
	}
	_, err = k.Verify(enc.EncodeToString(append(raw, 0)), tracking.PurposeClick)
	require.ErrorIs(t, err, tracking.ErrInvalid, "a byte appended")
	_, err = k.Verify(tok+"A", tracking.PurposeClick)
	require.ErrorIs(t, err, tracking.ErrInvalid)
	_, err = k.Verify(tok+"=", tracking.PurposeClick)
	require.ErrorIs(t, err, tracking.ErrInvalid, "padding")
	_, err = k.Verify(strings.Repeat("A", tracking.MaxTokenLen+4), tracking.PurposeClick)
	require.ErrorIs(t, err, tracking.ErrInvalid, "too long")
	_, err = k.Verify("not base64!", tracking.PurposeClick)
	require.ErrorIs(t, err, tracking.ErrInvalid)
}

// TestSwappedFieldsAreInvalid moves authentic parts between tokens: another URL under a
// valid tag, another message's ids, a token of another purpose.
func TestSwappedFieldsAreInvalid(t *testing.T) {
	t.Parallel()
	k := newKeys(t, secretA)
	m := newMessage()
	click, err := k.Sign(m, tracking.PurposeClick, target)
	require.NoError(t, err)
	raw, err := enc.DecodeString(click)
	require.NoError(t, err)

	// The same token with the URL swapped for an attacker's, of the same length and longer.
	const header = 1 + 4 + 1 + 80
	tag := raw[len(raw)-16:]
	for _, evil := range []string{"https://evil.example.com/offer?id=42&utm_source=herald#top"[:len(target)], "https://evil.example/"} {
		b := append(append(append([]byte(nil), raw[:header]...), evil...), tag...)
		_, err := k.Verify(enc.EncodeToString(b), tracking.PurposeClick)
		require.ErrorIs(t, err, tracking.ErrInvalid, "URL swapped for %q", evil)
	}

	// Another message's ids under this token's tag.
	other, err := k.Sign(newMessage(), tracking.PurposeClick, target)
	require.NoError(t, err)
	otherRaw, err := enc.DecodeString(other)
	require.NoError(t, err)
	mixed := append(append(append([]byte(nil), otherRaw[:header]...), target...), tag...)
	_, err = k.Verify(enc.EncodeToString(mixed), tracking.PurposeClick)
	require.ErrorIs(t, err, tracking.ErrInvalid)

	// Valid tokens used for another purpose.
	for _, p := range []tracking.Purpose{tracking.PurposeOpen, tracking.PurposeUnsubscribe, tracking.PurposeMessage} {
		tok, err := k.Sign(m, p, "")
		require.NoError(t, err)
		for _, q := range []tracking.Purpose{tracking.PurposeOpen, tracking.PurposeClick, tracking.PurposeUnsubscribe, tracking.PurposeMessage} {
			_, err := k.Verify(tok, q)
			if p == q {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tracking.ErrInvalid, "%s token used as %s", p, q)
			}
		}
		_, err = k.Verify(click, p)
		require.ErrorIs(t, err, tracking.ErrInvalid, "click token used as %s", p)
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	m := newMessage()
	old := newKeys(t, secretA)
	tok, err := old.Sign(m, tracking.PurposeOpen, "")
	require.NoError(t, err)

	// After the rotation: B signs, A is still accepted.
	rotated := newKeys(t, secretB, secretA)
	got, err := rotated.Verify(tok, tracking.PurposeOpen)
	require.NoError(t, err)
	require.Equal(t, m, got.Message)
	fresh, err := rotated.Sign(m, tracking.PurposeOpen, "")
	require.NoError(t, err)
	require.NotEqual(t, tok, fresh)
	_, err = newKeys(t, secretB).Verify(fresh, tracking.PurposeOpen)
	require.NoError(t, err, "signed with the new secret")

	// Once A is removed, its tokens are invalid; a stranger's key never verified anything.
	_, err = newKeys(t, secretB).Verify(tok, tracking.PurposeOpen)
	require.ErrorIs(t, err, tracking.ErrInvalid)
	_, err = old.Verify(fresh, tracking.PurposeOpen)
	require.ErrorIs(t, err, tracking.ErrInvalid, "signed with a secret the verifier does not know")

	// A token claiming a known key id but tagged with another secret.
	forged := newKeys(t, "forged-secret-0123456789abcdefghijklmnopq")
	ftok, err := forged.Sign(m, tracking.PurposeOpen, "")
	require.NoError(t, err)
	fraw, err := enc.DecodeString(ftok)
	require.NoError(t, err)
	kid := tracking.KeyID(secretB)
	copy(fraw[1:5], kid[:])
	_, err = rotated.Verify(enc.EncodeToString(fraw), tracking.PurposeOpen)
	require.ErrorIs(t, err, tracking.ErrInvalid)
}

func TestEvent(t *testing.T) {
	t.Parallel()
	m := newMessage()
	at := time.Date(2026, 11, 26, 10, 0, 0, 100_000_000, time.UTC)
	open := tracking.Token{Message: m, Purpose: tracking.PurposeOpen}
	id := func(tok tracking.Token, at time.Time) uuid.UUID { id, _ := tracking.Event(tok, at); return id }

	id1, at1 := tracking.Event(open, at)
	id2, at2 := tracking.Event(open, at.Add(800*time.Millisecond))
	require.Equal(t, id1, id2, "same second, same event")
	require.Equal(t, at.Truncate(time.Second), at1, "the time is the start of the bucket")
	require.Equal(t, at1, at2, "a retry carries the same id and time")
	require.NotEqual(t, id(open, at), id(open, at.Add(time.Second)), "next second, another event")

	click := tracking.Token{Message: m, Purpose: tracking.PurposeClick, URL: target}
	other := click
	other.URL = "https://shop.example.com/other"
	require.NotEqual(t, id(click, at), id(other, at), "two links, two clicks")
	require.NotEqual(t, id(click, at), id(open, at))

	unsub := tracking.Token{Message: m, Purpose: tracking.PurposeUnsubscribe}
	uid1, uat1 := tracking.Event(unsub, at)
	uid2, uat2 := tracking.Event(unsub, at.Add(50*time.Minute))
	require.Equal(t, uid1, uid2, "one unsubscribe per message and hour")
	require.Equal(t, uat1, uat2)
	require.Equal(t, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), uat1)
	another := unsub
	another.RecipientID = uuid.New()
	require.NotEqual(t, id(unsub, at), id(another, at))

	msg := tracking.Token{Message: m, Purpose: tracking.PurposeMessage}
	require.Equal(t, tracking.ProviderEventID(msg, "bounce", "p-1"), tracking.ProviderEventID(msg, "bounce", "p-1"))
	require.NotEqual(t, tracking.ProviderEventID(msg, "bounce", "p-1"), tracking.ProviderEventID(msg, "bounce", "p-2"))
	require.NotEqual(t, tracking.ProviderEventID(msg, "bounce", "p-1"), tracking.ProviderEventID(msg, "complaint", "p-1"))
}

// FuzzVerify: no input panics, and whatever verifies is a token the keys signed: signing its
// content again gives the same text.
func FuzzVerify(f *testing.F) {
	k, err := tracking.NewKeys(secretA)
	require.NoError(f, err)
	m := newMessage()
	for _, p := range []tracking.Purpose{tracking.PurposeOpen, tracking.PurposeUnsubscribe, tracking.PurposeMessage} {
		tok, err := k.Sign(m, p, "")
		require.NoError(f, err)
		f.Add(tok)
	}
	tok, err := k.Sign(m, tracking.PurposeClick, target)
	require.NoError(f, err)
	f.Add(tok)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []tracking.Purpose{tracking.PurposeOpen, tracking.PurposeClick, tracking.PurposeUnsubscribe, tracking.PurposeMessage} {
			got, err := k.Verify(s, p)
			if err != nil {
				continue
			}
			again, err := k.Sign(got.Message, got.Purpose, got.URL)
			require.NoError(t, err)
			require.Equal(t, s, again)
		}
	})
}
