// Package store writes engagement events to events.email_events with pgx: a batch is copied
// into a transaction-local staging table, inserted from there skipping known ids, and the
// recipient status jobs of the new rows are enqueued in the same transaction, so a job exists
// if and only if its event row does.
package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// stagingTable lives for one transaction only (ON COMMIT DROP), so concurrent batches on
// other connections never see each other's rows.
const stagingTable = "email_events_staging"

var stagingColumns = []string{
	"id", "type", "campaign_id", "recipient_id", "occurred_at", "user_agent", "ip", "url", "bounce_class",
}

const createStaging = `CREATE TEMP TABLE ` + stagingTable + ` (
	id           uuid        NOT NULL,
	type         text        NOT NULL,
	campaign_id  uuid,
	recipient_id uuid,
	occurred_at  timestamptz NOT NULL,
	user_agent   text        NOT NULL,
	ip           text        NOT NULL,
	url          text        NOT NULL,
	bounce_class text        NOT NULL
) ON COMMIT DROP`

// The tenant ids come from the verified request, never from the events themselves.
const insertFromStaging = `INSERT INTO events.email_events
	(id, company_id, workspace_id, domain_id, type, campaign_id, recipient_id, occurred_at,
	 user_agent, ip, url, bounce_class)
SELECT id, $1, $2, $3, type, campaign_id, recipient_id, occurred_at,
	 user_agent, ip, url, bounce_class
FROM ` + stagingTable + `
ON CONFLICT (id) DO NOTHING
RETURNING id, type, recipient_id, bounce_class`

// Store implements events.Store on PostgreSQL.
type Store struct {
	db       tenancy.Beginner
	inserter *jobs.Inserter
}

// New returns a store on db (a pool) that enqueues jobs with inserter.
func New(db tenancy.Beginner, inserter *jobs.Inserter) *Store {
	return &Store{db: db, inserter: inserter}
}

// Insert implements events.Store.
func (s *Store) Insert(ctx context.Context, t tenancy.Tenant, evs []events.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	var inserted int
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createStaging); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{stagingTable}, stagingColumns, pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
			e := evs[i]
			return []any{e.ID, string(e.Type), e.CampaignID, e.RecipientID, e.OccurredAt, e.UserAgent, e.IP, e.URL, e.BounceClass}, nil
		})); err != nil {
			return fmt.Errorf("copy events: %w", err)
		}
		rows, err := tx.Query(ctx, insertFromStaging, t.CompanyID, t.WorkspaceID, t.DomainID)
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		var params []river.InsertManyParams
		for rows.Next() {
			var (
				id          uuid.UUID
				typ         string
				recipient   uuid.NullUUID
				bounceClass string
			)
			if err := rows.Scan(&id, &typ, &recipient, &bounceClass); err != nil {
				rows.Close()
				return fmt.Errorf("scan inserted event: %w", err)
			}
			inserted++
			status, reason, ok := events.StatusChange(events.Type(typ), bounceClass)
			if !ok || !recipient.Valid {
				continue
			}
			params = append(params, river.InsertManyParams{Args: jobs.RecipientStatusArgs{
				CompanyID:   t.CompanyID,
				WorkspaceID: t.WorkspaceID,
				DomainID:    t.DomainID,
				RecipientID: recipient.UUID,
				EventID:     id,
				Status:      status,
				Reason:      reason,
			}})
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		if len(params) > 0 {
			if _, err := s.inserter.InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("enqueue recipient status jobs: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return inserted, nil
}
