// Package store keeps campaigns in PostgreSQL (schema campaign). Every query runs in a
// transaction scoped to the tenant (tenancy.InTx) and filters on company, workspace and
// domain, so a row of another tenant is never seen, even without row-level security.
//
// A campaign's lifecycle is its status column (it was state until the change that
// docs/migrations.md, "A worked example", walks through).
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldmail/herald/services/campaign/internal/campaign"
)

// columns is the select list every query returns, in the order scan reads it.
const columns = `id, company_id, workspace_id, domain_id, name, subject, from_email,
	html_body, text_body, status, created_at, updated_at`

// Store implements campaign.Store.
type Store struct {
	db tenancy.Beginner
}

// New returns a Store on db (a *pgxpool.Pool).
func New(db tenancy.Beginner) *Store { return &Store{db: db} }

// Create implements campaign.Store.
func (s *Store) Create(ctx context.Context, t tenancy.Tenant, in campaign.NewCampaign) (campaign.Campaign, error) {
	var c campaign.Campaign
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		c, err = scan(tx.QueryRow(ctx, `INSERT INTO campaign.campaigns
			(company_id, workspace_id, domain_id, name, subject, from_email, html_body, text_body, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			RETURNING `+columns,
			t.CompanyID, t.WorkspaceID, t.DomainID, in.Name, in.Subject, in.FromEmail,
			in.HTMLBody, in.TextBody, string(campaign.StateDraft)))
		return err
	})
	if err != nil {
		return campaign.Campaign{}, fmt.Errorf("insert campaign: %w", mapError(err))
	}
	return c, nil
}

// Get implements campaign.Store.
func (s *Store) Get(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (campaign.Campaign, error) {
	var c campaign.Campaign
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		c, err = scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM campaign.campaigns
			WHERE id = $1 AND company_id = $2 AND workspace_id = $3 AND domain_id = $4`,
			id, t.CompanyID, t.WorkspaceID, t.DomainID))
		return err
	})
	if err != nil {
		return campaign.Campaign{}, fmt.Errorf("select campaign: %w", mapError(err))
	}
	return c, nil
}

func scan(row pgx.Row) (campaign.Campaign, error) {
	var (
		c     campaign.Campaign
		state string
	)
	err := row.Scan(&c.ID, &c.Tenant.CompanyID, &c.Tenant.WorkspaceID, &c.Tenant.DomainID,
		&c.Name, &c.Subject, &c.FromEmail, &c.HTMLBody, &c.TextBody, &state,
		&c.CreatedAt, &c.UpdatedAt)
	if err != nil {
		return campaign.Campaign{}, err
	}
	c.State = campaign.State(state)
	return c, nil
}

// mapError turns the PostgreSQL errors a client can cause into business errors; the rest
// pass through unchanged.
func mapError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return campaign.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.UntranslatableCharacter || pgErr.Code == pgerrcode.CharacterNotInRepertoire) {
		// A NUL character the business rules did not catch.
		return &campaign.ValidationError{Field: "request", Reason: "must not contain NUL characters"}
	}
	return err
}
