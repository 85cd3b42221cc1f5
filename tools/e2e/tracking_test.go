package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/libs/tracking"
)

// trackingUA is the user agent of the tests' "mail client".
const trackingUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko)"

// trackingClient sends requests to the public tracking routes like a mail client: no
// credential, redirects not followed. Answers are recorded for the hygiene check.
type trackingClient struct {
	t    *testing.T
	http *http.Client
}

func newTrackingClient(t *testing.T) *trackingClient {
	t.Helper()
	c := newRecordingClient(30 * time.Second)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	t.Cleanup(c.CloseIdleConnections)
	return &trackingClient{t: t, http: c}
}

type trackingAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (c *trackingClient) do(method, url, contentType string, body []byte, header map[string]string) trackingAnswer {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("User-Agent", trackingUA)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return trackingAnswer{status: resp.StatusCode, header: resp.Header, body: raw}
}

// storedEvent is an engagement event as events-ingest stored it.
type storedEvent struct {
	typ, url, ip, userAgent string
}

// storedEvents reads the events of a campaign from the database, as a superuser (the
// tracking routes answer nothing a test could count them by). While events move to
// events.engagement_events (an expand/contract change), an event may be in either table or
// both: it counts once.
func storedEvents(t *testing.T, s *system, campaignID string) []storedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.deps.databaseURL)
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(ctx))
	const cols = `id, type, url, ip, user_agent FROM events.%s WHERE campaign_id = $1`
	from := fmt.Sprintf("SELECT "+cols, "email_events")
	var partitioned bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT to_regclass('events.engagement_events') IS NOT NULL`).Scan(&partitioned))
	if partitioned {
		from += " UNION ALL SELECT " + fmt.Sprintf(cols, "engagement_events")
	}
	rows, err := conn.Query(ctx, `SELECT DISTINCT ON (id) type, url, ip, user_agent FROM (`+from+`) e ORDER BY id`, campaignID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedEvent, error) {
		var e storedEvent
		err := r.Scan(&e.typ, &e.url, &e.ip, &e.userAgent)
		return e, err
	})
	require.NoError(t, err)
	return out
}

// newTrackedRecipient creates a recipient with a unique address and nothing else.
func newTrackedRecipient(t *testing.T, a *api, tn tenant) recipient {
	t.Helper()
	var got recipientResponse
	code, raw := a.do(http.MethodPost, tn.path("/recipients"), tn.token,
		map[string]any{"email": "tracked+" + uuid.NewString()[:8] + "@example.com"}, &got)
	require.Equal(t, http.StatusOK, code, "create recipient: %s", raw)
	return got.Recipient
}

func countType(evs []storedEvent, typ string) int {
	n := 0
	for _, e := range evs {
		if e.typ == typ {
			n++
		}
	}
	return n
}

// TestTrackingLinks follows a recipient's engagement through real processes: the open pixel
// and a click are recorded once each, the click redirects to exactly the signed URL, the
// unsubscribe page never unsubscribes on GET, the RFC 8058 one-click POST (sent twice)
// records one unsubscribe that the worker turns into the recipient's status, and tampered or
// foreign tokens record nothing.
func TestTrackingLinks(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)
	r := newTrackedRecipient(t, a, tn)
	c := createCampaign(t, a, tn)
	keys, err := tracking.NewKeys(watch.trackingSecret)
	require.NoError(t, err)
	links, err := tracking.NewLinks(s.gateway, keys)
	require.NoError(t, err)
	m := tracking.Message{
		CompanyID: tn.company, WorkspaceID: tn.workspace, DomainID: tn.domain,
		CampaignID: uuid.MustParse(c.ID), RecipientID: uuid.MustParse(r.ID),
	}
	const target = "https://shop.example.com/spring?utm_campaign=launch&ref=a%2Fb#offer"
	open, err := links.Open(m)
	require.NoError(t, err)
	click, err := links.Click(m, target)
	require.NoError(t, err)
	unsub, err := links.Unsubscribe(m)
	require.NoError(t, err)
	tc := newTrackingClient(t)

	// Tampered and foreign tokens first: 404, and (checked at the end) nothing recorded.
	stranger, err := tracking.NewKeys("a-secret-of-another-deployment-0123456789")
	require.NoError(t, err)
	foreign, err := tracking.NewLinks(s.gateway, stranger)
	require.NoError(t, err)
	foreignClick, err := foreign.Click(m, "https://evil.example/")
	require.NoError(t, err)
	tamper := func(u string) string {
		i := len(u) - 5
		ch := byte('A')
		if u[i] == 'A' {
			ch = 'B'
		}
		return u[:i] + string(ch) + u[i+1:]
	}
	for _, u := range []string{tamper(open), tamper(click), foreignClick, strings.Replace(click, tracking.PathClick, tracking.PathOpen, 1)} {
		ans := tc.do(http.MethodGet, u, "", nil, nil)
		require.Equal(t, http.StatusNotFound, ans.status, u)
		require.Empty(t, ans.header.Get("Location"))
		requireError(t, ans.body, "not_found")
	}
	ans := tc.do(http.MethodPost, tamper(unsub), "application/x-www-form-urlencoded", []byte(tracking.OneClickBody), nil)
	require.Equal(t, http.StatusNotFound, ans.status)

	// The pixel, loaded twice in a row: one open when both loads fall in the same second (of
	// the gateway's clock, which stamps each load somewhere between the request and its
	// answer), two when they fall in two.
	var sent, answered [2]time.Time
	for i := range 2 {
		sent[i] = time.Now()
		ans = tc.do(http.MethodGet, open, "", nil, nil)
		answered[i] = time.Now()
		require.Equal(t, http.StatusOK, ans.status)
		require.Equal(t, "image/gif", ans.header.Get("Content-Type"))
		require.Contains(t, ans.header.Get("Cache-Control"), "no-store")
		require.Len(t, ans.body, 43)
	}
	second := func(t time.Time) time.Time { return t.Truncate(time.Second) }
	sameSecond := second(sent[0]).Equal(second(answered[1]))
	twoSeconds := second(answered[0]).Before(second(sent[1]))

	// The click: 302 to exactly the signed URL.
	ans = tc.do(http.MethodGet, click, "", nil, nil)
	require.Equal(t, http.StatusFound, ans.status)
	require.Equal(t, target, ans.header.Get("Location"))

	// GET of the unsubscribe link shows the confirmation page and changes nothing.
	ans = tc.do(http.MethodGet, unsub, "", nil, nil)
	require.Equal(t, http.StatusOK, ans.status)
	require.Contains(t, string(ans.body), `<form method="post">`)
	require.Zero(t, countType(storedEvents(t, s, c.ID), "unsubscribe"), "a GET never unsubscribes")
	var got recipientResponse
	code, raw := a.do(http.MethodGet, tn.path("/recipients/"+r.ID), tn.token, nil, &got)
	require.Equal(t, http.StatusOK, code, "get recipient: %s", raw)
	require.Equal(t, "RECIPIENT_STATUS_SUBSCRIBED", got.Recipient.Status)

	// RFC 8058 one-click, twice (a mail client's retry).
	unsubStart := time.Now()
	for range 2 {
		ans = tc.do(http.MethodPost, unsub, "application/x-www-form-urlencoded", []byte(tracking.OneClickBody), nil)
		require.Equal(t, http.StatusOK, ans.status, "%s", ans.body)
	}
	sameHour := time.Now().Truncate(time.Hour).Equal(unsubStart.Truncate(time.Hour))

	waitFor(t, 30*time.Second, "the recipient to be unsubscribed", func() (bool, string) {
		code, raw := a.do(http.MethodGet, tn.path("/recipients/"+r.ID), tn.token, nil, &got)
		require.Equal(t, http.StatusOK, code, "get recipient: %s", raw)
		return got.Recipient.Status == "RECIPIENT_STATUS_UNSUBSCRIBED", "status " + got.Recipient.Status
	})
	require.Equal(t, "unsubscribe", got.Recipient.StatusReason)

	evs := storedEvents(t, s, c.ID)
	opens := countType(evs, "open")
	switch {
	case sameSecond:
		require.Equal(t, 1, opens, "two loads within one second are one open: %+v", evs)
	case twoSeconds:
		require.Equal(t, 2, opens, "two loads in two seconds are two opens: %+v", evs)
	default:
		// A second boundary passed during the loads, maybe between them, maybe during one.
		require.Contains(t, []int{1, 2}, opens, "%+v", evs)
	}
	require.Equal(t, 1, countType(evs, "click"), "%+v", evs)
	if sameHour {
		require.Equal(t, 1, countType(evs, "unsubscribe"), "%+v", evs)
	}
	require.Len(t, evs, opens+1+countType(evs, "unsubscribe"), "nothing else was recorded (the tampered requests): %+v", evs)
	for _, e := range evs {
		require.Equal(t, trackingUA, e.userAgent)
		require.Equal(t, "127.0.0.1", e.ip, "the client's address")
		if e.typ == "click" {
			require.Equal(t, target, e.url)
		}
	}
}

// TestProviderWebhook sends a signed bounce through the provider webhook: the recipient
// becomes bounced; a retry is a duplicate; a bad signature records nothing.
func TestProviderWebhook(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)
	r := newTrackedRecipient(t, a, tn)
	c := createCampaign(t, a, tn)
	keys, err := tracking.NewKeys(watch.trackingSecret)
	require.NoError(t, err)
	links, err := tracking.NewLinks(s.gateway, keys)
	require.NoError(t, err)
	ref, err := links.MessageRef(tracking.Message{
		CompanyID: tn.company, WorkspaceID: tn.workspace, DomainID: tn.domain,
		CampaignID: uuid.MustParse(c.ID), RecipientID: uuid.MustParse(r.ID),
	})
	require.NoError(t, err)
	body, err := json.Marshal(map[string]any{"events": []map[string]any{
		{"id": "provider-" + uuid.NewString(), "type": "delivered", "message": ref, "occurred_at": time.Now().UTC().Format(time.RFC3339)},
		{"id": "provider-" + uuid.NewString(), "type": "bounce", "message": ref, "occurred_at": time.Now().UTC().Format(time.RFC3339), "bounce_class": "hard"},
	}})
	require.NoError(t, err)
	tc := newTrackingClient(t)
	send := func(secret string) trackingAnswer {
		ts, sig := tracking.SignWebhook(secret, time.Now(), body)
		return tc.do(http.MethodPost, s.gateway+tracking.PathWebhook, "application/json", body, map[string]string{
			tracking.HeaderWebhookTimestamp: ts, tracking.HeaderWebhookSignature: sig,
		})
	}

	ans := send("not-the-webhook-secret-0123456789abcdefghijk")
	require.Equal(t, http.StatusUnauthorized, ans.status)
	requireError(t, ans.body, "unauthenticated")
	require.Empty(t, storedEvents(t, s, c.ID), "a bad signature records nothing")

	ans = send(watch.webhookSecret)
	require.Equal(t, http.StatusOK, ans.status, "%s", ans.body)
	require.JSONEq(t, `{"accepted":2,"duplicates":0,"unknown":0}`, string(ans.body))
	ans = send(watch.webhookSecret)
	require.Equal(t, http.StatusOK, ans.status, "%s", ans.body)
	require.JSONEq(t, `{"accepted":0,"duplicates":2,"unknown":0}`, string(ans.body))

	var got recipientResponse
	waitFor(t, 30*time.Second, "the recipient to be bounced", func() (bool, string) {
		code, raw := a.do(http.MethodGet, tn.path("/recipients/"+r.ID), tn.token, nil, &got)
		require.Equal(t, http.StatusOK, code, "get recipient: %s", raw)
		return got.Recipient.Status == "RECIPIENT_STATUS_BOUNCED", "status " + got.Recipient.Status
	})
	require.Equal(t, "bounce: hard", got.Recipient.StatusReason)
}
