package backfills

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/heraldmail/herald/libs/backfill"
)

// CampaignStatus fills campaign.campaigns.status from state for the rows written before the
// release that writes both (campaign migration 000003, the expand step of renaming state to
// status; docs/migrations.md, "A worked example"). It walks the table by id across every
// tenant: migration 000003 lets the worker's role see and write only id, state and status, under
// a policy of its own, so that no tenant context is needed and no content is exposed.
//
// A row that already has a status (written by the new release, or by an earlier batch) is left
// alone, so that a batch run twice changes nothing.
type CampaignStatus struct{}

// Batch implements backfill.Backfill.
func (CampaignStatus) Batch(ctx context.Context, tx pgx.Tx, after backfill.Cursor, limit int) (backfill.Cursor, int, bool, error) {
	from := uuid.Nil
	if after != "" {
		var err error
		if from, err = uuid.Parse(string(after)); err != nil {
			return "", 0, false, fmt.Errorf("parse cursor %q: %w", after, err)
		}
	}
	var (
		seen, changed int
		last          *uuid.UUID
	)
	if err := tx.QueryRow(ctx, `
		WITH batch AS (
			SELECT id FROM campaign.campaigns WHERE id > $1 ORDER BY id LIMIT $2
		), changed AS (
			UPDATE campaign.campaigns AS c SET status = c.state
			FROM batch WHERE c.id = batch.id AND c.status IS NULL
			RETURNING c.id
		)
		SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM changed),
			(SELECT id FROM batch ORDER BY id DESC LIMIT 1)`, from, limit).Scan(&seen, &changed, &last); err != nil {
		return "", 0, false, fmt.Errorf("copy state to status: %w", err)
	}
	next := after
	if last != nil {
		next = backfill.Cursor(last.String())
	}
	return next, changed, seen < limit, nil
}
