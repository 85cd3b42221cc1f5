package eventbackfill_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/services/worker/internal/runner"
	"github.com/riverqueue/river"
	"go.uber.org/zap/zaptest"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/backfill"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/worker/internal/eventbackfill"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type bundle struct {
	admin, worker *pgxpool.Pool
}

func setup(t *testing.T) bundle {
	t.Helper()
	dbURL := pgtest.URL(t)
	return bundle{admin: pgtest.Open(t, dbURL), worker: pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleWorker))}
}

// insertLegacy writes n legacy events of a new tenant at the times given, as the previous
// release does, and returns their ids.
func insertLegacy(t *testing.T, pool *pgxpool.Pool, at ...time.Time) []uuid.UUID {
	t.Helper()
	company, workspace, domain := uuid.New(), uuid.New(), uuid.New()
	ids := make([]uuid.UUID, len(at))
	for i, ts := range at {
		ids[i] = uuid.New()
		_, err := pool.Exec(context.Background(), `INSERT INTO events.email_events
			(id, company_id, workspace_id, domain_id, type, campaign_id, occurred_at, user_agent)
			VALUES ($1, $2, $3, $4, 'click', gen_random_uuid(), $5, 'Mozilla/5.0') ON CONFLICT (id) DO NOTHING`,
			ids[i], company, workspace, domain, ts)
		require.NoError(t, err)
	}
	return ids
}

// runAll runs batches of size limit, each in its own transaction as libs/backfill does, until
// done; it returns how many rows the batches changed and how many batches ran.
func runAll(t *testing.T, b bundle, bf *eventbackfill.Backfill, limit int) (int, int) {
	t.Helper()
	ctx := context.Background()
	var (
		cursor  backfill.Cursor
		total   int
		batches int
	)
	for {
		var (
			n    int
			done bool
		)
		err := pgx.BeginFunc(ctx, b.worker, func(tx pgx.Tx) error {
			var err error
			cursor, n, done, err = bf.Batch(ctx, tx, cursor, limit)
			return err
		})
		require.NoError(t, err)
		total += n
		batches++
		if done {
			return total, batches
		}
		require.Less(t, batches, 1000)
	}
}

func TestCopiesLegacyEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	// Two tenants, events over the last weeks (partitions the worker has not made yet
	// included), and one past retention.
	ids := insertLegacy(t, b.admin, now.Add(-time.Hour), now.AddDate(0, 0, -40), now.AddDate(0, 0, -89))
	ids = append(ids, insertLegacy(t, b.admin, now.Add(-2*time.Hour), now.AddDate(0, 0, -10))...)
	old := insertLegacy(t, b.admin, now.AddDate(0, 0, -120))

	bf := eventbackfill.New(b.worker, time.Now)
	copied, batches := runAll(t, b, bf, 2)
	require.Equal(t, 5, copied)
	require.Equal(t, 4, batches, "6 rows by 2, and the empty batch that finds the end")

	// Every copied row: same tenant and fields, event time as created_at, legacy created_at
	// as received_at.
	var same int
	require.NoError(t, b.admin.QueryRow(ctx, `
		SELECT count(*) FROM events.email_events AS l JOIN events.engagement_events AS n USING (id)
		WHERE n.company_id = l.company_id AND n.workspace_id = l.workspace_id AND n.domain_id = l.domain_id
		  AND n.type = l.type AND n.campaign_id IS NOT DISTINCT FROM l.campaign_id
		  AND n.created_at = l.occurred_at AND n.received_at = l.created_at AND n.user_agent = l.user_agent
		  AND n.id = ANY ($1)`, ids).Scan(&same))
	require.Equal(t, 5, same)
	var n int
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM events.engagement_events WHERE id = $1`, old[0]).Scan(&n))
	require.Zero(t, n, "past retention: not copied")

	// From the start again (progress reset): nothing is stored twice.
	copied, _ = runAll(t, b, bf, 100)
	require.Zero(t, copied)
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM events.engagement_events`).Scan(&n))
	require.Equal(t, 5, n)
}

// An event that both releases stored during the deploy (the previous one in the legacy table,
// this one in the new) is stored once.
func TestSkipsEventsAlreadyInNewTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ids := insertLegacy(t, b.admin, now, now.Add(-time.Minute))
	_, err := b.admin.Exec(ctx, "SELECT events.create_engagement_partitions($1, $1)", now)
	require.NoError(t, err)
	_, err = b.admin.Exec(ctx, `INSERT INTO events.engagement_events (id, company_id, workspace_id, domain_id, type, created_at)
		SELECT id, company_id, workspace_id, domain_id, type, occurred_at FROM events.email_events WHERE id = $1`, ids[0])
	require.NoError(t, err)

	copied, _ := runAll(t, b, eventbackfill.New(b.worker, time.Now), 10)
	require.Equal(t, 1, copied)
	var n int
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM events.engagement_events`).Scan(&n))
	require.Equal(t, 2, n)
}

func TestRejectsBadCursor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	err := pgx.BeginFunc(context.Background(), b.worker, func(tx pgx.Tx) error {
		_, _, _, err := eventbackfill.New(b.worker, time.Now).Batch(context.Background(), tx, "not-an-id", 10)
		return err
	})
	require.ErrorContains(t, err, `cursor "not-an-id" is not an event id`)
}

// The backfill as the worker runs it: a River job of libs/backfill, in batches, its progress
// in maintenance.backfills.
func TestRunsAsBackfillJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var ats []time.Time
	for i := range 25 {
		ats = append(ats, now.Add(-time.Duration(i)*time.Hour*24))
	}
	insertLegacy(t, b.admin, ats...)

	log := zaptest.NewLogger(t)
	w, err := backfill.NewWorker(b.worker, map[string]backfill.Backfill{eventbackfill.Name: eventbackfill.New(b.worker, time.Now)}, log, backfill.Options{})
	require.NoError(t, err)
	workers := river.NewWorkers()
	require.NoError(t, river.AddWorkerSafely(workers, w))
	client, err := runner.NewClient(b.worker, workers, log)
	require.NoError(t, err)
	done, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })

	res, err := client.Insert(ctx, jobs.BackfillArgs{Name: eventbackfill.Name, BatchSize: 10}, nil)
	require.NoError(t, err)
	select {
	case ev := <-done:
		require.Equal(t, res.Job.ID, ev.Job.ID)
		require.Equal(t, river.EventKindJobCompleted, ev.Kind, "%v", ev.Job.Errors)
	case <-time.After(30 * time.Second):
		t.Fatal("backfill job not done after 30s")
	}
	p, err := backfill.Get(ctx, b.worker, eventbackfill.Name)
	require.NoError(t, err)
	require.True(t, p.Done)
	require.Equal(t, int64(25), p.RowsDone)
	require.Equal(t, int64(3), p.Batches)
	var n int
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM events.engagement_events`).Scan(&n))
	require.Equal(t, 25, n)
}
