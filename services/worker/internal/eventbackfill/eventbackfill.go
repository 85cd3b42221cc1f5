// Package eventbackfill copies the engagement events of the legacy table events.email_events
// into the time-partitioned events.engagement_events: the backfill step of the
// expand/contract change behind the flag events_partitioned_storage (docs/migrations.md).
//
// It walks the legacy table by id (keyset, resumable: libs/backfill keeps the cursor) and
// writes each row with its event time (occurred_at) as created_at, the partition key, and the
// legacy created_at as received_at. ON CONFLICT (id, created_at) DO NOTHING makes it
// idempotent and lets it run while events-ingest writes the new table: an event that reached
// both tables (a retry handled once by each release during the deploy) is stored once. Events
// older than the retention period are skipped: retention would drop them at once.
package eventbackfill

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/backfill"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Name is the backfill's registered name.
const Name = "events_engagement_events"

// Retention is how long events are kept: older legacy rows are not copied.
const Retention = 90 * 24 * time.Hour

// Backfill implements backfill.Backfill.
type Backfill struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// New returns the backfill; pool (the worker's) creates the partitions the copied events
// need, each in a short transaction of its own, so that the batch's transaction never holds
// the partitioned table's lock; now is the clock of the retention cut-off.
func New(pool *pgxpool.Pool, now func() time.Time) *Backfill {
	return &Backfill{pool: pool, now: now}
}

// The worker's role reads every tenant's legacy rows through a policy of its own
// (email_events_worker_read), and writes the new table one tenant at a time, under the tenant
// policy.
const selectLegacy = `
SELECT id, company_id, workspace_id, domain_id, type, campaign_id, recipient_id, occurred_at,
	created_at, user_agent, ip, url, bounce_class
FROM events.email_events
WHERE ($1::uuid IS NULL OR id > $1)
ORDER BY id
LIMIT $2`

const insertNew = `
INSERT INTO events.engagement_events
	(id, company_id, workspace_id, domain_id, type, campaign_id, recipient_id, created_at,
	 received_at, user_agent, ip, url, bounce_class)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (id, created_at) DO NOTHING`

const setTenant = `SELECT set_config('app.company_id', $1, true), set_config('app.workspace_id', $2, true),
	set_config('app.domain_id', $3, true)`

type legacyRow struct {
	ID, CompanyID, WorkspaceID, DomainID uuid.UUID
	Type                                 string
	CampaignID, RecipientID              uuid.NullUUID
	OccurredAt, CreatedAt                time.Time
	UserAgent, IP, URL, BounceClass      string
}

// Batch copies at most limit legacy rows after the cursor (an event id).
func (b *Backfill) Batch(ctx context.Context, tx pgx.Tx, after backfill.Cursor, limit int) (backfill.Cursor, int, bool, error) {
	var cursor *uuid.UUID
	if after != "" {
		id, err := uuid.Parse(string(after))
		if err != nil {
			return "", 0, false, fmt.Errorf("cursor %q is not an event id: %w", after, err)
		}
		cursor = &id
	}
	rows, err := tx.Query(ctx, selectLegacy, cursor, limit)
	if err != nil {
		return "", 0, false, fmt.Errorf("read legacy events: %w", err)
	}
	legacy, err := pgx.CollectRows(rows, pgx.RowToStructByPos[legacyRow])
	if err != nil {
		return "", 0, false, fmt.Errorf("read legacy events: %w", err)
	}
	if len(legacy) == 0 {
		return after, 0, true, nil
	}
	next := backfill.Cursor(legacy[len(legacy)-1].ID.String())
	done := len(legacy) < limit

	cutoff := b.now().Add(-Retention)
	type tenant struct{ company, workspace, domain uuid.UUID }
	byTenant := map[tenant][]legacyRow{}
	var order []tenant
	weeks := map[[2]int]time.Time{}
	for _, r := range legacy {
		if r.OccurredAt.Before(cutoff) {
			continue
		}
		k := tenant{r.CompanyID, r.WorkspaceID, r.DomainID}
		if _, ok := byTenant[k]; !ok {
			order = append(order, k)
		}
		byTenant[k] = append(byTenant[k], r)
		y, w := r.OccurredAt.UTC().ISOWeek()
		weeks[[2]int{y, w}] = r.OccurredAt
	}
	if err := b.createPartitions(ctx, weeks); err != nil {
		return "", 0, false, err
	}

	batch := &pgx.Batch{}
	for _, k := range order {
		batch.Queue(setTenant, k.company.String(), k.workspace.String(), k.domain.String())
		for _, r := range byTenant[k] {
			batch.Queue(insertNew, r.ID, r.CompanyID, r.WorkspaceID, r.DomainID, r.Type, r.CampaignID, r.RecipientID,
				r.OccurredAt, r.CreatedAt, r.UserAgent, r.IP, r.URL, r.BounceClass)
		}
	}
	results := tx.SendBatch(ctx, batch)
	copied := 0
	for _, k := range order {
		if _, err := results.Exec(); err != nil {
			_ = results.Close()
			return "", 0, false, fmt.Errorf("set tenant: %w", err)
		}
		for range byTenant[k] {
			tag, err := results.Exec()
			if err != nil {
				_ = results.Close()
				return "", 0, false, fmt.Errorf("copy event: %w", err)
			}
			copied += int(tag.RowsAffected())
		}
	}
	if err := results.Close(); err != nil {
		return "", 0, false, fmt.Errorf("copy events: %w", err)
	}
	// The tenant set last must not outlive the batch's own statements.
	if _, err := tx.Exec(ctx, setTenant, "", "", ""); err != nil {
		return "", 0, false, fmt.Errorf("reset tenant: %w", err)
	}
	return next, copied, done, nil
}

// createPartitions makes sure the partitions of the weeks exist, each in a transaction of its
// own on the pool.
func (b *Backfill) createPartitions(ctx context.Context, weeks map[[2]int]time.Time) error {
	for _, at := range weeks {
		if _, err := b.pool.Exec(ctx, "SELECT count(*) FROM events.create_engagement_partitions($1, $1)", at); err != nil {
			return fmt.Errorf("create the partition for %s: %w", at.UTC().Format(time.RFC3339), err)
		}
	}
	return nil
}
