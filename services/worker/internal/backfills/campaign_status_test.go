package backfills_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/heraldmail/herald/libs/backfill"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/worker/internal/backfills"
	"github.com/heraldmail/herald/services/worker/internal/runner"
)

// TestCampaignStatus runs the registered campaigns_status backfill through the worker's River
// client, as the worker's role, over campaigns of several tenants written as the previous
// release writes them (state only) and as the current one does (both).
func TestCampaignStatus(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.URL(t)
	super := pgtest.Open(t, dbURL)

	// 25 rows of the previous release in three tenants, in every state, and 2 rows of the
	// current release, whose status the backfill must not touch even where it differs.
	_, err := super.Exec(ctx, `
		INSERT INTO campaign.campaigns (company_id, workspace_id, domain_id, name, state)
		SELECT t.company, t.workspace, t.domain, 'old ' || g,
			(ARRAY['draft', 'scheduled', 'sending', 'sent', 'paused', 'cancelled'])[1 + g % 6]
		FROM generate_series(1, 25) AS g,
			LATERAL (SELECT gen_random_uuid() AS company, gen_random_uuid() AS workspace, gen_random_uuid() AS domain) AS t0,
			LATERAL (SELECT t0.company, t0.workspace, t0.domain WHERE g % 3 = 0
				UNION ALL SELECT t0.company, t0.workspace, t0.domain WHERE g % 3 <> 0) AS t;
		INSERT INTO campaign.campaigns (company_id, workspace_id, domain_id, name, state, status)
		VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'new 1', 'draft', 'draft'),
			(gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'new 2', 'sent', 'paused');`)
	require.NoError(t, err)

	log := zaptest.NewLogger(t)
	worker := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleWorker))

	// The worker sees the three columns of every tenant's campaigns, and nothing else.
	_, err = worker.Exec(ctx, `SELECT name FROM campaign.campaigns LIMIT 1`)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, pgerrcode.InsufficientPrivilege, pgErr.Code)
	_, err = worker.Exec(ctx, `UPDATE campaign.campaigns SET state = 'sent' WHERE false`)
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, pgerrcode.InsufficientPrivilege, pgErr.Code)

	registered := backfills.Registered()
	require.Contains(t, registered, "campaigns_status")
	w, err := backfill.NewWorker(worker, registered, log, backfill.Options{})
	require.NoError(t, err)
	workers := river.NewWorkers()
	require.NoError(t, river.AddWorkerSafely(workers, w))
	client, err := runner.NewClient(worker, workers, log)
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })
	mux := http.NewServeMux()
	backfills.NewHandler(worker, client, registered, log).Register(mux)
	admin := httptest.NewServer(mux)
	t.Cleanup(admin.Close)

	events, cancel := client.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	var started backfills.StartResponse
	require.Equal(t, http.StatusAccepted, do(t, http.MethodPost, admin.URL+backfills.Path+"/campaigns_status",
		`{"batch_size": 4, "pause": "1ms"}`, &started))
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
wait:
	for {
		select {
		case ev := <-events:
			if ev.Job.ID == started.JobID {
				break wait
			}
		case <-deadline.C:
			t.Fatal("the backfill job did not complete within 30s")
		}
	}

	var mismatched, missing int
	require.NoError(t, super.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE name LIKE 'old %' AND status IS DISTINCT FROM state),
			count(*) FILTER (WHERE status IS NULL)
		FROM campaign.campaigns`).Scan(&mismatched, &missing))
	require.Zero(t, mismatched)
	require.Zero(t, missing)
	var untouched string
	require.NoError(t, super.QueryRow(ctx, `SELECT status FROM campaign.campaigns WHERE name = 'new 2'`).Scan(&untouched))
	require.Equal(t, "paused", untouched, "a status the current release wrote is kept")

	var rep backfills.Report
	require.Equal(t, http.StatusOK, do(t, http.MethodGet, admin.URL+backfills.Path, "", &rep))
	require.Len(t, rep.Backfills, 1)
	p := rep.Backfills[0].Progress
	require.NotNil(t, p)
	require.True(t, p.Done)
	require.Equal(t, int64(25), p.RowsDone, "each old row changed once, the new ones never")
	require.Equal(t, int64(7), p.Batches, "27 rows in batches of 4")

	// The constraint the next migration validates holds for every row now.
	var invalid int
	require.NoError(t, super.QueryRow(ctx, `
		SELECT count(*) FROM campaign.campaigns
		WHERE status NOT IN ('draft', 'scheduled', 'sending', 'sent', 'paused', 'cancelled')`).Scan(&invalid))
	require.Zero(t, invalid)
}
