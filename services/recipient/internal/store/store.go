// Package store keeps recipients in PostgreSQL (schema recipient). Every query runs in a
// transaction scoped to the tenant (tenancy.InTx) and filters on company, workspace and
// domain, so a row of another tenant is never seen, even without row-level security.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// columns is the select list every query returns, in the order scan reads it.
const columns = `id, company_id, workspace_id, domain_id, email, status, status_reason,
	status_changed_at, last_event_id, attributes, created_at, updated_at`

// tenantFilter matches rows of the tenant whose company, workspace and domain are $2..$4.
const tenantFilter = `company_id = $2 AND workspace_id = $3 AND domain_id = $4`

// uniqueEmail is the constraint that keeps one email per domain.
const uniqueEmail = "recipients_domain_id_email_key"

// Store implements recipient.Store.
type Store struct {
	db tenancy.Beginner
}

// New returns a Store on db (a *pgxpool.Pool).
func New(db tenancy.Beginner) *Store { return &Store{db: db} }

// Create implements recipient.Store.
func (s *Store) Create(ctx context.Context, t tenancy.Tenant, in recipient.NewRecipient) (recipient.Recipient, error) {
	var r recipient.Recipient
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `INSERT INTO recipient.recipients
			(company_id, workspace_id, domain_id, email, attributes)
			VALUES ($1, $2, $3, $4, $5)
			RETURNING `+columns,
			t.CompanyID, t.WorkspaceID, t.DomainID, in.Email, in.Attributes)
		var err error
		r, err = scan(row)
		return err
	})
	if err != nil {
		return recipient.Recipient{}, fmt.Errorf("insert recipient: %w", mapError(err))
	}
	return r, nil
}

// Get implements recipient.Store.
func (s *Store) Get(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (recipient.Recipient, error) {
	var r recipient.Recipient
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		r, err = scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM recipient.recipients
			WHERE id = $1 AND `+tenantFilter,
			id, t.CompanyID, t.WorkspaceID, t.DomainID))
		return err
	})
	if err != nil {
		return recipient.Recipient{}, fmt.Errorf("select recipient: %w", mapError(err))
	}
	return r, nil
}

// Update implements recipient.Store.
func (s *Store) Update(ctx context.Context, t tenancy.Tenant, id uuid.UUID, apply func(recipient.Recipient) (recipient.Recipient, bool, error)) (recipient.Recipient, error) {
	var r recipient.Recipient
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		cur, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM recipient.recipients
			WHERE id = $1 AND `+tenantFilter+` FOR UPDATE`,
			id, t.CompanyID, t.WorkspaceID, t.DomainID))
		if err != nil {
			return err
		}
		next, changed, err := apply(cur)
		if err != nil {
			return err
		}
		if !changed {
			r = cur
			return nil
		}
		r, err = scan(tx.QueryRow(ctx, `UPDATE recipient.recipients
			SET status = $5, status_reason = $6, status_changed_at = $7, last_event_id = $8,
				updated_at = $9
			WHERE id = $1 AND `+tenantFilter+`
			RETURNING `+columns,
			id, t.CompanyID, t.WorkspaceID, t.DomainID,
			string(next.Status), next.StatusReason, nullTime(next.StatusChangedAt),
			nullUUID(next.LastEventID), next.UpdatedAt))
		return err
	})
	if err != nil {
		return recipient.Recipient{}, fmt.Errorf("update recipient: %w", mapError(err))
	}
	return r, nil
}

func scan(row pgx.Row) (recipient.Recipient, error) {
	var (
		r         recipient.Recipient
		status    string
		changedAt *time.Time
		lastEvent *uuid.UUID
	)
	err := row.Scan(&r.ID, &r.Tenant.CompanyID, &r.Tenant.WorkspaceID, &r.Tenant.DomainID,
		&r.Email, &status, &r.StatusReason, &changedAt, &lastEvent, &r.Attributes,
		&r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return recipient.Recipient{}, err
	}
	r.Status = recipient.Status(status)
	if changedAt != nil {
		r.StatusChangedAt = *changedAt
	}
	if lastEvent != nil {
		r.LastEventID = *lastEvent
	}
	if r.Attributes == nil {
		r.Attributes = map[string]any{}
	}
	return r, nil
}

// mapError turns the PostgreSQL errors a client can cause into business errors; the rest
// pass through unchanged.
func mapError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return recipient.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == pgerrcode.UniqueViolation && pgErr.ConstraintName == uniqueEmail:
			return recipient.ErrAlreadyExists
		case pgErr.Code == pgerrcode.UntranslatableCharacter || pgErr.Code == pgerrcode.CharacterNotInRepertoire:
			// A NUL character the business rules did not catch.
			return &recipient.ValidationError{Field: "request", Reason: "must not contain NUL characters"}
		}
	}
	return err
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
