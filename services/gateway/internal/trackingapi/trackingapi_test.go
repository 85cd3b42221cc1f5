package trackingapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/gif"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/libs/tracking"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/heraldmail/herald/services/gateway/internal/clientip"
	"github.com/heraldmail/herald/services/gateway/internal/trackingapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	jwtSecret      = "jwt-secret-for-the-tracking-tests-0123456789"
	trackingSecret = "tracking-secret-for-the-tests-0123456789abc"
	webhookSecret  = "webhook-secret-for-the-tests-0123456789abcd"
	target         = "https://shop.example.com/offer?id=42&utm_source=herald"
	clientAddr     = "203.0.113.7"
	browserUA      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)

// ingestCall is one IngestEvents call the fake events-ingest received, with the principal
// its token verified to.
type ingestCall struct {
	principal tenancy.Principal
	requestID string
	req       *eventsv1.IngestEventsRequest
}

// fakeEvents is events-ingest at the gateway's outgoing seam: it verifies the token like the
// real service (tenancy.UnaryServerInterceptor, tenancy.Scope) and records what reached it.
// Ids seen before are duplicates; fail makes every call fail with that code.
type fakeEvents struct {
	eventsv1.UnimplementedEventsIngestServiceServer
	mu    sync.Mutex
	calls []ingestCall
	seen  map[string]bool
	fail  codes.Code
}

func (f *fakeEvents) IngestEvents(ctx context.Context, req *eventsv1.IngestEventsRequest) (*eventsv1.IngestEventsResponse, error) {
	if _, err := tenancy.Scope(ctx, req.GetWorkspaceId(), req.GetDomainId()); err != nil {
		return nil, status.Error(codes.NotFound, "domain not found")
	}
	p, _ := tenancy.PrincipalFrom(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != codes.OK {
		return nil, status.Error(f.fail, "events-ingest is failing")
	}
	call := ingestCall{principal: p, req: req}
	if ids := md.Get("x-request-id"); len(ids) > 0 {
		call.requestID = ids[0]
	}
	f.calls = append(f.calls, call)
	res := &eventsv1.IngestEventsResponse{}
	for _, e := range req.GetEvents() {
		if f.seen[e.GetId()] {
			res.Duplicates++
			continue
		}
		f.seen[e.GetId()] = true
		res.Accepted++
	}
	return res, nil
}

func (f *fakeEvents) recorded() []ingestCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ingestCall(nil), f.calls...)
}

func (f *fakeEvents) failWith(c codes.Code) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = c
}

// clock is the handler's clock, moved by the tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// bundle is what setup returns: the routes' base URL and their collaborators.
type bundle struct {
	url    string
	events *fakeEvents
	keys   *tracking.Keys
	links  *tracking.Links
	clock  *clock
	client *http.Client
}

func setup(t *testing.T) *bundle {
	t.Helper()
	events := &fakeEvents{seen: map[string]bool{}}
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(tenancy.UnaryServerInterceptor(tenancy.NewVerifier(jwtSecret))))
	eventsv1.RegisterEventsIngestServiceServer(srv, events)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	conn, err := rpc.Dial(ln.Addr().String())
	require.NoError(t, err)

	keys, err := tracking.NewKeys(trackingSecret)
	require.NoError(t, err)
	wh, err := tracking.NewWebhookVerifier(5*time.Minute, webhookSecret)
	require.NoError(t, err)
	clk := &clock{now: time.Date(2026, 11, 26, 10, 0, 0, 250_000_000, time.UTC)}
	h, err := trackingapi.New(trackingapi.Options{
		Keys:             keys,
		Webhook:          wh,
		Events:           eventsv1.NewEventsIngestServiceClient(conn),
		Signer:           tenancy.NewSigner(jwtSecret),
		Log:              zap.NewNop(),
		Registry:         prometheus.NewRegistry(),
		Now:              clk.Now,
		WebhookBodyLimit: 256 << 10,
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Register(mux)
	resolver, err := clientip.New([]string{"127.0.0.1"})
	require.NoError(t, err)
	hs := httptest.NewServer(resolver.Middleware(mux))

	links, err := tracking.NewLinks(hs.URL, keys)
	require.NoError(t, err)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		hs.Close()
		_ = conn.Close()
		srv.Stop()
		<-done
	})
	return &bundle{url: hs.URL, events: events, keys: keys, links: links, clock: clk, client: client}
}

func newMessage() tracking.Message {
	return tracking.Message{
		CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New(),
		CampaignID: uuid.New(), RecipientID: uuid.New(),
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (b *bundle) do(t *testing.T, method, url string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	require.NoError(t, err)
	req.Header.Set("User-Agent", browserUA)
	req.Header.Set("X-Forwarded-For", clientAddr)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// requireCall checks that call reached events-ingest for m's partition with a service token
// narrowed to it, and returns its one event.
func requireCall(t *testing.T, call ingestCall, m tracking.Message) *eventsv1.Event {
	t.Helper()
	require.Equal(t, tenancy.KindService, call.principal.Kind)
	require.Equal(t, "service:gateway", call.principal.Subject)
	require.Equal(t, m.CompanyID, call.principal.CompanyID)
	require.Equal(t, m.WorkspaceID, call.principal.WorkspaceID, "the token is narrowed to the partition")
	require.Equal(t, m.DomainID, call.principal.DomainID)
	require.Equal(t, m.WorkspaceID.String(), call.req.GetWorkspaceId())
	require.Equal(t, m.DomainID.String(), call.req.GetDomainId())
	require.Len(t, call.req.GetEvents(), 1)
	e := call.req.GetEvents()[0]
	require.Equal(t, m.CampaignID.String(), e.GetCampaignId())
	require.Equal(t, m.RecipientID.String(), e.GetRecipientId())
	return e
}

func TestOpenPixel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := newMessage()
	u, err := b.links.Open(m)
	require.NoError(t, err)

	res := b.do(t, http.MethodGet, u, nil, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "image/gif", res.header.Get("Content-Type"))
	require.Equal(t, "43", res.header.Get("Content-Length"))
	require.Contains(t, res.header.Get("Cache-Control"), "no-store")
	require.Contains(t, res.header.Get("Cache-Control"), "no-cache")
	require.Equal(t, "no-cache", res.header.Get("Pragma"))
	require.Equal(t, "0", res.header.Get("Expires"))
	img, err := gif.Decode(bytes.NewReader(res.body))
	require.NoError(t, err)
	require.Equal(t, 1, img.Bounds().Dx())
	require.Equal(t, 1, img.Bounds().Dy())

	calls := b.events.recorded()
	require.Len(t, calls, 1)
	e := requireCall(t, calls[0], m)
	require.Equal(t, eventsv1.EventType_EVENT_TYPE_OPEN, e.GetType())
	require.Equal(t, browserUA, e.GetUserAgent())
	require.Equal(t, clientAddr, e.GetIp(), "the client behind the trusted proxy")
	require.Empty(t, e.GetUrl())
	require.Equal(t, b.clock.Now().Truncate(time.Second), e.GetOccurTime().AsTime(), "the start of the second")
	tok, _ := strings.CutPrefix(u, b.url+tracking.PathOpen)
	verified, err := b.keys.Verify(tok, tracking.PurposeOpen)
	require.NoError(t, err)
	id, _ := tracking.Event(verified, b.clock.Now())
	require.Equal(t, id.String(), e.GetId())

	// HEAD answers the same headers and records nothing.
	res = b.do(t, http.MethodHead, u, nil, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "image/gif", res.header.Get("Content-Type"))
	require.Len(t, b.events.recorded(), 1)
}

// TestOpenDedupe: a retried load within the same second is one open; a load in another second
// is another open.
func TestOpenDedupe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := newMessage()
	u, err := b.links.Open(m)
	require.NoError(t, err)

	start := b.clock.Now()
	b.do(t, http.MethodGet, u, nil, nil)
	b.clock.set(start.Add(700 * time.Millisecond))
	b.do(t, http.MethodGet, u, nil, nil)
	b.clock.set(start.Add(time.Second))
	b.do(t, http.MethodGet, u, nil, nil)

	calls := b.events.recorded()
	require.Len(t, calls, 3, "every load reaches events-ingest")
	ids := map[string]int{}
	for _, c := range calls {
		ids[requireCall(t, c, m).GetId()]++
	}
	require.Len(t, ids, 2, "two distinct opens: the retry within the second is the same event")
	require.Equal(t, calls[0].req.GetEvents()[0].GetId(), calls[1].req.GetEvents()[0].GetId())
	require.Equal(t, calls[0].req.GetEvents()[0].GetOccurTime().AsTime(), calls[1].req.GetEvents()[0].GetOccurTime().AsTime(),
		"the retry carries the same time too")
}

func TestClickRedirect(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := newMessage()
	u, err := b.links.Click(m, target)
	require.NoError(t, err)

	res := b.do(t, http.MethodGet, u, nil, nil)
	require.Equal(t, http.StatusFound, res.status)
	require.Equal(t, target, res.header.Get("Location"), "exactly the signed URL")
	require.Contains(t, res.header.Get("Cache-Control"), "no-store")
	require.Equal(t, "no-referrer", res.header.Get("Referrer-Policy"))

	calls := b.events.recorded()
	require.Len(t, calls, 1)
	e := requireCall(t, calls[0], m)
	require.Equal(t, eventsv1.EventType_EVENT_TYPE_CLICK, e.GetType())
	require.Equal(t, target, e.GetUrl())
	require.Equal(t, clientAddr, e.GetIp())
}

// TestFailureStillServesTheRecipient: when events-ingest is down, the pixel still loads and
// the click still redirects (a person is waiting); the unsubscribe fails so the client retries.
func TestFailureStillServesTheRecipient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.events.failWith(codes.Unavailable)
	m := newMessage()
	open, err := b.links.Open(m)
	require.NoError(t, err)
	click, err := b.links.Click(m, target)
	require.NoError(t, err)
	unsub, err := b.links.Unsubscribe(m)
	require.NoError(t, err)

	res := b.do(t, http.MethodGet, open, nil, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "image/gif", res.header.Get("Content-Type"))
	res = b.do(t, http.MethodGet, click, nil, nil)
	require.Equal(t, http.StatusFound, res.status)
	require.Equal(t, target, res.header.Get("Location"))
	res = b.do(t, http.MethodPost, unsub, strings.NewReader(tracking.OneClickBody), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	require.NotEmpty(t, res.header.Get("Retry-After"))
	requireErrorShape(t, res, "unavailable")
}

func requireErrorShape(t *testing.T, res response, code string) {
	t.Helper()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []any  `json:"details"`
	}
	require.NoError(t, json.Unmarshal(res.body, &e), string(res.body))
	require.Equal(t, code, e.Code, string(res.body))
	require.NotEmpty(t, e.Message)
	require.NotNil(t, e.Details)
	require.Equal(t, "application/json", res.header.Get("Content-Type"))
}

// TestInvalidTokensRecordNothing: tampered, truncated, foreign and wrong-purpose tokens are
// 404 on every route, and nothing reaches events-ingest.
func TestInvalidTokensRecordNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := newMessage()
	open, err := b.links.Open(m)
	require.NoError(t, err)
	click, err := b.links.Click(m, target)
	require.NoError(t, err)
	unsub, err := b.links.Unsubscribe(m)
	require.NoError(t, err)
	openTok := strings.TrimPrefix(open, b.url+tracking.PathOpen)
	clickTok := strings.TrimPrefix(click, b.url+tracking.PathClick)
	unsubTok := strings.TrimPrefix(unsub, b.url+tracking.PathUnsubscribe)

	stranger, err := tracking.NewKeys("another-deployments-secret-0123456789abcdef")
	require.NoError(t, err)
	foreign, err := stranger.Sign(m, tracking.PurposeClick, "https://evil.example/")
	require.NoError(t, err)

	flip := func(tok string, at int) string {
		b := []byte(tok)
		if b[at] == 'A' {
			b[at] = 'B'
		} else {
			b[at] = 'A'
		}
		return string(b)
	}
	bad := map[string][]string{
		tracking.PathOpen: {flip(openTok, 10), flip(openTok, len(openTok)-1), openTok[:len(openTok)-4], clickTok, unsubTok, "x", strings.Repeat("A", 200)},
		tracking.PathClick: {flip(clickTok, 3), flip(clickTok, 90), flip(clickTok, len(clickTok)-2), clickTok[:len(clickTok)-1],
			openTok, foreign, clickTok + "AA"},
		tracking.PathUnsubscribe: {flip(unsubTok, 20), openTok, clickTok},
	}
	for path, toks := range bad {
		for _, tok := range toks {
			methods := []string{http.MethodGet}
			if path == tracking.PathUnsubscribe {
				methods = append(methods, http.MethodPost)
			}
			for _, method := range methods {
				res := b.do(t, method, b.url+path+tok, strings.NewReader(tracking.OneClickBody),
					map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
				require.Equal(t, http.StatusNotFound, res.status, "%s %s%s", method, path, tok)
				require.Empty(t, res.header.Get("Location"))
				requireErrorShape(t, res, "not_found")
			}
		}
	}
	require.Empty(t, b.events.recorded(), "nothing reached events-ingest")
}

func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := newMessage()
	u, err := b.links.Unsubscribe(m)
	require.NoError(t, err)
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

	// GET shows a page whose form POSTs; it never unsubscribes.
	res := b.do(t, http.MethodGet, u, nil, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "text/html; charset=utf-8", res.header.Get("Content-Type"))
	require.Contains(t, string(res.body), `<form method="post">`)
	require.Contains(t, string(res.body), `name="List-Unsubscribe" value="One-Click"`)
	require.Contains(t, res.header.Get("Content-Security-Policy"), "form-action 'self'")
	require.Contains(t, res.header.Get("Cache-Control"), "no-store")
	require.Empty(t, b.events.recorded(), "a GET records nothing")

	// A POST without RFC 8058's body records nothing.
	for _, tc := range []struct {
		body, contentType string
		status            int
	}{
		{"", "application/x-www-form-urlencoded", http.StatusBadRequest},
		{"List-Unsubscribe=Yes", "application/x-www-form-urlencoded", http.StatusBadRequest},
		{tracking.OneClickBody, "text/plain", http.StatusUnsupportedMediaType},
		{tracking.OneClickBody + "&pad=" + strings.Repeat("x", 5000), "application/x-www-form-urlencoded", http.StatusRequestEntityTooLarge},
	} {
		res := b.do(t, http.MethodPost, u, strings.NewReader(tc.body), map[string]string{"Content-Type": tc.contentType})
		require.Equal(t, tc.status, res.status, "%q as %s", tc.body, tc.contentType)
	}
	require.Empty(t, b.events.recorded())

	// RFC 8058 one-click, twice (a retry), then from the page's button as multipart: one event.
	res = b.do(t, http.MethodPost, u, strings.NewReader(tracking.OneClickBody), form)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.Contains(t, string(res.body), "unsubscribed")
	b.clock.set(b.clock.Now().Add(10 * time.Minute))
	res = b.do(t, http.MethodPost, u, strings.NewReader(tracking.OneClickBody), form)
	require.Equal(t, http.StatusOK, res.status)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	require.NoError(t, mw.WriteField("List-Unsubscribe", "One-Click"))
	require.NoError(t, mw.Close())
	res = b.do(t, http.MethodPost, u, &mp, map[string]string{"Content-Type": mw.FormDataContentType()})
	require.Equal(t, http.StatusOK, res.status, string(res.body))

	calls := b.events.recorded()
	require.Len(t, calls, 3)
	for _, c := range calls {
		e := requireCall(t, c, m)
		require.Equal(t, eventsv1.EventType_EVENT_TYPE_UNSUBSCRIBE, e.GetType())
		require.Equal(t, calls[0].req.GetEvents()[0].GetId(), e.GetId(), "one event id for every POST")
		require.Equal(t, calls[0].req.GetEvents()[0].GetOccurTime().AsTime(), e.GetOccurTime().AsTime())
	}
}

// webhookEvent is one event of a webhook body.
type webhookEvent struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Message     string `json:"message"`
	OccurredAt  string `json:"occurred_at"`
	BounceClass string `json:"bounce_class,omitempty"`
}

func (b *bundle) webhook(t *testing.T, body []byte, secret string, at time.Time) response {
	t.Helper()
	ts, sig := tracking.SignWebhook(secret, at, body)
	return b.do(t, http.MethodPost, b.url+tracking.PathWebhook, bytes.NewReader(body), map[string]string{
		"Content-Type":                  "application/json",
		tracking.HeaderWebhookTimestamp: ts,
		tracking.HeaderWebhookSignature: sig,
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m1, m2 := newMessage(), newMessage()
	ref1, err := b.links.MessageRef(m1)
	require.NoError(t, err)
	ref2, err := b.links.MessageRef(m2)
	require.NoError(t, err)
	stranger, err := tracking.NewKeys("another-deployments-secret-0123456789abcdef")
	require.NoError(t, err)
	foreignRef, err := stranger.Sign(m1, tracking.PurposeMessage, "")
	require.NoError(t, err)
	openTok, err := b.keys.Sign(m1, tracking.PurposeOpen, "")
	require.NoError(t, err)
	at := b.clock.Now().Add(-time.Minute).Format(time.RFC3339)
	body := mustJSON(t, map[string]any{"events": []webhookEvent{
		{ID: "p-1", Type: "delivered", Message: ref1, OccurredAt: at},
		{ID: "p-2", Type: "bounce", Message: ref2, OccurredAt: at, BounceClass: "hard"},
		{ID: "p-3", Type: "complaint", Message: ref1, OccurredAt: at},
		{ID: "p-4", Type: "bounce", Message: foreignRef, OccurredAt: at},
		{ID: "p-5", Type: "bounce", Message: openTok, OccurredAt: at},
	}})

	// Bad signatures, stale or future timestamps, a body signed for another: 401, nothing.
	res := b.webhook(t, body, "not-the-webhook-secret-0123456789abcdefghij", b.clock.Now())
	require.Equal(t, http.StatusUnauthorized, res.status)
	requireErrorShape(t, res, "unauthenticated")
	res = b.webhook(t, body, webhookSecret, b.clock.Now().Add(-6*time.Minute))
	require.Equal(t, http.StatusUnauthorized, res.status)
	res = b.webhook(t, body, webhookSecret, b.clock.Now().Add(6*time.Minute))
	require.Equal(t, http.StatusUnauthorized, res.status)
	ts, sig := tracking.SignWebhook(webhookSecret, b.clock.Now(), body)
	res = b.do(t, http.MethodPost, b.url+tracking.PathWebhook, bytes.NewReader(append(body[:len(body)-1:len(body)-1], ' ', '}')),
		map[string]string{tracking.HeaderWebhookTimestamp: ts, tracking.HeaderWebhookSignature: sig})
	require.Equal(t, http.StatusUnauthorized, res.status, "body changed after signing")
	res = b.do(t, http.MethodPost, b.url+tracking.PathWebhook, bytes.NewReader(body), nil)
	require.Equal(t, http.StatusUnauthorized, res.status, "no signature")
	require.Empty(t, b.events.recorded())

	// Signed: grouped by partition, each call with a token narrowed to it.
	res = b.webhook(t, body, webhookSecret, b.clock.Now())
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	var got trackingapi.WebhookResponse
	require.NoError(t, json.Unmarshal(res.body, &got))
	require.Equal(t, trackingapi.WebhookResponse{Accepted: 3, Unknown: 2}, got)
	calls := b.events.recorded()
	require.Len(t, calls, 2)
	require.Equal(t, m1.DomainID, calls[0].principal.DomainID)
	require.Len(t, calls[0].req.GetEvents(), 2)
	require.Equal(t, eventsv1.EventType_EVENT_TYPE_DELIVERED, calls[0].req.GetEvents()[0].GetType())
	require.Equal(t, eventsv1.EventType_EVENT_TYPE_COMPLAINT, calls[0].req.GetEvents()[1].GetType())
	bounce := requireCall(t, calls[1], m2)
	require.Equal(t, eventsv1.EventType_EVENT_TYPE_BOUNCE, bounce.GetType())
	require.Equal(t, "hard", bounce.GetBounceClass())
	require.Equal(t, at, bounce.GetOccurTime().AsTime().Format(time.RFC3339))

	// The provider retries: every event is a duplicate.
	res = b.webhook(t, body, webhookSecret, b.clock.Now())
	require.Equal(t, http.StatusOK, res.status)
	require.NoError(t, json.Unmarshal(res.body, &got))
	require.Equal(t, trackingapi.WebhookResponse{Duplicates: 3, Unknown: 2}, got)
}

func TestWebhookRejectsBadBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref, err := b.links.MessageRef(newMessage())
	require.NoError(t, err)
	at := b.clock.Now().Format(time.RFC3339)
	good := webhookEvent{ID: "p-1", Type: "delivered", Message: ref, OccurredAt: at}
	with := func(f func(*webhookEvent)) []byte {
		e := good
		f(&e)
		return mustJSON(t, map[string]any{"events": []webhookEvent{good, e}})
	}
	many := make([]webhookEvent, trackingapi.MaxWebhookEvents+1)
	for i := range many {
		// Small, to stay within the body limit: the count is checked first.
		many[i] = webhookEvent{ID: "p", Type: "bounce", Message: "m", OccurredAt: at}
	}
	for name, body := range map[string][]byte{
		"not json":          []byte("events"),
		"unknown field":     []byte(`{"events":[],"extra":1}`),
		"two objects":       []byte(`{"events":[]} {}`),
		"no events":         []byte(`{"events":[]}`),
		"too many events":   mustJSON(t, map[string]any{"events": many}),
		"no id":             with(func(e *webhookEvent) { e.ID = "" }),
		"unknown type":      with(func(e *webhookEvent) { e.Type = "open" }),
		"no message":        with(func(e *webhookEvent) { e.Message = "" }),
		"no time":           with(func(e *webhookEvent) { e.OccurredAt = "" }),
		"bad time":          with(func(e *webhookEvent) { e.OccurredAt = "yesterday" }),
		"class not bounce":  with(func(e *webhookEvent) { e.BounceClass = "hard" }),
		"class too long":    with(func(e *webhookEvent) { e.Type = "bounce"; e.BounceClass = strings.Repeat("x", 200) }),
		"unknown event key": []byte(`{"events":[{"id":"p","type":"bounce","message":"` + ref + `","occurred_at":"` + at + `","recipient_id":"x"}]}`),
	} {
		res := b.webhook(t, body, webhookSecret, b.clock.Now())
		require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", name, res.body)
		requireErrorShape(t, res, "invalid_argument")
	}
	require.Empty(t, b.events.recorded(), "nothing of an invalid batch is recorded")

	res := b.webhook(t, bytes.Repeat([]byte(" "), 257<<10), webhookSecret, b.clock.Now())
	require.Equal(t, http.StatusRequestEntityTooLarge, res.status)
	requireErrorShape(t, res, "request_too_large")
}
