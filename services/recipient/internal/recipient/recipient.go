// Package recipient holds the rules of a domain's recipients: how an email address is
// accepted, which subscription statuses exist, and when a status change applies. It defines
// the Store it needs; internal/store implements it on PostgreSQL.
package recipient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
)

// Errors the transport maps to status codes. They are wrapped with context; test them with
// errors.Is (ErrInvalid through a *ValidationError, which says what to fix).
var (
	ErrNotFound      = errors.New("recipient not found")
	ErrAlreadyExists = errors.New("a recipient with this email already exists in this domain")
	ErrInvalid       = errors.New("invalid recipient")
	// ErrOperationNotFound is a bulk operation that does not exist in the domain.
	ErrOperationNotFound = errors.New("bulk operation not found")
	// ErrSuppressed is an address erased from the domain at its owner's request: it is never
	// added again.
	ErrSuppressed = errors.New("this address was erased from the domain at its owner's request and cannot be added again")
)

// Limits of the values a client sends.
const (
	// MaxReasonLength is the longest status reason, in characters.
	MaxReasonLength = 1000
	// MaxAttributesSize is the largest JSON encoding of a recipient's attributes, in bytes.
	MaxAttributesSize = 64 << 10
)

// ValidationError is a value a client sent that breaks a rule: Field names the request field
// and Reason says what a valid value looks like.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Is makes every ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }

// Status is whether a recipient may be sent campaigns, and if not, why. The values are the
// ones stored in recipient.recipients.status.
type Status string

// Statuses.
const (
	StatusSubscribed   Status = "subscribed"
	StatusUnsubscribed Status = "unsubscribed"
	StatusBounced      Status = "bounced"
	StatusComplained   Status = "complained"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusSubscribed, StatusUnsubscribed, StatusBounced, StatusComplained:
		return true
	}
	return false
}

// suppressed reports whether s stops delivery for a reason the recipient did not choose
// through the product: the address bounced or its owner complained.
func (s Status) suppressed() bool { return s == StatusBounced || s == StatusComplained }

// Recipient is an email address that a domain's campaigns are sent to.
type Recipient struct {
	ID     uuid.UUID
	Tenant tenancy.Tenant
	Email  string
	Status Status
	// StatusReason says why the status last changed.
	StatusReason string
	// StatusChangedAt is when the status was last set; zero while it never was.
	StatusChangedAt time.Time
	// LastEventID is the engagement event that last set the status; uuid.Nil when none did.
	LastEventID uuid.UUID
	Attributes  map[string]any
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// NewRecipient is what CreateRecipient needs.
type NewRecipient struct {
	Email      string
	Attributes map[string]any
	// Suppressions are the keyed hashes of Email (see EmailHasher.Candidates): Store.Create
	// refuses the address with ErrSuppressed when the domain holds any of them. Set by the
	// Service.
	Suppressions [][]byte
}

// Change is what UpdateRecipient asks for; nil and zero fields stay as they are.
type Change struct {
	// Attributes are merged into the stored ones; a nil value removes the key.
	Attributes map[string]any
	// Status, when set, is an explicit status change with StatusReason.
	Status       Status
	StatusReason string
}

// StatusChange asks for a recipient's status to change.
type StatusChange struct {
	Status Status
	Reason string
	// EventID is the engagement event behind the change, or uuid.Nil for an explicit change
	// by a user.
	EventID uuid.UUID
}

// Store persists recipients. Every method works inside the given tenant only: a recipient of
// another tenant is ErrNotFound.
type Store interface {
	// Create inserts a subscribed recipient; an email already in the domain is
	// ErrAlreadyExists, one whose hash is among the domain's suppressions ErrSuppressed.
	Create(ctx context.Context, t tenancy.Tenant, r NewRecipient) (Recipient, error)
	// Get returns one recipient.
	Get(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (Recipient, error)
	// Update locks the recipient, passes it to apply and, when apply reports a change, stores
	// what apply returned (status, reason, status time, last event, attributes and update
	// time), all in one transaction. It returns the recipient as stored afterwards.
	Update(ctx context.Context, t tenancy.Tenant, id uuid.UUID, apply func(Recipient) (Recipient, bool, error)) (Recipient, error)
	// Delete removes a recipient.
	Delete(ctx context.Context, t tenancy.Tenant, id uuid.UUID) error
	// Erase removes a recipient and, in the same transaction, records hash(email) among the
	// domain's suppressions.
	Erase(ctx context.Context, t tenancy.Tenant, id uuid.UUID, hash func(email string) (keyID string, sum []byte)) error
	// List returns a page of the recipients matching q.Filter after q.After, in keyset order,
	// and how many match in all.
	List(ctx context.Context, t tenancy.Tenant, q Query) (Page, error)
	BulkStore
}

// Fields loads a workspace's custom field definitions (internal/store implements it).
type Fields interface {
	List(ctx context.Context, ws fields.Workspace) (fields.Definitions, error)
}

// Service applies the rules around a Store.
type Service struct {
	store  Store
	fields Fields
	hasher *EmailHasher
	now    func() time.Time
}

// NewService returns a Service on store that checks attributes against the definitions of
// fields and hashes erased addresses with hasher; now is its clock (time.Now in production).
func NewService(store Store, fields Fields, hasher *EmailHasher, now func() time.Time) *Service {
	return &Service{store: store, fields: fields, hasher: hasher, now: now}
}

func (s *Service) definitions(ctx context.Context, t tenancy.Tenant) (fields.Definitions, error) {
	ds, err := s.fields.List(ctx, fields.Workspace{CompanyID: t.CompanyID, WorkspaceID: t.WorkspaceID})
	if err != nil {
		return nil, fmt.Errorf("load field definitions: %w", err)
	}
	return ds, nil
}

// Create validates and adds a recipient: the email is trimmed and lower-cased, the attributes
// are checked against the workspace's custom fields (defaults of missing required fields
// filled in), and an address erased from the domain is refused (ErrSuppressed).
func (s *Service) Create(ctx context.Context, t tenancy.Tenant, in NewRecipient) (Recipient, error) {
	email, err := NormalizeEmail("email", in.Email)
	if err != nil {
		return Recipient{}, fmt.Errorf("create recipient: %w", err)
	}
	if err := validateAttributes(in.Attributes); err != nil {
		return Recipient{}, fmt.Errorf("create recipient: %w", err)
	}
	defs, err := s.definitions(ctx, t)
	if err != nil {
		return Recipient{}, fmt.Errorf("create recipient: %w", err)
	}
	attrs, err := defs.Validate(in.Attributes)
	if err != nil {
		return Recipient{}, fmt.Errorf("create recipient: %w", err)
	}
	r, err := s.store.Create(ctx, t, NewRecipient{Email: email, Attributes: attrs, Suppressions: s.hasher.Candidates(email)})
	if err != nil {
		return Recipient{}, fmt.Errorf("create recipient: %w", err)
	}
	return r, nil
}

// Get returns one recipient of the tenant.
func (s *Service) Get(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (Recipient, error) {
	r, err := s.store.Get(ctx, t, id)
	if err != nil {
		return Recipient{}, fmt.Errorf("get recipient: %w", err)
	}
	return r, nil
}

// UpdateStatus applies ch to a recipient (see Apply for the rules) and returns the recipient
// afterwards.
func (s *Service) UpdateStatus(ctx context.Context, t tenancy.Tenant, id uuid.UUID, ch StatusChange) (Recipient, error) {
	if err := ch.validate(); err != nil {
		return Recipient{}, fmt.Errorf("update recipient status: %w", err)
	}
	r, err := s.store.Update(ctx, t, id, func(cur Recipient) (Recipient, bool, error) {
		next, changed := Apply(cur, ch, s.now())
		return next, changed, nil
	})
	if err != nil {
		return Recipient{}, fmt.Errorf("update recipient status: %w", err)
	}
	return r, nil
}

// Update applies ch to a recipient: attributes merged (checked against the workspace's custom
// fields), and an explicit status change when ch.Status is set.
func (s *Service) Update(ctx context.Context, t tenancy.Tenant, id uuid.UUID, ch Change) (Recipient, error) {
	if ch.Attributes == nil && ch.Status == "" {
		return Recipient{}, fmt.Errorf("update recipient: %w", invalid("request", "set attributes or status"))
	}
	sc := StatusChange{Status: ch.Status, Reason: ch.StatusReason}
	if ch.Status != "" {
		if err := sc.validate(); err != nil {
			return Recipient{}, fmt.Errorf("update recipient: %w", err)
		}
	} else if ch.StatusReason != "" {
		return Recipient{}, fmt.Errorf("update recipient: %w", invalid("status_reason", "is set only with status"))
	}
	var defs fields.Definitions
	if ch.Attributes != nil {
		if err := validateAttributes(ch.Attributes); err != nil {
			return Recipient{}, fmt.Errorf("update recipient: %w", err)
		}
		var err error
		if defs, err = s.definitions(ctx, t); err != nil {
			return Recipient{}, fmt.Errorf("update recipient: %w", err)
		}
	}
	now := s.now()
	r, err := s.store.Update(ctx, t, id, func(cur Recipient) (Recipient, bool, error) {
		next := cur
		if ch.Attributes != nil {
			attrs, err := defs.ValidatePatch(cur.Attributes, ch.Attributes)
			if err != nil {
				return cur, false, err
			}
			if err := validateAttributes(attrs); err != nil {
				return cur, false, err
			}
			next.Attributes = attrs
			next.UpdatedAt = now
		}
		if ch.Status != "" {
			next, _ = Apply(next, sc, now)
		}
		return next, true, nil
	})
	if err != nil {
		return Recipient{}, fmt.Errorf("update recipient: %w", err)
	}
	return r, nil
}

// Delete removes a recipient; the address may be added again.
func (s *Service) Delete(ctx context.Context, t tenancy.Tenant, id uuid.UUID) error {
	if err := s.store.Delete(ctx, t, id); err != nil {
		return fmt.Errorf("delete recipient: %w", err)
	}
	return nil
}

// Erase removes a recipient and its attributes for good and keeps only the keyed hash of its
// address, so that the domain refuses the address from then on.
func (s *Service) Erase(ctx context.Context, t tenancy.Tenant, id uuid.UUID) error {
	if err := s.store.Erase(ctx, t, id, s.hasher.Hash); err != nil {
		return fmt.Errorf("erase recipient: %w", err)
	}
	return nil
}

func (ch StatusChange) validate() error {
	if !ch.Status.Valid() {
		return invalid("status", "must be one of SUBSCRIBED, UNSUBSCRIBED, BOUNCED, COMPLAINED")
	}
	if utf8.RuneCountInString(ch.Reason) > MaxReasonLength {
		return invalid("reason", fmt.Sprintf("must be at most %d characters", MaxReasonLength))
	}
	if strings.ContainsRune(ch.Reason, 0) {
		return invalid("reason", "must not contain NUL characters")
	}
	return nil
}

// Apply returns cur after ch at time now, and whether anything changed:
//
//   - a change carrying the event that last changed the status is a replay and changes
//     nothing, so event consumers can retry safely;
//   - an event never moves a bounced or complained recipient back to subscribed: that takes
//     an explicit change without an event id;
//   - otherwise the status, reason and status time are recorded, and the event id when there
//     is one (an explicit change keeps the last event id).
func Apply(cur Recipient, ch StatusChange, now time.Time) (Recipient, bool) {
	fromEvent := ch.EventID != uuid.Nil
	if fromEvent && cur.LastEventID == ch.EventID {
		return cur, false
	}
	if fromEvent && ch.Status == StatusSubscribed && cur.Status.suppressed() {
		return cur, false
	}
	next := cur
	next.Status = ch.Status
	next.StatusReason = ch.Reason
	next.StatusChangedAt = now
	next.UpdatedAt = now
	if fromEvent {
		next.LastEventID = ch.EventID
	}
	return next, true
}

// validateAttributes checks what PostgreSQL would otherwise reject or what would bloat a row.
// Custom-field definitions are checked elsewhere.
func validateAttributes(attrs map[string]any) error {
	b, err := json.Marshal(attrs)
	if err != nil {
		return invalid("attributes", "must hold only JSON values (no NaN or infinite numbers)")
	}
	if len(b) > MaxAttributesSize {
		return invalid("attributes", fmt.Sprintf("must be at most %d bytes as JSON", MaxAttributesSize))
	}
	if hasNUL(attrs) {
		// jsonb cannot store U+0000.
		return invalid("attributes", "must not contain NUL characters")
	}
	return nil
}

func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, 0)
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, 0) || hasNUL(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasNUL(e) {
				return true
			}
		}
	}
	return false
}
