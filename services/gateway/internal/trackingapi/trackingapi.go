// Package trackingapi serves the gateway's public tracking routes: the open pixel, the click
// redirect, the RFC 8058 one-click unsubscribe link and the mail provider's webhook. None
// takes a bearer credential: a tracking route's credential is its signed token
// (libs/tracking), the webhook's an HMAC signature over its timestamp and body. A request
// that does not verify is answered 404 (tokens) or 401 (webhook) and records nothing.
//
// Events are recorded through events-ingest's IngestEvents RPC, with a short-lived service
// token narrowed to the partition (company, workspace, domain) the verified token names:
// tenant ids come from the token, never from the query or the body. Event ids are derived
// from the token and a time bucket (tracking.Event), so retries are recorded once.
package trackingapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldmail/herald/libs/machine"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/libs/tracking"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/gateway/internal/clientip"
	"github.com/heraldmail/herald/services/gateway/internal/rest"
)

// ServiceName is the subject of the service tokens this package mints ("service:gateway").
const ServiceName = "gateway"

// DefaultRecordTimeout bounds one call to events-ingest when Options.RecordTimeout is zero.
// A person waits on a click's redirect, so it stays short.
const DefaultRecordTimeout = 5 * time.Second

// Limits of the fields stored with an event (events-ingest refuses longer ones).
const (
	maxUserAgentLen = 1024
	maxIPLen        = 64
)

// Options configure a Handler.
type Options struct {
	// Keys verify the tracking tokens; nil turns the open, click and unsubscribe routes off.
	Keys *tracking.Keys
	// Webhook verifies the provider's webhook requests; nil turns the webhook route off.
	Webhook *tracking.WebhookVerifier
	// Events is events-ingest's client, on a connection that forwards the token set with
	// tenancy.WithToken (libs/rpc.Dial).
	Events eventsv1.EventsIngestServiceClient
	// Signer mints the service tokens of the calls to events-ingest.
	Signer *tenancy.Signer
	// Log receives the causes of failures, which clients never see.
	Log *zap.Logger
	// Registry receives the tracking metrics.
	Registry prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// RecordTimeout bounds one call to events-ingest; DefaultRecordTimeout when zero.
	RecordTimeout time.Duration
	// WebhookBodyLimit is the largest webhook body accepted, in bytes;
	// DefaultWebhookBodyLimit when zero.
	WebhookBodyLimit int64
}

// Handler serves the tracking routes.
type Handler struct {
	o       Options
	hits    *prometheus.CounterVec
	machine *prometheus.CounterVec
}

// New returns the handler of the tracking routes.
func New(o Options) (*Handler, error) {
	if o.Events == nil || o.Signer == nil || o.Log == nil || o.Registry == nil {
		return nil, errors.New("tracking routes: Events, Signer, Log and Registry are required")
	}
	if o.Webhook != nil && o.Keys == nil {
		return nil, errors.New("tracking routes: the webhook needs Keys to verify message references")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RecordTimeout <= 0 {
		o.RecordTimeout = DefaultRecordTimeout
	}
	if o.WebhookBodyLimit <= 0 {
		o.WebhookBodyLimit = DefaultWebhookBodyLimit
	}
	h := &Handler{
		o: o,
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_tracking_requests_total",
			Help: "Requests of the public tracking routes, by route kind and outcome (recorded, duplicate, invalid, failed, not_recorded).",
		}, []string{"kind", "result"}),
		machine: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_tracking_machine_requests_total",
			Help: "Opens and clicks whose user agent is a known machine's (privacy proxy, link scanner), by kind and reason; they are recorded all the same.",
		}, []string{"kind", "reason"}),
	}
	if err := errors.Join(o.Registry.Register(h.hits), o.Registry.Register(h.machine)); err != nil {
		return nil, fmt.Errorf("register tracking metrics: %w", err)
	}
	return h, nil
}

// Register adds the routes that are on to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	if h.o.Keys != nil {
		// GET patterns match HEAD too; a HEAD is answered but never recorded.
		mux.HandleFunc("GET "+tracking.PathOpen+"{token}", h.open)
		mux.HandleFunc("GET "+tracking.PathClick+"{token}", h.click)
		mux.HandleFunc("GET "+tracking.PathUnsubscribe+"{token}", h.unsubscribePage)
		mux.HandleFunc("POST "+tracking.PathUnsubscribe+"{token}", h.unsubscribe)
	}
	if h.o.Webhook != nil {
		mux.HandleFunc("POST "+tracking.PathWebhook, h.webhook)
	}
}

// Outcomes of a request, the result label of herald_tracking_requests_total.
const (
	resultRecorded    = "recorded"
	resultDuplicate   = "duplicate"
	resultInvalid     = "invalid"
	resultFailed      = "failed"
	resultNotRecorded = "not_recorded"
)

// verify checks the request's token for purpose, answering 404 when it does not verify.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request, kind string, purpose tracking.Purpose) (tracking.Token, bool) {
	t, err := h.o.Keys.Verify(r.PathValue("token"), purpose)
	if err != nil {
		h.hits.WithLabelValues(kind, resultInvalid).Inc()
		rest.WriteError(w, r, http.StatusNotFound, "not_found", "this link is not valid", nil)
		return tracking.Token{}, false
	}
	return t, true
}

// hitEvent is the event of an open or click of t now, with the client's user agent and
// address.
func (h *Handler) hitEvent(r *http.Request, t tracking.Token, typ eventsv1.EventType, now time.Time) *eventsv1.Event {
	id, at := tracking.Event(t, now)
	return &eventsv1.Event{
		Id:          id.String(),
		Type:        typ,
		CampaignId:  t.CampaignID.String(),
		RecipientId: t.RecipientID.String(),
		OccurTime:   timestamppb.New(at),
		UserAgent:   clean(r.UserAgent(), maxUserAgentLen),
		Ip:          clean(clientip.From(r.Context()), maxIPLen),
		Url:         t.URL,
	}
}

// recordHit records an open or click. A failure is logged and counted, never shown: the
// pixel still loads and the redirect still happens.
func (h *Handler) recordHit(r *http.Request, t tracking.Token, kind string, typ eventsv1.EventType) {
	if r.Method != http.MethodGet {
		h.hits.WithLabelValues(kind, resultNotRecorded).Inc()
		return
	}
	ua := r.UserAgent()
	if v := machine.ClassifyUserAgent(ua); v.Machine {
		h.machine.WithLabelValues(kind, string(v.Reason)).Inc()
	}
	res, err := h.record(r.Context(), t.Message, []*eventsv1.Event{h.hitEvent(r, t, typ, h.o.Now())})
	h.count(kind, res, err)
	if err != nil {
		h.o.Log.Error("record tracking event", zap.String("kind", kind),
			zap.String("request_id", rest.RequestID(r.Context())), zap.Error(err))
	}
}

func (h *Handler) count(kind string, res *eventsv1.IngestEventsResponse, err error) {
	switch {
	case err != nil:
		h.hits.WithLabelValues(kind, resultFailed).Inc()
	case res.GetAccepted() > 0:
		h.hits.WithLabelValues(kind, resultRecorded).Inc()
	default:
		h.hits.WithLabelValues(kind, resultDuplicate).Inc()
	}
}

// record hands evs, all of m's partition, to events-ingest with a service token narrowed to
// that partition.
func (h *Handler) record(ctx context.Context, m tracking.Message, evs []*eventsv1.Event) (*eventsv1.IngestEventsResponse, error) {
	tok, err := h.o.Signer.ServiceTokenFor(ServiceName, tenancy.Tenant{
		CompanyID: m.CompanyID, WorkspaceID: m.WorkspaceID, DomainID: m.DomainID,
	})
	if err != nil {
		return nil, fmt.Errorf("sign service token: %w", err)
	}
	ctx, cancel := context.WithTimeout(tenancy.WithToken(ctx, tok), h.o.RecordTimeout)
	defer cancel()
	if id := rest.RequestID(ctx); id != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", id)
	}
	res, err := h.o.Events.IngestEvents(ctx, &eventsv1.IngestEventsRequest{
		WorkspaceId: m.WorkspaceID.String(),
		DomainId:    m.DomainID.String(),
		Events:      evs,
	})
	if err != nil {
		return nil, fmt.Errorf("ingest events: %w", err)
	}
	return res, nil
}

// clean makes s valid UTF-8 (protobuf refuses anything else) without NUL characters
// (PostgreSQL text refuses them) of at most n bytes, cut at a character boundary.
func clean(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// noStore forbids every cache (the browser's, a proxy's, a mail provider's image cache) from
// keeping an answer, so each load reaches the gateway.
func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate, private, max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
