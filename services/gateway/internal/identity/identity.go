// Package identity holds the rules of Herald's accounts: companies, workspaces, domains,
// users, memberships, invitations, API keys, sessions and platform operators. It decides who
// may do what (the role → permission table), how secrets are made and checked (argon2id
// passwords, rotating refresh tokens, API keys) and what the plan allows; it reaches the
// database only through Store.
package identity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Errors of the identity rules. The transport maps each to one status; cross-tenant look-ups
// are ErrNotFound, never ErrPermissionDenied, so ids do not leak existence.
var (
	// ErrNotFound is a missing resource or one of another company.
	ErrNotFound = errors.New("not found")
	// ErrUnauthenticated is a missing, unknown, expired or revoked credential.
	ErrUnauthenticated = errors.New("missing or invalid credentials")
	// ErrInvalidCredentials is a wrong email or password.
	ErrInvalidCredentials = errors.New("invalid email or password")
	// ErrTokenReused is a refresh token presented after it was rotated or revoked: its whole
	// family is revoked.
	ErrTokenReused = errors.New("refresh token already used")
	// ErrPermissionDenied is a caller whose role in the workspace lacks the permission.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrEmailTaken is an email that already has an account.
	ErrEmailTaken = errors.New("an account with this email already exists")
	// ErrAlreadyMember is a user who already has a role in the workspace.
	ErrAlreadyMember = errors.New("the user is already a member of this workspace")
	// ErrDomainTaken is a domain name already registered.
	ErrDomainTaken = errors.New("this domain is already registered")
	// ErrPrefixTaken is a new API key whose random prefix another key has: make another.
	ErrPrefixTaken = errors.New("api key prefix already in use")
	// ErrInvitationInvalid is an invitation token that is unknown, expired or already used.
	ErrInvitationInvalid = errors.New("the invitation is unknown, expired or already accepted")
	// ErrSessionRequired is an API key on an operation only a signed-in user may call.
	ErrSessionRequired = errors.New("this operation needs a user session, not an API key")
)

// NotFoundError names the resource that was not found. It matches ErrNotFound.
type NotFoundError struct {
	// Resource is what was looked for: "workspace", "domain", "member", ...
	Resource string
}

func (e *NotFoundError) Error() string { return e.Resource + " not found" }

// Is makes a NotFoundError match ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

func notFound(resource string) error { return &NotFoundError{Resource: resource} }

// ValidationError is input the client must fix: the field and what is wrong with it.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + " " + e.Reason }

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }

// Plan limits that PlanLimitError names.
const (
	LimitSeats   = "seats"
	LimitDomains = "domains"
)

// PlanLimitError is an operation the company's plan does not allow: one more seat or domain
// than it includes.
type PlanLimitError struct {
	// Limit is LimitSeats or LimitDomains.
	Limit string
	// Max is what the plan allows.
	Max int
}

func (e *PlanLimitError) Error() string {
	return "the plan allows at most " + strconv.Itoa(e.Max) + " " + e.Limit + "; upgrade the plan or remove some first"
}

// RateLimitedError is a request refused until RetryAfter has passed.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many attempts, retry in %s", e.RetryAfter.Round(time.Second))
}

// Company is the billing entity, with its plan limits and, where asked for, its usage.
type Company struct {
	ID               uuid.UUID
	Name             string
	Plan             string
	MaxSeats         int
	MaxDomains       int
	MonthlySendLimit int64
	// SeatsUsed counts the users of the company, invited ones included.
	SeatsUsed int
	// DomainsUsed counts the domains of every workspace of the company.
	DomainsUsed int
	CreatedAt   time.Time
}

// Workspace groups domains, settings and members of a company.
type Workspace struct {
	ID        uuid.UUID
	CompanyID uuid.UUID
	Name      string
	CreatedAt time.Time
}

// Domain is an email sending domain of a workspace.
type Domain struct {
	ID          uuid.UUID
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
	Name        string
	CreatedAt   time.Time
}

// User is a person with an account. PasswordHash is empty until an invited user accepts.
type User struct {
	ID           uuid.UUID
	CompanyID    uuid.UUID
	Email        string
	Name         string
	PasswordHash string
	CreatedAt    time.Time
}

// Pending reports whether the user was invited and has not accepted yet.
func (u User) Pending() bool { return u.PasswordHash == "" }

// Membership is a role in the company (owner, WorkspaceID nil) or in one workspace.
type Membership struct {
	WorkspaceID uuid.UUID
	Role        Role
}

// Member is a user with their role in a workspace.
type Member struct {
	User User
	Role Role
}

// APIKey is a machine credential for one workspace with one role. SecretHash is the SHA-256
// of the whole key; the key itself is shown once, at creation.
type APIKey struct {
	ID          uuid.UUID
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
	Name        string
	Prefix      string
	SecretHash  string
	Role        Role
	CreatedBy   uuid.UUID
	CreatedAt   time.Time
	LastUsedAt  time.Time // zero when never used
	RevokedAt   time.Time // zero while valid
}

// Invitation lets an invited user set their password.
type Invitation struct {
	ID          uuid.UUID
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Role        Role
	TokenHash   string
	CreatedBy   uuid.UUID
	CreatedAt   time.Time
	ExpiresAt   time.Time
	AcceptedAt  time.Time // zero until accepted
}

// RefreshToken is one link of a session's chain of refresh tokens; all links of a session
// share FamilyID.
type RefreshToken struct {
	ID        uuid.UUID
	CompanyID uuid.UUID
	UserID    uuid.UUID
	FamilyID  uuid.UUID
	TokenHash string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until rotated
	RevokedAt time.Time // zero until revoked
}

// Operator is a platform operator: a user granted operator rights by a command run on the
// server.
type Operator struct {
	UserID    uuid.UUID
	Email     string
	GrantedAt time.Time
	GrantedBy string
}

// Tokens are what a successful login returns.
type Tokens struct {
	AccessToken    string
	AccessExpires  time.Time
	RefreshToken   string
	RefreshExpires time.Time
}

// Caller is an authenticated principal at the gateway: a user (UserID set) or an API key
// (APIKeyID set, acting with Role in WorkspaceID).
type Caller struct {
	CompanyID uuid.UUID
	UserID    uuid.UUID
	APIKeyID  uuid.UUID
	// WorkspaceID and Role are the API key's.
	WorkspaceID uuid.UUID
	Role        Role
}

// IsAPIKey reports whether the caller is an API key.
func (c Caller) IsAPIKey() bool { return c.APIKeyID != uuid.Nil }

// Subject names the caller in tokens and logs: the user id, or "apikey:<id>".
func (c Caller) Subject() string {
	if c.IsAPIKey() {
		return "apikey:" + c.APIKeyID.String()
	}
	return c.UserID.String()
}

// Access is an authorized request: the caller, the workspace and domain of the route (nil on
// company routes) and the role the caller acts with there.
type Access struct {
	Caller      Caller
	WorkspaceID uuid.UUID
	DomainID    uuid.UUID
	Role        Role
}

type callerKey struct{}

type accessKey struct{}

// WithCaller returns ctx carrying the authenticated caller.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the authenticated caller of ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// WithAccess returns ctx carrying the authorized access of the request.
func WithAccess(ctx context.Context, a Access) context.Context {
	return context.WithValue(ctx, accessKey{}, a)
}

// AccessFrom returns the authorized access of ctx.
func AccessFrom(ctx context.Context) (Access, bool) {
	a, ok := ctx.Value(accessKey{}).(Access)
	return a, ok
}
