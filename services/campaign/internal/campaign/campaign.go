// Package campaign holds the rules of a domain's campaigns: what a valid draft looks like and
// which state changes a campaign may go through (draft → scheduled → sending → sent, with
// pause and cancel on the way). It defines the Store it needs; internal/store implements it on
// PostgreSQL.
package campaign

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
)

// Errors the transport maps to status codes. They are wrapped with context; test them with
// errors.Is (ErrInvalid through a *ValidationError, which says what to fix).
var (
	ErrNotFound          = errors.New("campaign not found")
	ErrInvalid           = errors.New("invalid campaign")
	ErrInvalidTransition = errors.New("campaign state change not allowed")
)

// Limits of a campaign's content.
const (
	// MaxNameLength is the longest name, in characters.
	MaxNameLength = 200
	// MaxSubjectLength is the longest subject, in characters: RFC 5322's line limit.
	MaxSubjectLength = 998
	// MaxBodySize is the largest HTML or text body, in bytes.
	MaxBodySize = 1 << 20
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

// Campaign is one email sent to an audience of a domain.
type Campaign struct {
	ID        uuid.UUID
	Tenant    tenancy.Tenant
	Name      string
	Subject   string
	FromEmail string
	HTMLBody  string
	TextBody  string
	State     State
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NewCampaign is what CreateCampaign needs.
type NewCampaign struct {
	Name      string
	Subject   string
	FromEmail string
	HTMLBody  string
	TextBody  string
}

// Store persists campaigns. Every method works inside the given tenant only: a campaign of
// another tenant is ErrNotFound.
type Store interface {
	// Create inserts a draft campaign.
	Create(ctx context.Context, t tenancy.Tenant, c NewCampaign) (Campaign, error)
	// Get returns one campaign.
	Get(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (Campaign, error)
}

// Service applies the rules around a Store.
type Service struct {
	store Store
}

// NewService returns a Service on store.
func NewService(store Store) *Service { return &Service{store: store} }

// Create validates a campaign and stores it as a draft. The name is trimmed and the sender
// address trimmed and lower-cased.
func (s *Service) Create(ctx context.Context, t tenancy.Tenant, in NewCampaign) (Campaign, error) {
	in, err := in.normalize()
	if err != nil {
		return Campaign{}, fmt.Errorf("create campaign: %w", err)
	}
	c, err := s.store.Create(ctx, t, in)
	if err != nil {
		return Campaign{}, fmt.Errorf("create campaign: %w", err)
	}
	return c, nil
}

// Get returns one campaign of the tenant.
func (s *Service) Get(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (Campaign, error) {
	c, err := s.store.Get(ctx, t, id)
	if err != nil {
		return Campaign{}, fmt.Errorf("get campaign: %w", err)
	}
	return c, nil
}

func (in NewCampaign) normalize() (NewCampaign, error) {
	in.Name = strings.TrimSpace(in.Name)
	switch {
	case in.Name == "":
		return in, invalid("name", "is required")
	case utf8.RuneCountInString(in.Name) > MaxNameLength:
		return in, invalid("name", fmt.Sprintf("must be at most %d characters", MaxNameLength))
	case strings.ContainsRune(in.Name, 0):
		return in, invalid("name", "must not contain NUL characters")
	}

	switch {
	case strings.TrimSpace(in.Subject) == "":
		return in, invalid("subject", "is required")
	case utf8.RuneCountInString(in.Subject) > MaxSubjectLength:
		return in, invalid("subject", fmt.Sprintf("must be at most %d characters", MaxSubjectLength))
	case strings.ContainsAny(in.Subject, "\r\n\x00"):
		// A line break in a header would let the subject inject headers of its own.
		return in, invalid("subject", "must be a single line without control characters")
	}

	email, err := NormalizeEmail("from_email", in.FromEmail)
	if err != nil {
		return in, err
	}
	in.FromEmail = email

	if strings.TrimSpace(in.HTMLBody) == "" && strings.TrimSpace(in.TextBody) == "" {
		return in, invalid("html_body/text_body", "at least one of the two bodies is required")
	}
	for _, b := range []struct{ field, body string }{{"html_body", in.HTMLBody}, {"text_body", in.TextBody}} {
		if len(b.body) > MaxBodySize {
			return in, invalid(b.field, fmt.Sprintf("must be at most %d bytes", MaxBodySize))
		}
		if strings.ContainsRune(b.body, 0) {
			return in, invalid(b.field, "must not contain NUL characters")
		}
	}
	return in, nil
}

// Transition returns c moved to state to at time now, or ErrInvalidTransition when
// CanTransition forbids it.
func (c Campaign) Transition(to State, now time.Time) (Campaign, error) {
	if !CanTransition(c.State, to) {
		return c, fmt.Errorf("%w: from %s to %s", ErrInvalidTransition, c.State, to)
	}
	c.State = to
	c.UpdatedAt = now
	return c, nil
}
