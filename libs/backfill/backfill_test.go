package backfill_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/heraldmail/herald/libs/backfill"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/heraldmail/herald/libs/jobs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newDatabase creates a database of the test's own with River's tables (schema river) and the
// backfill progress table from its migration, and returns a pool on it. Both are dropped at
// the end of the test.
func newDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := t.Context()
	server := testenv.DatabaseURL(t)
	name := "herald_backfill_" + randomHex(6)
	admin := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
		_, err = conn.Exec(ctx, sql)
		return err
	}
	require.NoError(t, admin(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"))
	t.Cleanup(func() {
		require.NoError(t, admin(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"))
	})

	u, err := url.Parse(server)
	require.NoError(t, err)
	u.Path = "/" + name
	cfg, err := pgxpool.ParseConfig(u.String())
	require.NoError(t, err)
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	_, err = pool.Exec(ctx, "CREATE SCHEMA river")
	require.NoError(t, err)
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: jobs.Schema})
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)

	// The progress table comes from its migration, which grants it to the worker's role: the
	// role belongs to the cluster and is created by `migrate up` as here when it is missing.
	_, err = pool.Exec(ctx, `DO $$ BEGIN
		CREATE ROLE herald_worker LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;
	EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "CREATE SCHEMA maintenance")
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join("..", "..", "migrations", "sql", "maintenance", "*.up.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	slices.Sort(files)
	for _, f := range files {
		body, err := os.ReadFile(f)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, string(body))
		require.NoError(t, err, f)
	}
	return pool
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// demo doubles demo.items.value into demo.items.doubled, and counts in hits how often each row
// was changed: a correct backfill leaves every hits at 1.
type demo struct {
	// block, when set, is called inside every batch after its update, with the batch's
	// number (1-based, counting the batches this demo ran); it may block or fail.
	block   func(ctx context.Context, batch int) error
	batches atomic.Int64
}

func (d *demo) Batch(ctx context.Context, tx pgx.Tx, after backfill.Cursor, limit int) (backfill.Cursor, int, bool, error) {
	var from int64
	if after != "" {
		var err error
		if from, err = strconv.ParseInt(string(after), 10, 64); err != nil {
			return "", 0, false, fmt.Errorf("parse cursor: %w", err)
		}
	}
	var (
		n    int
		last *int64
	)
	err := tx.QueryRow(ctx, `
		WITH batch AS (SELECT id FROM demo.items WHERE id > $1 ORDER BY id LIMIT $2),
		changed AS (
			UPDATE demo.items AS i SET doubled = i.value * 2, hits = i.hits + 1
			FROM batch WHERE i.id = batch.id RETURNING i.id)
		SELECT count(*), max(id) FROM changed`, from, limit).Scan(&n, &last)
	if err != nil {
		return "", 0, false, fmt.Errorf("update batch: %w", err)
	}
	if d.block != nil {
		if err := d.block(ctx, int(d.batches.Add(1))); err != nil {
			return "", 0, false, err
		}
	}
	next := after
	if last != nil {
		next = backfill.Cursor(strconv.FormatInt(*last, 10))
	}
	return next, n, n < limit, nil
}

// createItems creates demo.items with rows 1..n.
func createItems(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	_, err := pool.Exec(t.Context(), `
		CREATE SCHEMA demo;
		CREATE TABLE demo.items (id bigint PRIMARY KEY, value int NOT NULL, doubled int, hits int NOT NULL DEFAULT 0)`)
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `INSERT INTO demo.items (id, value) SELECT g, g FROM generate_series(1, $1) AS g`, n)
	require.NoError(t, err)
}

// requireEachRowOnce checks that every row of demo.items was changed exactly once.
func requireEachRowOnce(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	var total, once, right int
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT count(*), count(*) FILTER (WHERE hits = 1), count(*) FILTER (WHERE doubled = value * 2) FROM demo.items`).
		Scan(&total, &once, &right))
	require.Equal(t, n, total)
	require.Equal(t, n, once, "every row is changed exactly once")
	require.Equal(t, n, right)
}

// hitCounts returns how many rows were changed 0, 1, 2... times.
func hitCounts(t *testing.T, pool *pgxpool.Pool) map[int]int {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT hits, count(*) FROM demo.items GROUP BY hits`)
	require.NoError(t, err)
	out := map[int]int{}
	for rows.Next() {
		var hits, n int
		require.NoError(t, rows.Scan(&hits, &n))
		out[hits] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// newClient returns a River client (not started) that runs backfill jobs with w.
func newClient(t *testing.T, pool *pgxpool.Pool, w *backfill.Worker) *river.Client[pgx.Tx] {
	t.Helper()
	workers := river.NewWorkers()
	require.NoError(t, river.AddWorkerSafely(workers, w))
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:            jobs.Schema,
		Queues:            map[string]river.QueueConfig{jobs.QueueMaintenance: {MaxWorkers: 1}},
		Workers:           workers,
		FetchPollInterval: 50 * time.Millisecond,
		FetchCooldown:     10 * time.Millisecond,
		TestOnly:          true,
	})
	require.NoError(t, err)
	return c
}

// waitEvent waits for an event of kind about job id.
func waitEvent(t *testing.T, events <-chan *river.Event, kind river.EventKind, id int64) *river.Event {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev := <-events:
			if ev != nil && ev.Kind == kind && ev.Job.ID == id {
				return ev
			}
		case <-timeout.C:
			t.Fatalf("no %s event for job %d within 30s", kind, id)
		}
	}
}

func TestBackfillRunsEveryRowOnce(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	const rows = 250
	createItems(t, pool, rows)
	w, err := backfill.NewWorker(pool, map[string]backfill.Backfill{"double_values": &demo{}}, zaptest.NewLogger(t), backfill.Options{})
	require.NoError(t, err)
	client := newClient(t, pool, w)
	events, cancel := client.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, client.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })

	res, err := client.Insert(t.Context(), jobs.BackfillArgs{Name: "double_values", BatchSize: 40, Pause: time.Millisecond}, nil)
	require.NoError(t, err)
	again, err := client.Insert(t.Context(), jobs.BackfillArgs{Name: "double_values", BatchSize: 10}, nil)
	require.NoError(t, err)
	require.True(t, again.UniqueSkippedAsDuplicate, "one job per backfill, whatever its settings")
	waitEvent(t, events, river.EventKindJobCompleted, res.Job.ID)

	requireEachRowOnce(t, pool, rows)
	p, err := backfill.Get(t.Context(), pool, "double_values")
	require.NoError(t, err)
	require.True(t, p.Done)
	require.Equal(t, int64(rows), p.RowsDone)
	require.Equal(t, int64(7), p.Batches, "six full batches of 40 and a last one of 10")
	require.Equal(t, backfill.Cursor("250"), p.Cursor)
	require.NotNil(t, p.FinishedAt)
	require.False(t, p.UpdatedAt.Before(p.StartedAt))

	list, err := backfill.List(t.Context(), pool)
	require.NoError(t, err)
	require.Equal(t, []backfill.Progress{p}, list)
}

// TestBackfillResumesAfterShutdown stops the worker in the middle of a batch: the batch rolls
// back, the job is left to resume, and a new worker finishes the backfill with every row
// changed exactly once.
func TestBackfillResumesAfterShutdown(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	const rows, size = 200, 30
	createItems(t, pool, rows)
	log := zaptest.NewLogger(t)

	inFourth := make(chan struct{})
	first := &demo{block: func(ctx context.Context, batch int) error {
		if batch == 4 {
			close(inFourth)
			<-ctx.Done() // the shutdown cancels the job while its batch is open
			return ctx.Err()
		}
		return nil
	}}
	w, err := backfill.NewWorker(pool, map[string]backfill.Backfill{"double_values": first}, log, backfill.Options{})
	require.NoError(t, err)
	client := newClient(t, pool, w)
	require.NoError(t, client.Start(t.Context()))
	res, err := client.Insert(t.Context(), jobs.BackfillArgs{Name: "double_values", BatchSize: size}, nil)
	require.NoError(t, err)

	<-inFourth
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	// Stop waits for running jobs until stopCtx ends, which it does at once; StopAndCancel
	// then cancels the job's context, as the worker's shutdown does at its timeout.
	_ = client.Stop(stopCtx)
	require.NoError(t, client.StopAndCancel(context.Background()))

	p, err := backfill.Get(t.Context(), pool, "double_values")
	require.NoError(t, err)
	require.False(t, p.Done)
	require.Equal(t, int64(3), p.Batches, "the fourth batch rolled back")
	require.Equal(t, int64(3*size), p.RowsDone)
	require.Equal(t, map[int]int{1: 3 * size, 0: rows - 3*size}, hitCounts(t, pool))
	job, err := client.JobGet(t.Context(), res.Job.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateAvailable, job.State, "snoozed to resume at once, without using up an attempt")
	require.Zero(t, job.Attempt)

	w2, err := backfill.NewWorker(pool, map[string]backfill.Backfill{"double_values": &demo{}}, log, backfill.Options{})
	require.NoError(t, err)
	restarted := newClient(t, pool, w2)
	events, unsubscribe := restarted.Subscribe(river.EventKindJobCompleted)
	defer unsubscribe()
	require.NoError(t, restarted.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, restarted.Stop(context.Background())) })
	waitEvent(t, events, river.EventKindJobCompleted, res.Job.ID)

	requireEachRowOnce(t, pool, rows)
	p, err = backfill.Get(t.Context(), pool, "double_values")
	require.NoError(t, err)
	require.True(t, p.Done)
	require.Equal(t, int64(rows), p.RowsDone)
}

// TestBackfillResumesAfterConnectionLoss kills the database session of a batch in the middle:
// the job fails, is retried, and goes on from the last committed batch.
func TestBackfillResumesAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	const rows, size = 100, 25
	createItems(t, pool, rows)

	var killed atomic.Bool
	d := &demo{}
	d.block = func(ctx context.Context, batch int) error {
		if batch == 3 && killed.CompareAndSwap(false, true) {
			// Another session kills this batch's backend, as a crash of the worker would
			// end it: the open transaction is rolled back by the server.
			_, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle in transaction'
				  AND query LIKE '%demo.items%'`)
			return err
		}
		return nil
	}
	w, err := backfill.NewWorker(pool, map[string]backfill.Backfill{"double_values": d}, zaptest.NewLogger(t), backfill.Options{})
	require.NoError(t, err)
	client := newClient(t, pool, w)
	events, cancel := client.Subscribe(river.EventKindJobFailed, river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, client.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })

	res, err := client.Insert(t.Context(), jobs.BackfillArgs{Name: "double_values", BatchSize: size}, nil)
	require.NoError(t, err)
	waitEvent(t, events, river.EventKindJobFailed, res.Job.ID)
	require.Equal(t, map[int]int{1: 2 * size, 0: rows - 2*size}, hitCounts(t, pool), "the killed batch left nothing")

	_, err = client.JobRetry(t.Context(), res.Job.ID) // rather than wait for the backoff
	require.NoError(t, err)
	waitEvent(t, events, river.EventKindJobCompleted, res.Job.ID)
	requireEachRowOnce(t, pool, rows)
}

// job returns a job row for calling Work directly.
func job(args jobs.BackfillArgs, createdAt time.Time) *river.Job[jobs.BackfillArgs] {
	return &river.Job[jobs.BackfillArgs]{JobRow: &rivertype.JobRow{ID: 1, CreatedAt: createdAt, Kind: args.Kind()}, Args: args}
}

// TestSliceAndConcurrentRuns: a run yields after its slice (snoozing for the pause), the next
// run goes on from the cursor, and two runs of the same backfill at once (a job rescued while
// its first run still goes on) still change every row once.
func TestSliceAndConcurrentRuns(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	const rows = 120
	createItems(t, pool, rows)

	// A clock that moves a second at every reading: the one-second slice is over after the
	// first batch.
	var (
		mu  sync.Mutex
		now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
	w, err := backfill.NewWorker(pool, map[string]backfill.Backfill{"double_values": &demo{}}, zaptest.NewLogger(t),
		backfill.Options{Slice: time.Second, Now: clock})
	require.NoError(t, err)
	args := jobs.BackfillArgs{Name: "double_values", BatchSize: 10, Pause: 7 * time.Second}

	err = w.Work(t.Context(), job(args, clock()))
	var snooze *rivertype.JobSnoozeError
	require.ErrorAs(t, err, &snooze)
	require.Equal(t, 7*time.Second, snooze.Duration)
	p, err := backfill.Get(t.Context(), pool, "double_values")
	require.NoError(t, err)
	require.Equal(t, int64(1), p.Batches)
	require.Equal(t, backfill.Cursor("10"), p.Cursor)

	w2, err := backfill.NewWorker(pool, map[string]backfill.Backfill{"double_values": &demo{}}, zaptest.NewLogger(t), backfill.Options{Slice: time.Hour})
	require.NoError(t, err)
	args.Pause = 0
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- w2.Work(t.Context(), job(args, time.Now())) }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	requireEachRowOnce(t, pool, rows)

	// A finished backfill finishes again at once, changing nothing.
	require.NoError(t, w2.Work(t.Context(), job(args, time.Now())))
	requireEachRowOnce(t, pool, rows)
}

// stuck never moves its cursor.
type stuck struct{}

func (stuck) Batch(context.Context, pgx.Tx, backfill.Cursor, int) (backfill.Cursor, int, bool, error) {
	return "", 0, false, nil
}

// failing always fails.
type failing struct{}

func (failing) Batch(context.Context, pgx.Tx, backfill.Cursor, int) (backfill.Cursor, int, bool, error) {
	return "", 0, false, errors.New("boom")
}

func TestWorkRefuses(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	now := time.Now()
	w, err := backfill.NewWorker(pool, map[string]backfill.Backfill{"stuck": stuck{}, "failing": failing{}}, zaptest.NewLogger(t),
		backfill.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)

	var (
		cancel *rivertype.JobCancelError
		snooze *rivertype.JobSnoozeError
	)
	for _, args := range []jobs.BackfillArgs{
		{Name: "stuck", BatchSize: -1},
		{Name: "stuck", BatchSize: backfill.MaxBatchSize + 1},
		{Name: "stuck", Pause: -time.Second},
	} {
		require.ErrorAs(t, w.Work(t.Context(), job(args, now)), &cancel, "%+v", args)
	}

	// A backfill this worker does not know may belong to a newer release: snoozed for a while,
	// cancelled after the grace period.
	require.ErrorAs(t, w.Work(t.Context(), job(jobs.BackfillArgs{Name: "newer"}, now.Add(-time.Minute))), &snooze)
	require.Equal(t, backfill.UnknownSnooze, snooze.Duration)
	require.ErrorAs(t, w.Work(t.Context(), job(jobs.BackfillArgs{Name: "newer"}, now.Add(-backfill.UnknownGrace))), &cancel)

	err = w.Work(t.Context(), job(jobs.BackfillArgs{Name: "stuck"}, now))
	require.ErrorContains(t, err, "neither moved the cursor nor finished")
	require.False(t, errors.As(err, &snooze) || errors.As(err, &cancel), "an ordinary error: River retries it")

	err = w.Work(t.Context(), job(jobs.BackfillArgs{Name: "failing"}, now))
	require.ErrorContains(t, err, "boom")
	p, err := backfill.Get(t.Context(), pool, "failing")
	require.NoError(t, err)
	require.Zero(t, p.Batches, "a failed batch records nothing")

	_, err = backfill.Get(t.Context(), pool, "never")
	require.ErrorIs(t, err, backfill.ErrNotFound)

	_, err = backfill.NewWorker(pool, map[string]backfill.Backfill{"Bad-Name": stuck{}}, zaptest.NewLogger(t), backfill.Options{})
	require.ErrorContains(t, err, `backfill name "Bad-Name"`)
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"recipients_locale": true, "a": true, "a1_b2": true,
		"": false, "1a": false, "_a": false, "A": false, "a-b": false, "a b": false,
		string(make([]byte, 101)): false,
	} {
		require.Equal(t, want, backfill.ValidName(name), "%q", name)
	}
}
