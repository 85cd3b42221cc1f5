// Package runner runs River's executors, in this process only: the client that works every
// queue of libs/jobs, and the lifecycle component that starts it and stops it gracefully (stop
// fetching, let running jobs finish, cancel the ones still running at the shutdown timeout so
// River retries them).
package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/lifecycle"
	"github.com/heraldmail/herald/services/worker/internal/logbridge"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.uber.org/zap"
)

// Client is the River client that runs jobs.
type Client = river.Client[pgx.Tx]

// Timing of the component.
const (
	// CancelTimeout bounds the wait, after the shutdown timeout, for cancelled jobs to return
	// and have their state recorded.
	CancelTimeout = 5 * time.Second
	// StartRetryInterval is the wait between attempts to start while the database is
	// unreachable.
	StartRetryInterval = 5 * time.Second
)

// NewClient returns a client on pool that works every queue of jobs.Queues with workers;
// configure, when given, adjusts River's configuration (e.g. RescueStuckJobsAfter).
func NewClient(pool *pgxpool.Pool, workers *river.Workers, log *zap.Logger, configure ...func(*river.Config)) (*Client, error) {
	queues := make(map[string]river.QueueConfig, len(jobs.Queues))
	for name, n := range jobs.Queues {
		queues[name] = river.QueueConfig{MaxWorkers: n}
	}
	cfg := &river.Config{
		Schema:  jobs.Schema,
		Queues:  queues,
		Workers: workers,
		Logger:  logbridge.Slog(log.Named("river")),
		// REINDEX ... CONCURRENTLY needs the index's owner, and the worker's role owns
		// nothing: River's indexes are maintained by the migrating role's schedule instead.
		ReindexerIndexNames: []string{},
	}
	for _, f := range configure {
		f(cfg)
	}
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("create river client: %w", err)
	}
	return c, nil
}

// Component runs client under the process lifecycle.
//
// Serve starts the client (retrying while the database is unreachable, as the process must
// start without it) and returns once the client has stopped. Shutdown stops fetching and waits
// for running jobs until ctx is done; the jobs still running then have their contexts cancelled
// so River records them for retry, and Shutdown waits up to CancelTimeout more for that, so no
// job is left in state running.
func Component(client *Client, log *zap.Logger) lifecycle.Component {
	c := &component{client: client, log: log, stop: make(chan struct{})}
	return lifecycle.Func{ComponentName: "river", ServeFunc: c.serve, ShutdownFunc: c.shutdown}
}

type component struct {
	client *Client
	log    *zap.Logger

	mu       sync.Mutex
	started  bool
	stopping bool
	stop     chan struct{}
}

func (c *component) serve(ctx context.Context) error {
	t := time.NewTicker(StartRetryInterval)
	defer t.Stop()
	for {
		ok, err := c.start(ctx)
		if ok {
			break
		}
		if err == nil {
			return nil // shut down before it started
		}
		c.log.Warn("river client not started; retrying", zap.Error(err), zap.Duration("retry_in", StartRetryInterval))
		select {
		case <-c.stop:
			return nil
		case <-t.C:
		}
	}
	<-c.client.Stopped()
	select {
	case <-c.stop:
		return nil
	default:
		return errors.New("river client stopped on its own")
	}
}

// start starts the client unless shutdown began; ok reports whether it runs.
func (c *component) start(ctx context.Context) (ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false, nil
	}
	if err := c.client.Start(ctx); err != nil {
		return false, fmt.Errorf("start river client: %w", err)
	}
	c.started = true
	return true, nil
}

func (c *component) shutdown(ctx context.Context) error {
	c.mu.Lock()
	started := c.started
	if !c.stopping {
		c.stopping = true
		close(c.stop)
	}
	c.mu.Unlock()
	if !started {
		return nil
	}

	err := c.client.Stop(ctx)
	if err == nil {
		return nil
	}
	c.log.Warn("jobs still running at the shutdown timeout; cancelling them for retry")
	cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CancelTimeout)
	defer cancel()
	if cerr := c.client.StopAndCancel(cancelCtx); cerr != nil {
		return fmt.Errorf("cancel running jobs: %w", cerr)
	}
	return fmt.Errorf("drain river: running jobs cancelled for retry: %w", err)
}
