package trackingapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldmail/herald/libs/tracking"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/gateway/internal/rest"
)

// Limits of a webhook request.
const (
	// DefaultWebhookBodyLimit is the largest webhook body accepted when
	// Options.WebhookBodyLimit is zero.
	DefaultWebhookBodyLimit = 1 << 20
	// MaxWebhookEvents is the most events one request may carry (events-ingest's batch limit).
	MaxWebhookEvents = 1000
	// maxProviderIDLen bounds the provider's event id.
	maxProviderIDLen = 256
	// maxBounceClassLen is events-ingest's limit.
	maxBounceClassLen = 128
)

// WebhookRequest is the body of a webhook request: a batch of events reported by a mail
// provider (or the adapter that translates its own format into this one).
type WebhookRequest struct {
	Events []WebhookEvent `json:"events"`
}

// WebhookEvent is one event of a WebhookRequest.
type WebhookEvent struct {
	// ID is the provider's id of the event, unique per event: a retried delivery of the same
	// event carries the same id and is recorded once.
	ID string `json:"id"`
	// Type is delivered, bounce or complaint.
	Type string `json:"type"`
	// Message is the message reference Herald gave the provider with the email
	// (tracking.Links.MessageRef): it names the tenant, campaign and recipient.
	Message string `json:"message"`
	// OccurredAt is when it happened (RFC 3339), as the provider reports it.
	OccurredAt time.Time `json:"occurred_at"`
	// BounceClass is the provider's classification of a bounce (e.g. hard, soft), for
	// bounces only.
	BounceClass string `json:"bounce_class,omitempty"`
}

// WebhookResponse is the answer to a webhook request whose events were all handled.
type WebhookResponse struct {
	// Accepted is the number of events stored.
	Accepted int `json:"accepted"`
	// Duplicates is the number of events stored before (a retried request).
	Duplicates int `json:"duplicates"`
	// Unknown is the number of events whose message reference did not verify (signed with a
	// secret no longer configured, or not Herald's): skipped, since retrying cannot help.
	Unknown int `json:"unknown"`
}

var webhookTypes = map[string]eventsv1.EventType{
	"delivered": eventsv1.EventType_EVENT_TYPE_DELIVERED,
	"bounce":    eventsv1.EventType_EVENT_TYPE_BOUNCE,
	"complaint": eventsv1.EventType_EVENT_TYPE_COMPLAINT,
}

// webhook verifies a provider's signed batch and records its events. Nothing is recorded
// unless the signature verifies and every event is well-formed.
func (h *Handler) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.WebhookBodyLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			rest.WriteError(w, r, http.StatusRequestEntityTooLarge, rest.CodeRequestTooLarge,
				"the request body is larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes", nil)
			return
		}
		rest.WriteError(w, r, http.StatusBadRequest, "invalid_argument", "the request body could not be read", nil)
		return
	}
	if err := h.o.Webhook.Verify(r.Header.Get(tracking.HeaderWebhookTimestamp), r.Header.Get(tracking.HeaderWebhookSignature), body, h.o.Now()); err != nil {
		h.hits.WithLabelValues(kindWebhook, resultInvalid).Inc()
		msg := "the " + tracking.HeaderWebhookSignature + " header does not match the body"
		if errors.Is(err, tracking.ErrWebhookStale) {
			msg = "the " + tracking.HeaderWebhookTimestamp + " header must be the Unix time of the request, within the accepted window"
		}
		rest.WriteError(w, r, http.StatusUnauthorized, "unauthenticated", msg, nil)
		return
	}
	batches, unknown, violations := h.parseWebhook(body)
	if len(violations) > 0 {
		rest.WriteError(w, r, http.StatusBadRequest, "invalid_argument", "the webhook batch is invalid; nothing was recorded", violations)
		return
	}
	res := WebhookResponse{Unknown: unknown}
	for _, b := range batches {
		got, err := h.record(r.Context(), b.msg, b.events)
		h.count(kindWebhook, got, err)
		if err != nil {
			// Earlier partitions may be stored: the provider's retry records them again as
			// duplicates, so the whole batch is retried safely.
			h.o.Log.Error("record webhook events", zap.String("request_id", rest.RequestID(r.Context())), zap.Error(err))
			m := rest.MapCode(status.Code(err))
			msg := m.Message
			if m.Public() {
				msg = status.Convert(err).Message()
			}
			rest.WriteError(w, r, m.Status, m.Code, msg, nil)
			return
		}
		res.Accepted += int(got.GetAccepted())
		res.Duplicates += int(got.GetDuplicates())
	}
	out, err := json.Marshal(res)
	if err != nil {
		rest.WriteError(w, r, http.StatusInternalServerError, "internal", "internal error", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(out, '\n'))
}

// partitionBatch is the events of one tenant partition.
type partitionBatch struct {
	msg    tracking.Message // the partition's ids; campaign and recipient of the first event
	events []*eventsv1.Event
}

// parseWebhook decodes and checks a webhook body. It returns the events grouped by tenant
// partition in the order they came, the number of events whose message reference did not
// verify, and what is wrong with the batch (nothing may be recorded then).
func (h *Handler) parseWebhook(body []byte) ([]partitionBatch, int, []any) {
	var req WebhookRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return nil, 0, []any{rest.FieldViolation{Field: "body", Description: "must be one JSON object {\"events\": [...]} with the documented fields only"}}
	}
	if len(req.Events) == 0 || len(req.Events) > MaxWebhookEvents {
		return nil, 0, []any{rest.FieldViolation{Field: "events", Description: fmt.Sprintf("must hold 1 to %d events", MaxWebhookEvents)}}
	}
	var (
		violations []any
		unknown    int
		batches    []partitionBatch
		index      = map[[3][16]byte]int{}
	)
	bad := func(i int, field, desc string) {
		violations = append(violations, rest.FieldViolation{Field: fmt.Sprintf("events[%d].%s", i, field), Description: desc})
	}
	for i, e := range req.Events {
		typ, ok := webhookTypes[e.Type]
		switch {
		case e.ID == "" || len(e.ID) > maxProviderIDLen:
			bad(i, "id", fmt.Sprintf("must be the provider's event id, 1 to %d bytes", maxProviderIDLen))
		case !ok:
			bad(i, "type", "must be one of delivered, bounce, complaint")
		case e.Message == "":
			bad(i, "message", "must be the message reference Herald gave the provider")
		case e.OccurredAt.IsZero():
			bad(i, "occurred_at", "must be set (RFC 3339)")
		case e.BounceClass != "" && typ != eventsv1.EventType_EVENT_TYPE_BOUNCE:
			bad(i, "bounce_class", "is for bounces only")
		case len(e.BounceClass) > maxBounceClassLen || clean(e.BounceClass, maxBounceClassLen) != e.BounceClass:
			bad(i, "bounce_class", fmt.Sprintf("must be at most %d bytes of text", maxBounceClassLen))
		}
		if len(violations) > 0 {
			continue
		}
		t, err := h.o.Keys.Verify(e.Message, tracking.PurposeMessage)
		if err != nil {
			unknown++
			continue
		}
		key := [3][16]byte{t.CompanyID, t.WorkspaceID, t.DomainID}
		j, ok := index[key]
		if !ok {
			j = len(batches)
			index[key] = j
			batches = append(batches, partitionBatch{msg: t.Message})
		}
		batches[j].events = append(batches[j].events, &eventsv1.Event{
			Id:          tracking.ProviderEventID(t, e.Type, e.ID).String(),
			Type:        typ,
			CampaignId:  t.CampaignID.String(),
			RecipientId: t.RecipientID.String(),
			OccurTime:   timestamppb.New(e.OccurredAt),
			BounceClass: e.BounceClass,
		})
	}
	return batches, unknown, violations
}
