// Package eventstorage keeps the time-partitioned storage of engagement events
// (events.engagement_events) with periodic River jobs on the maintenance queue:
//
//   - partitions: the weekly partitions from a week back to four weeks ahead exist
//     (events.create_engagement_partitions);
//   - rollup: from the table events-ingest writes (events.engagement_events while the flag
//     events_partitioned_storage is on, else the legacy events.email_events), in one
//     transaction, it recounts the last RollupDays days and today into the daily rollup
//     events.email_events_daily (events up to RollupDays days late included), records each
//     campaign recipient's first open and click, in all and by a human, in
//     events.campaign_recipient_engagement (a time only ever moves earlier), and recounts
//     events.campaign_engagement_uniques for the campaigns whose first times moved; a run that
//     repeats leaves every count as it was;
//   - retention: the partitions whose every event is older than the retention period are
//     detached and dropped (events.drop_engagement_partitions).
//
// Every job is idempotent, and a run logs what it did and counts it in metrics. On TimescaleDB
// the partition and retention functions do nothing (the hypertable has its chunks and its
// retention policy) and the rollup runs the same.
package eventstorage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"go.uber.org/zap"
)

// Storage windows.
const (
	// PartitionsBehind and PartitionsAhead bound the partitions the partitions job keeps (the
	// same window as the storage setup of migrate up).
	PartitionsBehind = 7 * 24 * time.Hour
	PartitionsAhead  = 28 * 24 * time.Hour
	// Retention is how long events are kept.
	Retention = 90 * 24 * time.Hour
	// RollupDays is how many days before today the rollup recounts: events arriving up to that
	// late are counted.
	RollupDays = 3
	// RollupTimeout bounds one run of the rollup (its River job timeout and, a little less, its
	// statements): a window of tens of millions of events takes minutes on a small server,
	// past the worker's default statement timeout and River's default job timeout.
	RollupTimeout = 30 * time.Minute
	// rollupWorkMem is the memory each sort and hash of the rollup's statements may use before
	// spilling to disk (the server's default is 4MB): the first opens and clicks of a window
	// of millions of recipients are grouped in memory.
	rollupWorkMem = "256MB"
)

// Schedules of the periodic jobs; the rollup's is the worker's EVENT_ROLLUP_INTERVAL.
const (
	PartitionsEvery = time.Hour
	RetentionEvery  = 6 * time.Hour
)

// Metrics counts what the jobs did.
type Metrics struct {
	partitionsCreated prometheus.Counter
	partitionsDropped prometheus.Counter
	rollupRows        prometheus.Counter
	rollupRuns        prometheus.Counter
}

// NewMetrics registers the jobs' metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		partitionsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_partitions_created_total",
			Help: "Weekly partitions of events.engagement_events created by the worker.",
		}),
		partitionsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_partitions_dropped_total",
			Help: "Partitions of events.engagement_events dropped after the retention period.",
		}),
		rollupRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_rollup_rows_written_total",
			Help: "Rows of events.email_events_daily written by the rollup.",
		}),
		rollupRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_rollup_runs_total",
			Help: "Completed runs of the daily rollup of events.",
		}),
	}
	for _, c := range []prometheus.Collector{m.partitionsCreated, m.partitionsDropped, m.rollupRows, m.rollupRuns} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register event storage metrics: %w", err)
		}
	}
	return m, nil
}

// Jobs holds the workers of the three jobs.
type Jobs struct {
	pool    *pgxpool.Pool
	now     func() time.Time
	log     *zap.Logger
	metrics *Metrics
	flags   flags.Provider
}

// New returns the jobs on pool (the worker's role), with clock now. fp tells the rollup which
// table events-ingest writes (flag events_partitioned_storage); nil means the legacy one.
func New(pool *pgxpool.Pool, now func() time.Time, metrics *Metrics, fp flags.Provider, log *zap.Logger) *Jobs {
	return &Jobs{pool: pool, now: now, log: log, metrics: metrics, flags: fp}
}

// Register adds the three workers to workers.
func (j *Jobs) Register(workers *river.Workers) error {
	return errors.Join(
		river.AddWorkerSafely(workers, &partitionsWorker{jobs: j}),
		river.AddWorkerSafely(workers, &rollupWorker{jobs: j}),
		river.AddWorkerSafely(workers, &retentionWorker{jobs: j}),
	)
}

// PeriodicJobs returns the schedules of the three jobs, the rollup every rollupEvery; each
// runs once at start too.
func PeriodicJobs(rollupEvery time.Duration) []*river.PeriodicJob {
	job := func(every time.Duration, args river.JobArgs) *river.PeriodicJob {
		return river.NewPeriodicJob(river.PeriodicInterval(every), func() (river.JobArgs, *river.InsertOpts) {
			return args, nil
		}, &river.PeriodicJobOpts{ID: args.Kind(), RunOnStart: true})
	}
	return []*river.PeriodicJob{
		job(PartitionsEvery, jobs.EventPartitionsArgs{}),
		job(rollupEvery, jobs.EventRollupArgs{}),
		job(RetentionEvery, jobs.EventRetentionArgs{}),
	}
}

// EnsurePartitions creates the missing partitions of the window at the jobs' clock and
// returns their names.
func (j *Jobs) EnsurePartitions(ctx context.Context) ([]string, error) {
	now := j.now()
	created, err := j.names(ctx, "SELECT events.create_engagement_partitions($1, $2)", now.Add(-PartitionsBehind), now.Add(PartitionsAhead))
	if err != nil {
		return nil, fmt.Errorf("create partitions: %w", err)
	}
	j.metrics.partitionsCreated.Add(float64(len(created)))
	j.log.Info("event partitions ensured", zap.Strings("created", created))
	return created, nil
}

// DropExpired drops the partitions past the retention period at the jobs' clock and returns
// their names.
func (j *Jobs) DropExpired(ctx context.Context) ([]string, error) {
	before := j.now().Add(-Retention)
	dropped, err := j.names(ctx, "SELECT events.drop_engagement_partitions($1)", before)
	if err != nil {
		return nil, fmt.Errorf("drop expired partitions: %w", err)
	}
	j.metrics.partitionsDropped.Add(float64(len(dropped)))
	j.log.Info("expired event partitions dropped", zap.Strings("dropped", dropped), zap.Time("before", before))
	return dropped, nil
}

func (j *Jobs) names(ctx context.Context, sql string, args ...any) ([]string, error) {
	rows, err := j.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// source is the table the rollup counts: the time-partitioned events.engagement_events, or,
// while the flag events_partitioned_storage is off and events-ingest still writes it, the
// legacy events.email_events (whose time column is occurred_at, and which marks no machine
// events).
type source struct {
	table, time, machine string
}

var (
	partitionedSource = source{table: "events.engagement_events", time: "created_at", machine: "is_machine"}
	legacySource      = source{table: "events.email_events", time: "occurred_at", machine: "false"}
)

// window is the condition on the source's rows of the days [$1, $2) (UTC); the range of the
// time column lets PostgreSQL read only the partitions of those days.
func (s source) window() string {
	return s.time + ` >= ($1::date)::timestamp AT TIME ZONE 'UTC' AND ` + s.time + ` < ($2::date)::timestamp AT TIME ZONE 'UTC'`
}

// rollupDeleteSQL and dailySQL recount the days [$1, $2) (UTC) of every tenant: the old rows
// of those days go and the counts of the events take their place, in the rollup's one
// transaction, so a reader sees either the old counts or the new ones, and running it twice
// changes nothing.
const rollupDeleteSQL = `DELETE FROM events.email_events_daily WHERE day >= $1::date AND day < $2::date`

func (s source) dailySQL() string {
	return `
INSERT INTO events.email_events_daily
	(company_id, workspace_id, domain_id, campaign_id, day, total, sent, delivered,
	 opens, opens_machine, clicks, clicks_machine, bounces, complaints, unsubscribes, refreshed_at)
SELECT company_id, workspace_id, domain_id, campaign_id, (` + s.time + ` AT TIME ZONE 'UTC')::date,
	count(*),
	count(*) FILTER (WHERE type = 'sent'),
	count(*) FILTER (WHERE type = 'delivered'),
	count(*) FILTER (WHERE type = 'open'),
	count(*) FILTER (WHERE type = 'open' AND ` + s.machine + `),
	count(*) FILTER (WHERE type = 'click'),
	count(*) FILTER (WHERE type = 'click' AND ` + s.machine + `),
	count(*) FILTER (WHERE type = 'bounce'),
	count(*) FILTER (WHERE type = 'complaint'),
	count(*) FILTER (WHERE type = 'unsubscribe'),
	now()
FROM ` + s.table + `
WHERE ` + s.window() + `
GROUP BY company_id, workspace_id, domain_id, campaign_id, (` + s.time + ` AT TIME ZONE 'UTC')::date`
}

// createTouchedSQL holds the campaigns whose first opens or clicks the run moved.
const createTouchedSQL = `CREATE TEMP TABLE rollup_touched_campaigns (domain_id uuid, campaign_id uuid) ON COMMIT DROP`

// firstsSQL records, for every campaign and recipient with opens or clicks in the window, the
// earliest of them, in all and by a human, keeping the earlier time of a previous run (least()
// ignores NULLs); a row whose times do not move is not written. The campaigns of the rows it
// wrote go to rollup_touched_campaigns.
func (s source) firstsSQL() string {
	return `
WITH firsts AS (
	INSERT INTO events.campaign_recipient_engagement AS t
		(company_id, workspace_id, domain_id, campaign_id, recipient_id,
		 first_open_at, first_human_open_at, first_click_at, first_human_click_at)
	SELECT company_id, workspace_id, domain_id, campaign_id, recipient_id,
		min(` + s.time + `) FILTER (WHERE type = 'open'),
		min(` + s.time + `) FILTER (WHERE type = 'open' AND NOT ` + s.machine + `),
		min(` + s.time + `) FILTER (WHERE type = 'click'),
		min(` + s.time + `) FILTER (WHERE type = 'click' AND NOT ` + s.machine + `)
	FROM ` + s.table + `
	WHERE ` + s.window() + `
		AND type IN ('open', 'click') AND campaign_id IS NOT NULL AND recipient_id IS NOT NULL
	GROUP BY company_id, workspace_id, domain_id, campaign_id, recipient_id
	ON CONFLICT (domain_id, campaign_id, recipient_id) DO UPDATE SET
		first_open_at = least(t.first_open_at, excluded.first_open_at),
		first_human_open_at = least(t.first_human_open_at, excluded.first_human_open_at),
		first_click_at = least(t.first_click_at, excluded.first_click_at),
		first_human_click_at = least(t.first_human_click_at, excluded.first_human_click_at)
	WHERE (t.first_open_at, t.first_human_open_at, t.first_click_at, t.first_human_click_at)
		IS DISTINCT FROM (least(t.first_open_at, excluded.first_open_at),
			least(t.first_human_open_at, excluded.first_human_open_at),
			least(t.first_click_at, excluded.first_click_at),
			least(t.first_human_click_at, excluded.first_human_click_at))
	RETURNING domain_id, campaign_id
)
INSERT INTO rollup_touched_campaigns SELECT DISTINCT domain_id, campaign_id FROM firsts`
}

// uniquesSQL recounts the unique openers and clickers of the touched campaigns.
const uniquesSQL = `
INSERT INTO events.campaign_engagement_uniques AS u
	(company_id, workspace_id, domain_id, campaign_id,
	 unique_opens, unique_human_opens, unique_clicks, unique_human_clicks, refreshed_at)
SELECT e.company_id, e.workspace_id, e.domain_id, e.campaign_id,
	count(e.first_open_at), count(e.first_human_open_at), count(e.first_click_at), count(e.first_human_click_at), now()
FROM events.campaign_recipient_engagement AS e
JOIN rollup_touched_campaigns AS c ON c.domain_id = e.domain_id AND c.campaign_id = e.campaign_id
GROUP BY e.company_id, e.workspace_id, e.domain_id, e.campaign_id
ON CONFLICT (domain_id, campaign_id) DO UPDATE SET
	unique_opens = excluded.unique_opens,
	unique_human_opens = excluded.unique_human_opens,
	unique_clicks = excluded.unique_clicks,
	unique_human_clicks = excluded.unique_human_clicks,
	refreshed_at = excluded.refreshed_at`

// source returns the table the rollup counts now.
func (j *Jobs) source(ctx context.Context) source {
	if j.flags != nil && j.flags.Enabled(ctx, flags.EventsPartitionedStorage, flags.Scope{}) {
		return partitionedSource
	}
	return legacySource
}

// RollupResult says what a rollup run wrote.
type RollupResult struct {
	// Days is the number of rows of events.email_events_daily written.
	Days int64
	// Campaigns is the number of campaigns whose unique opens and clicks were recounted.
	Campaigns int64
}

// Rollup recounts the days from RollupDays before today to today (UTC, at the jobs' clock)
// and the unique opens and clicks of the campaigns with new first ones.
func (j *Jobs) Rollup(ctx context.Context) (RollupResult, error) {
	now := j.now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from, to := today.AddDate(0, 0, -RollupDays), today.AddDate(0, 0, 1)
	start := time.Now()
	src := j.source(ctx)
	var res RollupResult
	err := pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		// Two runs at once (a rescued job and its retry) would delete each other's rows.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('events.email_events_daily rollup', 0))"); err != nil {
			return err
		}
		// The statements of a big window outlast the pool's statement timeout; the job's own
		// timeout still bounds the run (the statements end a little before it).
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d; SET LOCAL work_mem = '%s'",
			(RollupTimeout-time.Minute).Milliseconds(), rollupWorkMem)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, rollupDeleteSQL, from, to); err != nil {
			return fmt.Errorf("delete the window's days: %w", err)
		}
		tag, err := tx.Exec(ctx, src.dailySQL(), from, to)
		if err != nil {
			return fmt.Errorf("count the window's days: %w", err)
		}
		res.Days = tag.RowsAffected()
		if _, err := tx.Exec(ctx, createTouchedSQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, src.firstsSQL(), from, to); err != nil {
			return fmt.Errorf("record first opens and clicks: %w", err)
		}
		tag, err = tx.Exec(ctx, uniquesSQL)
		if err != nil {
			return fmt.Errorf("count unique opens and clicks: %w", err)
		}
		res.Campaigns = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return RollupResult{}, fmt.Errorf("roll up events from %s to %s: %w", from.Format(time.DateOnly), to.Format(time.DateOnly), err)
	}
	j.metrics.rollupRows.Add(float64(res.Days))
	j.metrics.rollupRuns.Inc()
	j.log.Info("events rolled up", zap.String("from", from.Format(time.DateOnly)), zap.String("to", to.Format(time.DateOnly)),
		zap.String("source", src.table), zap.Int64("rows", res.Days), zap.Int64("campaigns", res.Campaigns),
		zap.Duration("duration", time.Since(start)))
	return res, nil
}

type partitionsWorker struct {
	river.WorkerDefaults[jobs.EventPartitionsArgs]
	jobs *Jobs
}

// Work creates the partitions ahead.
func (w *partitionsWorker) Work(ctx context.Context, _ *river.Job[jobs.EventPartitionsArgs]) error {
	_, err := w.jobs.EnsurePartitions(ctx)
	return err
}

type rollupWorker struct {
	river.WorkerDefaults[jobs.EventRollupArgs]
	jobs *Jobs
}

// Timeout is RollupTimeout: a big window takes longer than River's default minute.
func (w *rollupWorker) Timeout(*river.Job[jobs.EventRollupArgs]) time.Duration {
	return RollupTimeout
}

// Work recounts the recent days.
func (w *rollupWorker) Work(ctx context.Context, _ *river.Job[jobs.EventRollupArgs]) error {
	_, err := w.jobs.Rollup(ctx)
	return err
}

type retentionWorker struct {
	river.WorkerDefaults[jobs.EventRetentionArgs]
	jobs *Jobs
}

// Work drops the expired partitions.
func (w *retentionWorker) Work(ctx context.Context, _ *river.Job[jobs.EventRetentionArgs]) error {
	_, err := w.jobs.DropExpired(ctx)
	return err
}
