// Package identitystore keeps identities in PostgreSQL (schema identity). The tables of a
// company's workspaces (workspaces, domains, memberships, invitations, api_keys) have
// row-level security at company level: every query of them runs in a transaction scoped to
// the company (app.company_id set for that transaction only) and filters on company_id too.
// The two look-ups made before the company is known go through the SECURITY DEFINER functions
// identity.api_key_by_prefix and identity.invitation_by_token_hash. users, refresh_tokens,
// platform_operators and companies carry no workspace and no policy. The flag audit
// (flagaudit.go) is visible per company, and its global rows to platform operators only.
package identitystore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

// Beginner starts transactions (a *pgxpool.Pool).
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Store implements identity.Store.
type Store struct {
	db Beginner
}

// New returns a Store on db.
func New(db Beginner) *Store { return &Store{db: db} }

// Unique constraints that map to business errors.
const (
	uniqueEmail      = "users_email_key"
	uniqueDomain     = "domains_name_key"
	uniqueMembership = "memberships_user_id_workspace_id_key"
	uniquePrefix     = "api_keys_prefix_key"
)

// inTx runs fn in a transaction with no tenant: for the tables without row-level security.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// inCompany runs fn in a transaction scoped to company: app.company_id is set for this
// transaction only (set_config(..., true), the function form of SET LOCAL), so the company
// policies see it and a pooled connection never carries it further.
func (s *Store) inCompany(ctx context.Context, company uuid.UUID, fn func(pgx.Tx) error) error {
	if company == uuid.Nil {
		return errors.New("company-scoped transaction without a company")
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := scopeTo(ctx, tx, company); err != nil {
			return err
		}
		return fn(tx)
	})
}

// scopeTo sets the company of the rest of tx.
func scopeTo(ctx context.Context, tx pgx.Tx, company uuid.UUID) error {
	if _, err := tx.Exec(ctx, `SELECT set_config('app.company_id', $1, true)`, company.String()); err != nil {
		return fmt.Errorf("set company: %w", err)
	}
	return nil
}

// mapError turns "no rows" and the unique violations into business errors.
func mapError(err error, resource string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return &identity.NotFoundError{Resource: resource}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
		switch pgErr.ConstraintName {
		case uniqueEmail:
			return identity.ErrEmailTaken
		case uniqueDomain:
			return identity.ErrDomainTaken
		case uniqueMembership:
			return identity.ErrAlreadyMember
		case uniquePrefix:
			return identity.ErrPrefixTaken
		}
	}
	return err
}

// nullUUID stores the nil UUID as NULL.
func nullUUID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}

// fromNull reads a nullable UUID.
func fromNull(id *uuid.UUID) uuid.UUID {
	if id == nil {
		return uuid.Nil
	}
	return *id
}

// fromNullTime reads a nullable timestamp; NULL is the zero time.
func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// Column lists, in the order the scan functions read them.
const (
	companyColumns = `c.id, c.name, c.plan, c.max_seats, c.max_domains, c.monthly_send_limit, c.created_at,
		(SELECT count(*) FROM identity.users AS u WHERE u.company_id = c.id),
		(SELECT count(*) FROM identity.domains AS d WHERE d.company_id = c.id)`
	userColumns       = `id, company_id, email, name, password_hash, created_at`
	workspaceColumns  = `id, company_id, name, created_at`
	domainColumns     = `id, company_id, workspace_id, name, created_at`
	apiKeyColumns     = `id, company_id, workspace_id, name, prefix, secret_hash, role, created_by, created_at, last_used_at, revoked_at` //nolint:gosec // column names, not a credential
	invitationColumns = `id, company_id, workspace_id, user_id, role, token_hash, created_by, created_at, expires_at, accepted_at`
	refreshColumns    = `id, company_id, user_id, family_id, token_hash, created_at, expires_at, used_at, revoked_at`
)

func scanCompany(row pgx.Row) (identity.Company, error) {
	var c identity.Company
	var seats, domains int64
	err := row.Scan(&c.ID, &c.Name, &c.Plan, &c.MaxSeats, &c.MaxDomains, &c.MonthlySendLimit, &c.CreatedAt, &seats, &domains)
	c.SeatsUsed, c.DomainsUsed = int(seats), int(domains)
	return c, err
}

func scanUser(row pgx.Row) (identity.User, error) {
	var u identity.User
	var hash *string
	if err := row.Scan(&u.ID, &u.CompanyID, &u.Email, &u.Name, &hash, &u.CreatedAt); err != nil {
		return identity.User{}, err
	}
	if hash != nil {
		u.PasswordHash = *hash
	}
	return u, nil
}

func scanWorkspace(row pgx.Row) (identity.Workspace, error) {
	var w identity.Workspace
	err := row.Scan(&w.ID, &w.CompanyID, &w.Name, &w.CreatedAt)
	return w, err
}

func scanDomain(row pgx.Row) (identity.Domain, error) {
	var d identity.Domain
	err := row.Scan(&d.ID, &d.CompanyID, &d.WorkspaceID, &d.Name, &d.CreatedAt)
	return d, err
}

func scanAPIKey(row pgx.Row) (identity.APIKey, error) {
	var k identity.APIKey
	var role string
	var createdBy *uuid.UUID
	var lastUsed, revoked *time.Time
	if err := row.Scan(&k.ID, &k.CompanyID, &k.WorkspaceID, &k.Name, &k.Prefix, &k.SecretHash, &role,
		&createdBy, &k.CreatedAt, &lastUsed, &revoked); err != nil {
		return identity.APIKey{}, err
	}
	k.Role = identity.Role(role)
	k.CreatedBy = fromNull(createdBy)
	k.LastUsedAt, k.RevokedAt = fromNullTime(lastUsed), fromNullTime(revoked)
	return k, nil
}

func scanInvitation(row pgx.Row) (identity.Invitation, error) {
	var inv identity.Invitation
	var role string
	var workspace, createdBy *uuid.UUID
	var accepted *time.Time
	if err := row.Scan(&inv.ID, &inv.CompanyID, &workspace, &inv.UserID, &role, &inv.TokenHash, &createdBy,
		&inv.CreatedAt, &inv.ExpiresAt, &accepted); err != nil {
		return identity.Invitation{}, err
	}
	inv.Role = identity.Role(role)
	inv.WorkspaceID, inv.CreatedBy = fromNull(workspace), fromNull(createdBy)
	inv.AcceptedAt = fromNullTime(accepted)
	return inv, nil
}

func scanRefresh(row pgx.Row) (identity.RefreshToken, error) {
	var t identity.RefreshToken
	var used, revoked *time.Time
	if err := row.Scan(&t.ID, &t.CompanyID, &t.UserID, &t.FamilyID, &t.TokenHash, &t.CreatedAt, &t.ExpiresAt,
		&used, &revoked); err != nil {
		return identity.RefreshToken{}, err
	}
	t.UsedAt, t.RevokedAt = fromNullTime(used), fromNullTime(revoked)
	return t, nil
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Store is checked against the interface it implements.
var _ identity.Store = (*Store)(nil)
