package identity

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// NewAccount is what sign-up stores in one transaction: a company, its owner and a first
// workspace.
type NewAccount struct {
	CompanyName   string
	WorkspaceName string
	Email         string
	Name          string
	PasswordHash  string
}

// NewInvitation is a role in a workspace for an email address, with the invitation token's
// hash to store when the address has no account yet.
type NewInvitation struct {
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
	Email       string
	Role        Role
	TokenHash   string
	CreatedBy   uuid.UUID
	ExpiresAt   time.Time
}

// WorkspaceAccess is what authorizing a workspace route needs to know, read in one go.
type WorkspaceAccess struct {
	// WorkspaceExists: the workspace belongs to the company.
	WorkspaceExists bool
	// DomainExists: the domain (when one was asked about) belongs to the workspace.
	DomainExists bool
	// Role is the user's role there: owner when they own the company, "" when they have none.
	Role Role
}

// Admit decides, under the company's lock and with its current usage, whether one more seat
// or domain may be added; it returns a *PlanLimitError when not.
type Admit func(Company) error

// Store keeps identities. Every method that touches a table with row-level security runs in
// a transaction scoped to the company it is given.
type Store interface {
	// CreateAccount stores a new company, its owner (membership role owner) and a first
	// workspace in one transaction. ErrEmailTaken when the email has an account.
	CreateAccount(ctx context.Context, in NewAccount) (User, Company, Workspace, error)
	// UserByEmail finds a user by (lower-case) email.
	UserByEmail(ctx context.Context, email string) (User, error)
	// User finds a user of company by id.
	User(ctx context.Context, company, id uuid.UUID) (User, error)

	// CreateRefreshToken stores a new refresh token.
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken finds the refresh token whose hash is hash and locks it. When it has
	// been used or revoked already, its whole family is revoked and ErrTokenReused returned.
	// Otherwise next decides on the token (it may refuse it with an error) and returns its
	// successor, which is stored while the token is marked used, all in one transaction.
	RotateRefreshToken(ctx context.Context, hash string, now time.Time, next func(RefreshToken) (RefreshToken, error)) (RefreshToken, error)
	// RevokeRefreshFamily revokes every token of the family of the token whose hash is hash;
	// an unknown hash is not an error.
	RevokeRefreshFamily(ctx context.Context, hash string, now time.Time) error

	// APIKeyByPrefix finds an API key by its visible prefix, before any tenant is known.
	APIKeyByPrefix(ctx context.Context, prefix string) (APIKey, error)
	// TouchAPIKey sets the key's last use to now unless it was set less than a minute ago.
	TouchAPIKey(ctx context.Context, company, id uuid.UUID, now time.Time) error
	// CreateAPIKey stores a new key.
	CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error)
	// APIKeys lists the keys of a workspace, newest first.
	APIKeys(ctx context.Context, company, workspace uuid.UUID) ([]APIKey, error)
	// RevokeAPIKey revokes a key of the workspace.
	RevokeAPIKey(ctx context.Context, company, workspace, id uuid.UUID, now time.Time) error

	// InvitationByTokenHash finds an invitation by its token's hash, before any tenant is known.
	InvitationByTokenHash(ctx context.Context, hash string) (Invitation, error)
	// AcceptInvitation sets the password (and name, when not empty) of the invited user and
	// marks every open invitation of the user accepted. ErrInvitationInvalid when the
	// invitation was accepted meanwhile or the user already has a password.
	AcceptInvitation(ctx context.Context, inv Invitation, passwordHash, name string, now time.Time) (User, error)
	// Invite gives the user with in.Email a role in the workspace. A user of the company gets
	// the membership at once; an address without an account gets a pending user, the
	// membership and an invitation (admit decides first whether a seat is left), and so does a
	// pending user. invited reports whether the invitation was stored. ErrEmailTaken when the
	// address belongs to another company, ErrAlreadyMember when it already has a role there.
	Invite(ctx context.Context, in NewInvitation, admit Admit) (m Member, invited bool, err error)

	// Memberships lists the user's roles in the company.
	Memberships(ctx context.Context, company, user uuid.UUID) ([]Membership, error)
	// WorkspaceAccess reads whether the workspace (and the domain, unless nil) belong to the
	// company and the user's role there (user nil: no role).
	WorkspaceAccess(ctx context.Context, company, user, workspace, domain uuid.UUID) (WorkspaceAccess, error)
	// Members lists the members of a workspace (owners, who hold no workspace role, are not
	// listed).
	Members(ctx context.Context, company, workspace uuid.UUID) ([]Member, error)
	// UpdateMember changes a member's role in the workspace.
	UpdateMember(ctx context.Context, company, workspace, user uuid.UUID, role Role) (Member, error)
	// RemoveMember removes the user's role in the workspace; a user left with no role at all
	// is deleted, which frees their seat and ends their sessions.
	RemoveMember(ctx context.Context, company, workspace, user uuid.UUID) error

	// Company returns the company with its usage.
	Company(ctx context.Context, company uuid.UUID) (Company, error)
	// RenameCompany renames the company.
	RenameCompany(ctx context.Context, company uuid.UUID, name string) (Company, error)
	// CreateWorkspace adds a workspace to the company.
	CreateWorkspace(ctx context.Context, company uuid.UUID, name string) (Workspace, error)
	// Workspaces lists the company's workspaces, oldest first; only those of ids unless ids is
	// nil.
	Workspaces(ctx context.Context, company uuid.UUID, ids []uuid.UUID) ([]Workspace, error)
	// Workspace returns one workspace of the company.
	Workspace(ctx context.Context, company, workspace uuid.UUID) (Workspace, error)
	// RenameWorkspace renames a workspace of the company.
	RenameWorkspace(ctx context.Context, company, workspace uuid.UUID, name string) (Workspace, error)

	// CreateDomain adds a domain to the workspace once admit agrees. ErrDomainTaken when the
	// name is registered anywhere.
	CreateDomain(ctx context.Context, company, workspace uuid.UUID, name string, admit Admit) (Domain, error)
	// Domains lists the domains of a workspace, oldest first.
	Domains(ctx context.Context, company, workspace uuid.UUID) ([]Domain, error)
	// Domain returns one domain of the workspace.
	Domain(ctx context.Context, company, workspace, domain uuid.UUID) (Domain, error)
	// DeleteDomain removes a domain of the workspace.
	DeleteDomain(ctx context.Context, company, workspace, domain uuid.UUID) error

	// IsOperator reports whether the user is a platform operator.
	IsOperator(ctx context.Context, user uuid.UUID) (bool, error)
	// GrantOperator makes the user with email a platform operator (granting twice is not an
	// error).
	GrantOperator(ctx context.Context, email, grantedBy string) (Operator, error)
	// RevokeOperator takes operator rights from the user with email; ErrNotFound when they had
	// none.
	RevokeOperator(ctx context.Context, email string) error
	// Operators lists the platform operators, oldest grant first.
	Operators(ctx context.Context) ([]Operator, error)
}

// LoginThrottle limits login attempts per account and per client address.
type LoginThrottle interface {
	// AllowLogin takes one attempt for the account email and one for clientIP (when not
	// empty); it returns how long to wait when either has none left, 0 when the attempt may
	// go ahead.
	AllowLogin(ctx context.Context, email, clientIP string) (time.Duration, error)
}
