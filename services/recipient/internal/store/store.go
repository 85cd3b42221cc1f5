// Package store keeps recipients, custom field definitions, suppressions and bulk operations
// in PostgreSQL (schema recipient). Every query runs in a transaction scoped to the tenant
// (tenancy.InTx, or a workspace-scoped one for field definitions) and filters on company,
// workspace and domain, so a row of another tenant is never seen, even without row-level
// security.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
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
	db       tenancy.Beginner
	inserter *jobs.Inserter
}

// New returns a Store on db (a *pgxpool.Pool) that enqueues bulk operation jobs with inserter
// in the transaction that creates the operation.
func New(db tenancy.Beginner, inserter *jobs.Inserter) *Store {
	return &Store{db: db, inserter: inserter}
}

// Create implements recipient.Store.
func (s *Store) Create(ctx context.Context, t tenancy.Tenant, in recipient.NewRecipient) (recipient.Recipient, error) {
	var r recipient.Recipient
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		if err := lockAddress(ctx, tx, t, in.Email); err != nil {
			return err
		}
		suppressed, err := suppressedTx(ctx, tx, t, in.Suppressions)
		if err != nil {
			return err
		}
		if suppressed {
			return recipient.ErrSuppressed
		}
		row := tx.QueryRow(ctx, `INSERT INTO recipient.recipients
			(company_id, workspace_id, domain_id, email, attributes)
			VALUES ($1, $2, $3, $4, $5)
			RETURNING `+columns,
			t.CompanyID, t.WorkspaceID, t.DomainID, in.Email, in.Attributes)
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
				updated_at = $9, attributes = $10
			WHERE id = $1 AND `+tenantFilter+`
			RETURNING `+columns,
			id, t.CompanyID, t.WorkspaceID, t.DomainID,
			string(next.Status), next.StatusReason, nullTime(next.StatusChangedAt),
			nullUUID(next.LastEventID), next.UpdatedAt, attributesOf(next)))
		return err
	})
	if err != nil {
		return recipient.Recipient{}, fmt.Errorf("update recipient: %w", mapError(err))
	}
	return r, nil
}

// Delete implements recipient.Store.
func (s *Store) Delete(ctx context.Context, t tenancy.Tenant, id uuid.UUID) error {
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM recipient.recipients WHERE id = $1 AND `+tenantFilter,
			id, t.CompanyID, t.WorkspaceID, t.DomainID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return recipient.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete recipient: %w", mapError(err))
	}
	return nil
}

// Erase implements recipient.Store.
func (s *Store) Erase(ctx context.Context, t tenancy.Tenant, id uuid.UUID, hash func(string) (string, []byte)) error {
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var email string
		err := tx.QueryRow(ctx, `SELECT email FROM recipient.recipients WHERE id = $1 AND `+tenantFilter,
			id, t.CompanyID, t.WorkspaceID, t.DomainID).Scan(&email)
		if err != nil {
			return err
		}
		// Before the row is deleted, so that a create of the address waits for the
		// suppression rather than the row (see lockAddress).
		if err := lockAddress(ctx, tx, t, email); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `DELETE FROM recipient.recipients WHERE id = $1 AND `+tenantFilter+`
			RETURNING email`, id, t.CompanyID, t.WorkspaceID, t.DomainID).Scan(&email)
		if err != nil {
			return err
		}
		keyID, sum := hash(email)
		_, err = tx.Exec(ctx, `INSERT INTO recipient.suppressions
			(company_id, workspace_id, domain_id, email_hash, key_id)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (domain_id, email_hash) DO NOTHING`,
			t.CompanyID, t.WorkspaceID, t.DomainID, sum, keyID)
		return err
	})
	if err != nil {
		return fmt.Errorf("erase recipient: %w", mapError(err))
	}
	return nil
}

// SuppressedTx reports, inside a transaction scoped to t (tenancy.InTx), which of emails (normalised)
// were erased from t's domain: the result holds the erased ones. Imports use it to skip them.
func SuppressedTx(ctx context.Context, tx pgx.Tx, hasher *recipient.EmailHasher, t tenancy.Tenant, emails []string) (map[string]bool, error) {
	if len(emails) == 0 {
		return map[string]bool{}, nil
	}
	byHash := make(map[string]string, len(emails))
	sums := make([][]byte, 0, len(emails))
	for _, e := range emails {
		for _, sum := range hasher.Candidates(e) {
			byHash[string(sum)] = e
			sums = append(sums, sum)
		}
	}
	rows, err := tx.Query(ctx, `SELECT email_hash FROM recipient.suppressions
		WHERE domain_id = $1 AND company_id = $2 AND workspace_id = $3 AND email_hash = ANY($4)`,
		t.DomainID, t.CompanyID, t.WorkspaceID, sums)
	if err != nil {
		return nil, fmt.Errorf("select suppressions: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("select suppressions: %w", err)
	}
	out := make(map[string]bool, len(found))
	for _, sum := range found {
		out[byHash[string(sum)]] = true
	}
	return out, nil
}

// lockAddress serialises a create and an erasure of one address in a domain until the end
// of the transaction: without it, a create that checked the suppressions just before an
// erasure committed would insert the erased address again.
func lockAddress(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, email string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('recipient.address:' || $1::text || ':' || $2, 0))`,
		t.DomainID, email)
	if err != nil {
		return fmt.Errorf("lock address: %w", err)
	}
	return nil
}

func suppressedTx(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, sums [][]byte) (bool, error) {
	if len(sums) == 0 {
		return false, nil
	}
	var found bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recipient.suppressions
		WHERE domain_id = $1 AND company_id = $2 AND workspace_id = $3 AND email_hash = ANY($4))`,
		t.DomainID, t.CompanyID, t.WorkspaceID, sums).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("select suppressions: %w", err)
	}
	return found, nil
}

func attributesOf(r recipient.Recipient) map[string]any {
	if r.Attributes == nil {
		return map[string]any{}
	}
	return r.Attributes
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
