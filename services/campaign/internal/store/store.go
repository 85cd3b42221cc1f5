// Package store keeps campaigns in PostgreSQL (schema campaign). Every query runs in a
// transaction scoped to the tenant (tenancy.InTx) and filters on company, workspace and
// domain, so a row of another tenant is never seen, even without row-level security.
//
// The lifecycle column is moving from state to status (docs/migrations.md, "A worked
// example"): the store writes both, and reads status when the flag campaign_status_reads is
// on, state otherwise.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldmail/herald/services/campaign/internal/campaign"
)

// columnsState and columnsStatus are the select lists every query returns, in the order scan
// reads them: the lifecycle read from state, or from status.
const (
	columnsState = `id, company_id, workspace_id, domain_id, name, subject, from_email,
	html_body, text_body, state, created_at, updated_at`
	columnsStatus = `id, company_id, workspace_id, domain_id, name, subject, from_email,
	html_body, text_body, status, created_at, updated_at`
)

// Store implements campaign.Store.
type Store struct {
	db    tenancy.Beginner
	flags flags.Provider
}

// New returns a Store on db (a *pgxpool.Pool); fl decides which column the lifecycle is read
// from (flags.CampaignStatusReads).
func New(db tenancy.Beginner, fl flags.Provider) *Store { return &Store{db: db, flags: fl} }

// columns returns the select list for a query made for t.
func (s *Store) columns(ctx context.Context, t tenancy.Tenant) string {
	if s.flags.Enabled(ctx, flags.CampaignStatusReads, flags.Scope{CompanyID: t.CompanyID, WorkspaceID: t.WorkspaceID}) {
		return columnsStatus
	}
	return columnsState
}

// Create implements campaign.Store.
func (s *Store) Create(ctx context.Context, t tenancy.Tenant, in campaign.NewCampaign) (campaign.Campaign, error) {
	var c campaign.Campaign
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		c, err = scan(tx.QueryRow(ctx, `INSERT INTO campaign.campaigns
			(company_id, workspace_id, domain_id, name, subject, from_email, html_body, text_body, state, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
			RETURNING `+s.columns(ctx, t),
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
		c, err = scan(tx.QueryRow(ctx, `SELECT `+s.columns(ctx, t)+` FROM campaign.campaigns
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
