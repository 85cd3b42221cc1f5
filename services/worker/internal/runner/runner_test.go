package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/lifecycle"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/worker/internal/runner"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// holdArgs is a job that works for Hold, or until its context is cancelled.
type holdArgs struct {
	Hold time.Duration `json:"hold"`
}

func (holdArgs) Kind() string { return "test_hold" }

func (holdArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueNotifications}
}

type holdWorker struct {
	river.WorkerDefaults[holdArgs]
	started chan int64
}

func (w *holdWorker) Work(ctx context.Context, job *river.Job[holdArgs]) error {
	w.started <- job.ID
	t := time.NewTimer(job.Args.Hold)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type bundle struct {
	pool    *pgxpool.Pool
	client  *runner.Client
	started chan int64
	served  chan error
}

func setup(t *testing.T) (lifecycle.Component, bundle) {
	t.Helper()
	pool := pgtest.Pool(t)
	started := make(chan int64, 16)
	workers := river.NewWorkers()
	river.AddWorker(workers, &holdWorker{started: started})
	client, err := runner.NewClient(pool, workers, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	require.NoError(t, err)
	return runner.Component(client, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))), bundle{pool: pool, client: client, started: started, served: make(chan error, 1)}
}

func (b bundle) serve(c lifecycle.Component) {
	go func() { b.served <- c.Serve(context.Background()) }()
}

func (b bundle) insert(t *testing.T, hold time.Duration) int64 {
	t.Helper()
	res, err := b.client.Insert(context.Background(), holdArgs{Hold: hold}, nil)
	require.NoError(t, err)
	return res.Job.ID
}

func (b bundle) waitStarted(t *testing.T, id int64) {
	t.Helper()
	select {
	case got := <-b.started:
		require.Equal(t, id, got)
	case <-time.After(20 * time.Second):
		t.Fatal("job never started")
	}
}

func (b bundle) waitServed(t *testing.T) {
	t.Helper()
	select {
	case err := <-b.served:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
}

func (b bundle) state(t *testing.T, id int64) (string, int) {
	t.Helper()
	var state string
	var errs int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT state, coalesce(array_length(errors, 1), 0) FROM river.river_job WHERE id = $1`, id).Scan(&state, &errs))
	return state, errs
}

func (b bundle) running(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM river.river_job WHERE state = 'running'`).Scan(&n))
	return n
}

// A job in flight when shutdown starts finishes, and shutdown waits for it.
func TestShutdown_letsRunningJobsFinish(t *testing.T) {
	t.Parallel()
	comp, b := setup(t)
	b.serve(comp)
	id := b.insert(t, 2*time.Second)
	b.waitStarted(t, id)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, comp.Shutdown(ctx))
	b.waitServed(t)

	state, errs := b.state(t, id)
	require.Equal(t, "completed", state)
	require.Zero(t, errs)
	require.Zero(t, b.running(t))
}

// A job still running at the shutdown timeout is cancelled and left for River to retry, never
// in state running.
func TestShutdown_cancelsJobsPastTheTimeout(t *testing.T) {
	t.Parallel()
	comp, b := setup(t)
	b.serve(comp)
	id := b.insert(t, time.Hour)
	b.waitStarted(t, id)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := comp.Shutdown(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	b.waitServed(t)

	// River records a job interrupted by a shutdown as available again at once, with the
	// interrupted attempt not counted and no error: the next worker process runs it.
	var (
		state   string
		attempt int
		errs    int
		due     bool
	)
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state, attempt,
		coalesce(array_length(errors, 1), 0), scheduled_at <= now() FROM river.river_job WHERE id = $1`, id).
		Scan(&state, &attempt, &errs, &due))
	require.Equal(t, "available", state)
	require.Zero(t, attempt)
	require.Zero(t, errs)
	require.True(t, due)
	require.Zero(t, b.running(t))
}

// Shutdown before the client started stops it from starting.
func TestShutdown_beforeStart(t *testing.T) {
	t.Parallel()
	comp, b := setup(t)
	require.NoError(t, comp.Shutdown(context.Background()))
	b.serve(comp)
	b.waitServed(t)
}

// Jobs inserted while the client runs are worked, and Serve returns only after Shutdown.
func TestServe_worksJobs(t *testing.T) {
	t.Parallel()
	comp, b := setup(t)
	b.serve(comp)
	id := b.insert(t, 0)
	b.waitStarted(t, id)
	require.Eventually(t, func() bool {
		state, _ := b.state(t, id)
		return state == "completed"
	}, 20*time.Second, 20*time.Millisecond)

	select {
	case err := <-b.served:
		t.Fatalf("Serve returned before Shutdown: %v", err)
	default:
	}
	require.NoError(t, comp.Shutdown(context.Background()))
	b.waitServed(t)
}

// The process starts without its database: the client is started once the database answers,
// and a shutdown meanwhile ends the attempts.
func TestServe_databaseDown(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://herald@127.0.0.1:1/none?connect_timeout=1")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	workers := river.NewWorkers()
	river.AddWorker(workers, &holdWorker{started: make(chan int64, 1)})
	client, err := runner.NewClient(pool, workers, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	require.NoError(t, err)
	core, logs := observer.New(zap.WarnLevel)
	comp := runner.Component(client, zap.New(core))

	served := make(chan error, 1)
	go func() { served <- comp.Serve(context.Background()) }()
	require.Eventually(t, func() bool {
		return logs.FilterMessage("river client not started; retrying").Len() > 0
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, comp.Shutdown(context.Background()))
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
}
