// Package events is the business layer of events-ingest: what an engagement event is, the
// rules an incoming batch must satisfy, how a batch is deduplicated, which events change a
// recipient's status, and the Batcher that buffers the events of every caller and writes them
// in batches. Storage is behind the Store interface.
package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/machine"
	"github.com/heraldmail/herald/libs/tenancy"
)

// Limits of a batch.
const (
	// MaxBatch is the largest number of events one call (or one stream message) may carry.
	MaxBatch = 1000
	// MaxFutureSkew is how far in the future an event may claim to have happened, to absorb
	// clock drift between producers and this service.
	MaxFutureSkew = time.Hour
)

// Limits of the free-text fields, so that one event cannot bloat the table.
const (
	MaxUserAgentLen   = 1024
	MaxIPLen          = 64
	MaxURLLen         = 8192
	MaxBounceClassLen = 128
)

// ErrInvalid is wrapped by every validation failure.
var ErrInvalid = errors.New("invalid events")

// Type is what happened to an email.
type Type string

// Event types, as stored in events.email_events.type.
const (
	TypeSent        Type = "sent"
	TypeDelivered   Type = "delivered"
	TypeOpen        Type = "open"
	TypeClick       Type = "click"
	TypeBounce      Type = "bounce"
	TypeComplaint   Type = "complaint"
	TypeUnsubscribe Type = "unsubscribe"
)

// Valid reports whether t is a known type.
func (t Type) Valid() bool {
	switch t {
	case TypeSent, TypeDelivered, TypeOpen, TypeClick, TypeBounce, TypeComplaint, TypeUnsubscribe:
		return true
	}
	return false
}

// NeedsRecipient reports whether events of type t must name a recipient: those that change
// the recipient's status.
func (t Type) NeedsRecipient() bool {
	_, ok := recipientStatus[t]
	return ok
}

// Recipient statuses set by events, as named in jobs.RecipientStatusArgs.Status.
const (
	StatusBounced      = "bounced"
	StatusComplained   = "complained"
	StatusUnsubscribed = "unsubscribed"
)

var recipientStatus = map[Type]string{
	TypeBounce:      StatusBounced,
	TypeComplaint:   StatusComplained,
	TypeUnsubscribe: StatusUnsubscribed,
}

// Input is an event as received, before validation: ids are still text and an unset time is
// the zero time.
type Input struct {
	ID          string
	Type        Type
	CampaignID  string
	RecipientID string
	OccurredAt  time.Time
	UserAgent   string
	IP          string
	URL         string
	BounceClass string
}

// Event is a validated event.
type Event struct {
	ID          uuid.UUID
	Type        Type
	CampaignID  uuid.NullUUID
	RecipientID uuid.NullUUID
	OccurredAt  time.Time
	UserAgent   string
	IP          string
	URL         string
	BounceClass string
	// IsMachine marks an open or click made by a machine (a privacy proxy, a link scanner),
	// set by ClassifyMachine before the event is written to the partitioned storage;
	// MachineReason says why, for the caller of ClassifyMachine (tests check it); it is not
	// stored: the storage keeps only IsMachine.
	IsMachine     bool
	MachineReason machine.Reason
}

// StatusChange is the recipient status an event causes, if any: bounces, complaints and
// unsubscribes do; ok is false for every other type.
func StatusChange(t Type, bounceClass string) (status, reason string, ok bool) {
	status, ok = recipientStatus[t]
	if !ok {
		return "", "", false
	}
	reason = string(t)
	if t == TypeBounce && bounceClass != "" {
		reason = "bounce: " + bounceClass
	}
	return status, reason, true
}

// ValidationError names the event and field that is wrong and what to fix.
type ValidationError struct {
	// Message is the 0-based number of the stream message, or -1 for a unary call.
	Message int
	// Index is the 0-based position of the event in its batch, or -1 when the batch as a
	// whole is wrong.
	Index  int
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	where := "events"
	if e.Index >= 0 {
		where = fmt.Sprintf("events[%d]", e.Index)
		if e.Field != "" {
			where += "." + e.Field
		}
	}
	if e.Message >= 0 {
		where = fmt.Sprintf("message %d: %s", e.Message, where)
	}
	return where + ": " + e.Reason
}

// Unwrap makes every ValidationError match ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Result counts what a call did with its events.
type Result struct {
	// Accepted is the number of events stored by this call.
	Accepted int
	// Duplicates is the number of events skipped because their id was stored before (by an
	// earlier call or earlier in the same batch).
	Duplicates int
}

func (r *Result) add(o Result) {
	r.Accepted += o.Accepted
	r.Duplicates += o.Duplicates
}

// Store writes events.
type Store interface {
	// Insert stores evs (whose ids are distinct) for tenant t in one transaction, skipping
	// ids stored before, and enqueues the recipient status change of every newly stored
	// bounce, complaint and unsubscribe in the same transaction. Where the storage keeps
	// machine marking, it sets IsMachine and MachineReason on the opens and clicks of evs
	// before writing them (ClassifyMachine), looking up what it needs; a failed look-up
	// classifies by user agent only and never fails the call. It returns the number of
	// events newly stored.
	Insert(ctx context.Context, t tenancy.Tenant, evs []Event) (int, error)
}

// Service ingests batches of events through a Batcher.
type Service struct {
	batcher *Batcher
	now     func() time.Time
}

// NewService returns a service writing through b; now is the clock that bounds occurred_at
// (time.Now outside tests).
func NewService(b *Batcher, now func() time.Time) *Service {
	return &Service{batcher: b, now: now}
}

// Ingest validates one batch of at most MaxBatch events and waits until it is stored. An
// invalid event fails the whole batch with a *ValidationError and nothing is stored. A full
// buffer answers with a *BufferFullError and nothing is stored.
func (s *Service) Ingest(ctx context.Context, t tenancy.Tenant, in []Input) (Result, error) {
	p, err := s.Submit(t, in, -1)
	if err != nil {
		return Result{}, err
	}
	return p.Wait(ctx)
}

// Submit validates one batch of at most MaxBatch events (message msg of a stream, -1 for a
// unary call) and buffers it without waiting for the write.
func (s *Service) Submit(t tenancy.Tenant, in []Input, msg int) (*Pending, error) {
	evs, err := Validate(in, s.now(), msg)
	if err != nil {
		return nil, err
	}
	p, err := s.batcher.Submit(t, evs)
	if err != nil {
		return nil, fmt.Errorf("ingest events: %w", err)
	}
	return p, nil
}

// Dedupe returns evs without the events whose id appeared earlier in evs, keeping the first.
func Dedupe(evs []Event) []Event {
	seen := make(map[uuid.UUID]struct{}, len(evs))
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		if _, dup := seen[e.ID]; dup {
			continue
		}
		seen[e.ID] = struct{}{}
		out = append(out, e)
	}
	return out
}

// Validate checks a batch against the rules of ingestion at time now and returns the parsed
// events. msg is the stream message number reported in errors (-1 for a unary call).
func Validate(in []Input, now time.Time, msg int) ([]Event, error) {
	if len(in) == 0 {
		return nil, &ValidationError{Message: msg, Index: -1, Reason: "must hold at least one event"}
	}
	if len(in) > MaxBatch {
		return nil, &ValidationError{Message: msg, Index: -1,
			Reason: fmt.Sprintf("at most %d events per batch, got %d: split the batch", MaxBatch, len(in))}
	}
	out := make([]Event, len(in))
	for i, e := range in {
		ev, field, reason := validateOne(e, now)
		if reason != "" {
			return nil, &ValidationError{Message: msg, Index: i, Field: field, Reason: reason}
		}
		out[i] = ev
	}
	return out, nil
}

func validateOne(in Input, now time.Time) (Event, string, string) {
	id, err := uuid.Parse(in.ID)
	if err != nil || id == uuid.Nil {
		return Event{}, "id", "must be a UUID"
	}
	if !in.Type.Valid() {
		return Event{}, "type", "must be set to one of sent, delivered, open, click, bounce, complaint, unsubscribe"
	}
	if in.OccurredAt.IsZero() {
		return Event{}, "occur_time", "must be set"
	}
	if in.OccurredAt.After(now.Add(MaxFutureSkew)) {
		return Event{}, "occur_time", "must not be more than 1h in the future"
	}
	campaign, ok := optionalUUID(in.CampaignID)
	if !ok {
		return Event{}, "campaign_id", "must be a UUID when set"
	}
	recipient, ok := optionalUUID(in.RecipientID)
	if !ok {
		return Event{}, "recipient_id", "must be a UUID when set"
	}
	if in.Type.NeedsRecipient() && !recipient.Valid {
		return Event{}, "recipient_id", "must be set for " + string(in.Type) + " events"
	}
	for _, f := range []struct {
		name  string
		value string
		limit int
	}{
		{"user_agent", in.UserAgent, MaxUserAgentLen},
		{"ip", in.IP, MaxIPLen},
		{"url", in.URL, MaxURLLen},
		{"bounce_class", in.BounceClass, MaxBounceClassLen},
	} {
		if len(f.value) > f.limit {
			return Event{}, f.name, fmt.Sprintf("must be at most %d bytes long", f.limit)
		}
		// PostgreSQL text cannot hold a NUL byte.
		if strings.ContainsRune(f.value, 0) {
			return Event{}, f.name, "must not contain NUL characters"
		}
	}
	return Event{
		ID:          id,
		Type:        in.Type,
		CampaignID:  campaign,
		RecipientID: recipient,
		OccurredAt:  in.OccurredAt,
		UserAgent:   in.UserAgent,
		IP:          in.IP,
		URL:         in.URL,
		BounceClass: in.BounceClass,
	}, "", ""
}

func optionalUUID(s string) (uuid.NullUUID, bool) {
	if s == "" {
		return uuid.NullUUID{}, true
	}
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return uuid.NullUUID{}, false
	}
	return uuid.NullUUID{UUID: id, Valid: true}, true
}
