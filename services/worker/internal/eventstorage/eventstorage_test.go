package eventstorage_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/worker/internal/eventstorage"
	"github.com/heraldmail/herald/services/worker/internal/runner"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is the jobs' clock, set by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

type bundle struct {
	// admin is a superuser pool on the test's database.
	admin  *pgxpool.Pool
	client *runner.Client
	clock  *clock
	done   <-chan *river.Event
	flags  *flags.Redis
}

// setup runs River with the three jobs as the worker's role, held to its grants and to
// row-level security, on a database of the test's own, with the flag
// events_partitioned_storage on (the rollup counts events.engagement_events) unless the test
// forces it otherwise.
func setup(t *testing.T, now time.Time) bundle {
	t.Helper()
	dbURL := pgtest.URL(t)
	pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleWorker))
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	clk := &clock{now: now}
	metrics, err := eventstorage.NewMetrics(prometheus.NewRegistry())
	require.NoError(t, err)

	fp := flagstest.New(t)
	flagstest.With(t, fp, flags.EventsPartitionedStorage, true)
	workers := river.NewWorkers()
	require.NoError(t, eventstorage.New(pool, clk.Now, metrics, fp, log).Register(workers))
	client, err := runner.NewClient(pool, workers, log)
	require.NoError(t, err)
	done, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	t.Cleanup(cancel)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
	return bundle{admin: pgtest.Open(t, dbURL), client: client, clock: clk, done: done, flags: fp}
}

// run inserts a job and waits until River reports it done; it fails the test if the job
// failed.
func (b bundle) run(t *testing.T, args river.JobArgs) {
	t.Helper()
	res, err := b.client.Insert(context.Background(), args, nil)
	require.NoError(t, err)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-b.done:
			if ev.Job.ID != res.Job.ID {
				continue
			}
			require.Equal(t, river.EventKindJobCompleted, ev.Kind, "job %s: %v", args.Kind(), ev.Job.Errors)
			return
		case <-deadline:
			t.Fatalf("job %s not done after 30s", args.Kind())
		}
	}
}

func (b bundle) partitions(t *testing.T) []string {
	t.Helper()
	rows, err := b.admin.Query(context.Background(), `SELECT c.relname FROM pg_inherits AS i
		JOIN pg_class AS c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events.engagement_events'::regclass ORDER BY 1`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func TestPartitionsAhead(t *testing.T) {
	t.Parallel()
	now := time.Date(2031, time.January, 15, 9, 0, 0, 0, time.UTC) // a Wednesday, long after the template's partitions
	b := setup(t, now)

	b.run(t, jobs.EventPartitionsArgs{})
	got := b.partitions(t)
	for _, want := range []string{
		"engagement_events_p20310106", "engagement_events_p20310113", "engagement_events_p20310120",
		"engagement_events_p20310127", "engagement_events_p20310203", "engagement_events_p20310210",
	} {
		require.Contains(t, got, want)
	}
	require.NotContains(t, got, "engagement_events_p20301230", "more than a week back")
	require.NotContains(t, got, "engagement_events_p20310217", "more than four weeks ahead")

	// Again: nothing more.
	b.run(t, jobs.EventPartitionsArgs{})
	require.Equal(t, got, b.partitions(t))

	// A week later, one more week ahead.
	b.clock.Set(now.AddDate(0, 0, 7))
	b.run(t, jobs.EventPartitionsArgs{})
	require.Contains(t, b.partitions(t), "engagement_events_p20310217")
}

func TestRetention(t *testing.T) {
	t.Parallel()
	now := time.Date(2031, time.June, 4, 12, 0, 0, 0, time.UTC)
	b := setup(t, now)
	ctx := context.Background()
	// Weekly partitions from 15 weeks back to now. now - 90 days = 2031-03-06 12:00, a Thursday:
	// the week of 2031-02-24 ends on 03-03, before it; the week of 03-03 still holds events
	// younger than 90 days.
	_, err := b.admin.Exec(ctx, "SELECT events.create_engagement_partitions($1, $2)", now.AddDate(0, 0, -15*7), now)
	require.NoError(t, err)
	_, err = b.admin.Exec(ctx, `INSERT INTO events.engagement_events (id, company_id, workspace_id, domain_id, type, created_at)
		VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'open', '2031-02-25 10:00+00'),
		       (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'open', '2031-03-06 13:00+00')`)
	require.NoError(t, err)
	before := b.partitions(t)
	require.Contains(t, before, "engagement_events_p20310217")

	b.run(t, jobs.EventRetentionArgs{})
	after := b.partitions(t)
	// Exactly the weeks older than 90 days go: those made here, and the template's own (made
	// when it was migrated, years before the clock of this test).
	for _, p := range before {
		require.Equal(t, p >= "engagement_events_p20310303", slices.Contains(after, p), p)
	}
	require.Contains(t, before, "engagement_events_p20310224")
	require.Contains(t, after, "engagement_events_p20310303", "holds events younger than 90 days")
	require.Contains(t, after, migrations.PartitionName(now))
	var n int
	require.NoError(t, b.admin.QueryRow(ctx, "SELECT count(*) FROM events.engagement_events WHERE created_at >= '2031-02-01'").Scan(&n))
	require.Equal(t, 1, n, "only the event older than 90 days went, with its partition")
	var exists bool
	require.NoError(t, b.admin.QueryRow(ctx, "SELECT to_regclass('events.engagement_events_p20310224') IS NOT NULL").Scan(&exists))
	require.False(t, exists, "dropped, not only detached")

	// Again: nothing more.
	b.run(t, jobs.EventRetentionArgs{})
	require.Equal(t, after, b.partitions(t))
}

// event is one row of events.engagement_events for the rollup tests.
type event struct {
	tenant    [3]uuid.UUID
	campaign  uuid.NullUUID
	recipient uuid.NullUUID
	typ       string
	machine   bool
	at        time.Time
}

func insertEvents(t *testing.T, pool *pgxpool.Pool, evs ...event) {
	t.Helper()
	for _, e := range evs {
		_, err := pool.Exec(context.Background(), `INSERT INTO events.engagement_events
			(id, company_id, workspace_id, domain_id, campaign_id, recipient_id, type, is_machine, created_at)
			VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8)`,
			e.tenant[0], e.tenant[1], e.tenant[2], e.campaign, e.recipient, e.typ, e.machine, e.at)
		require.NoError(t, err)
	}
}

// insertLegacy writes evs to the legacy table events.email_events, which has no machine mark.
func insertLegacy(t *testing.T, pool *pgxpool.Pool, evs ...event) {
	t.Helper()
	for _, e := range evs {
		_, err := pool.Exec(context.Background(), `INSERT INTO events.email_events
			(id, company_id, workspace_id, domain_id, campaign_id, recipient_id, type, occurred_at)
			VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7)`,
			e.tenant[0], e.tenant[1], e.tenant[2], e.campaign, e.recipient, e.typ, e.at)
		require.NoError(t, err)
	}
}

// uniques reads the unique counts of a campaign: opens, human opens, clicks, human clicks.
func uniques(t *testing.T, pool *pgxpool.Pool, domain uuid.UUID, campaign uuid.NullUUID) [4]int64 {
	t.Helper()
	var u [4]int64
	err := pool.QueryRow(context.Background(), `SELECT unique_opens, unique_human_opens, unique_clicks, unique_human_clicks
		FROM events.campaign_engagement_uniques WHERE domain_id = $1 AND campaign_id = $2`, domain, campaign).
		Scan(&u[0], &u[1], &u[2], &u[3])
	if errors.Is(err, pgx.ErrNoRows) {
		return u
	}
	require.NoError(t, err)
	return u
}

// refreshedAt reads when the unique counts of a campaign were last written.
func refreshedAt(t *testing.T, pool *pgxpool.Pool, domain uuid.UUID, campaign uuid.NullUUID) time.Time {
	t.Helper()
	var at time.Time
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT refreshed_at FROM events.campaign_engagement_uniques
		WHERE domain_id = $1 AND campaign_id = $2`, domain, campaign).Scan(&at))
	return at
}

// daily reads the daily rollup of a campaign, oldest day first.
func daily(t *testing.T, pool *pgxpool.Pool, domain uuid.UUID, campaign uuid.NullUUID) []row {
	t.Helper()
	r, err := pool.Query(context.Background(), `
		SELECT domain_id, campaign_id, day, total, opens, opens_machine, clicks, clicks_machine, sent, bounces
		FROM events.email_events_daily WHERE domain_id = $1 AND campaign_id = $2 ORDER BY day`, domain, campaign)
	require.NoError(t, err)
	out, err := pgx.CollectRows(r, scanRow)
	require.NoError(t, err)
	return out
}

// TestRollupCountsUniqueOpensAndClicks: a recipient who opens on several days, or opens
// again in a later run's window, is one unique opener; a machine open makes a unique opener
// but not a human one until a human open comes; the counts of two tenants stay apart. With the
// flag off the rollup counts the legacy table, which marks no machine events.
func TestRollupCountsUniqueOpensAndClicks(t *testing.T) {
	t.Parallel()
	now := time.Date(2031, time.March, 12, 9, 0, 0, 0, time.UTC)
	b := setup(t, now)
	ctx := context.Background()
	_, err := b.admin.Exec(ctx, "SELECT events.create_engagement_partitions($1, $2)", now.AddDate(0, 0, -14), now)
	require.NoError(t, err)
	day := func(d int, h int) time.Time {
		return now.AddDate(0, 0, -d).Truncate(24 * time.Hour).Add(time.Duration(h) * time.Hour)
	}
	flagstest.Both(t, b.flags, flags.EventsPartitionedStorage, func(t *testing.T, on bool) {
		insert := insertLegacy
		if on {
			insert = insertEvents
		}
		a := [3]uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
		other := [3]uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
		campaign := uuid.NullUUID{UUID: uuid.New(), Valid: true}
		r := func() uuid.NullUUID { return uuid.NullUUID{UUID: uuid.New(), Valid: true} }
		r1, r2, r3 := r(), r(), r()
		insert(t, b.admin,
			event{tenant: a, campaign: campaign, recipient: r1, typ: "open", at: day(2, 1)},
			event{tenant: a, campaign: campaign, recipient: r1, typ: "open", at: day(1, 1)},
			event{tenant: a, campaign: campaign, recipient: r1, typ: "click", at: day(1, 2)},
			event{tenant: a, campaign: campaign, recipient: r1, typ: "click", at: day(0, 2)},
			event{tenant: a, campaign: campaign, recipient: r2, typ: "open", machine: true, at: day(1, 5)},
			event{tenant: a, campaign: campaign, recipient: r2, typ: "delivered", at: day(1, 4)},
			// The same campaign id in another tenant's domain counts there.
			event{tenant: other, campaign: campaign, recipient: r3, typ: "open", at: day(0, 1)},
		)
		b.run(t, jobs.EventRollupArgs{})
		want := [4]int64{2, 2, 1, 1}
		if on {
			want = [4]int64{2, 1, 1, 1}
		}
		require.Equal(t, want, uniques(t, b.admin, a[2], campaign))
		require.Equal(t, [4]int64{1, 1, 0, 0}, uniques(t, b.admin, other[2], campaign))
		// The daily counts come from the same table: with the flag off, no open is a machine one.
		var machineOpens int64
		if on {
			machineOpens = 1
		}
		wantDaily := []row{
			{Domain: a[2], Campaign: campaign, Day: day(2, 0), Total: 1, Opens: 1},
			{Domain: a[2], Campaign: campaign, Day: day(1, 0), Total: 4, Opens: 2, OpensM: machineOpens, Clicks: 1},
			{Domain: a[2], Campaign: campaign, Day: day(0, 0), Total: 1, Clicks: 1},
		}
		require.Equal(t, wantDaily, daily(t, b.admin, a[2], campaign))

		// Again: nothing changes, not even when the unique counts were written, since no first
		// time moved. Then a human open of r2 and a late open of r1 (earlier than its first): r2
		// becomes a human opener, r1 stays one opener.
		refreshed := refreshedAt(t, b.admin, a[2], campaign)
		b.run(t, jobs.EventRollupArgs{})
		require.Equal(t, want, uniques(t, b.admin, a[2], campaign))
		require.Equal(t, wantDaily, daily(t, b.admin, a[2], campaign))
		require.True(t, refreshed.Equal(refreshedAt(t, b.admin, a[2], campaign)), "the unique counts were not written again")
		insert(t, b.admin,
			event{tenant: a, campaign: campaign, recipient: r2, typ: "open", at: day(0, 6)},
			event{tenant: a, campaign: campaign, recipient: r1, typ: "open", at: day(3, 0)},
		)
		b.run(t, jobs.EventRollupArgs{})
		require.Equal(t, [4]int64{2, 2, 1, 1}, uniques(t, b.admin, a[2], campaign))
		var first time.Time
		require.NoError(t, b.admin.QueryRow(ctx, `SELECT first_open_at FROM events.campaign_recipient_engagement
			WHERE domain_id = $1 AND campaign_id = $2 AND recipient_id = $3`, a[2], campaign, r1).Scan(&first))
		require.True(t, first.Equal(day(3, 0)), "the late open is r1's first: %s", first)

		// Days leave the window: the unique counts stay.
		b.clock.Set(now.AddDate(0, 0, 10))
		b.run(t, jobs.EventRollupArgs{})
		require.Equal(t, [4]int64{2, 2, 1, 1}, uniques(t, b.admin, a[2], campaign))
		b.clock.Set(now)
	})
}

// recount counts the events of the days [from, to) straight from the events, in the rollup's
// shape, and rollup reads the rollup of those days; both ordered alike.
const recountSQL = `
SELECT domain_id, campaign_id, (created_at AT TIME ZONE 'UTC')::date AS day, count(*),
	count(*) FILTER (WHERE type = 'open'), count(*) FILTER (WHERE type = 'open' AND is_machine),
	count(*) FILTER (WHERE type = 'click'), count(*) FILTER (WHERE type = 'click' AND is_machine),
	count(*) FILTER (WHERE type = 'sent'), count(*) FILTER (WHERE type = 'bounce')
FROM events.engagement_events
WHERE created_at >= $1 AND created_at < $2
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`

const rollupReadSQL = `
SELECT domain_id, campaign_id, day, total, opens, opens_machine, clicks, clicks_machine, sent, bounces
FROM events.email_events_daily WHERE day >= $1::date AND day < $2::date ORDER BY 1, 2, 3`

type row struct {
	Domain                                         uuid.UUID
	Campaign                                       uuid.NullUUID
	Day                                            time.Time
	Total, Opens, OpensM, Clicks, ClicksM, Sent, B int64
}

func rows(t *testing.T, pool *pgxpool.Pool, sql string, from, to time.Time) []row {
	t.Helper()
	r, err := pool.Query(context.Background(), sql, from, to)
	require.NoError(t, err)
	out, err := pgx.CollectRows(r, scanRow)
	require.NoError(t, err)
	return out
}

func scanRow(r pgx.CollectableRow) (row, error) {
	var x row
	err := r.Scan(&x.Domain, &x.Campaign, &x.Day, &x.Total, &x.Opens, &x.OpensM, &x.Clicks, &x.ClicksM, &x.Sent, &x.B)
	return x, err
}

func TestRollupMatchesRecount(t *testing.T) {
	t.Parallel()
	now := time.Date(2031, time.January, 15, 9, 0, 0, 0, time.UTC)
	b := setup(t, now)
	ctx := context.Background()
	_, err := b.admin.Exec(ctx, "SELECT events.create_engagement_partitions($1, $2)", now.AddDate(0, 0, -14), now)
	require.NoError(t, err)

	a := [3]uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	other := [3]uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	spring := uuid.NullUUID{UUID: uuid.New(), Valid: true}
	day := func(d int, h int) time.Time {
		return now.AddDate(0, 0, -d).Truncate(24 * time.Hour).Add(time.Duration(h) * time.Hour)
	}
	insertEvents(t, b.admin,
		event{tenant: a, campaign: spring, typ: "sent", at: day(2, 1)},
		event{tenant: a, campaign: spring, typ: "open", at: day(2, 2)},
		event{tenant: a, campaign: spring, typ: "open", machine: true, at: day(2, 3)},
		event{tenant: a, campaign: spring, typ: "click", at: day(1, 23)},
		event{tenant: a, typ: "bounce", at: day(1, 0)},
		event{tenant: other, campaign: spring, typ: "open", at: day(0, 8)},
		// Before the window: never counted by this run.
		event{tenant: a, campaign: spring, typ: "open", at: day(5, 12)},
	)

	from, to := day(3, 0), day(-1, 0)
	b.run(t, jobs.EventRollupArgs{})
	want := rows(t, b.admin, recountSQL, from, to)
	require.Len(t, want, 4)
	require.Equal(t, want, rows(t, b.admin, rollupReadSQL, from, to))
	require.Empty(t, rows(t, b.admin, rollupReadSQL, day(6, 0), from), "days before the window are left alone")

	// A late event, two days back, and a machine click today: the next run counts them.
	insertEvents(t, b.admin,
		event{tenant: a, campaign: spring, typ: "open", at: day(2, 20)},
		event{tenant: a, campaign: spring, typ: "click", machine: true, at: day(0, 7)},
	)
	b.run(t, jobs.EventRollupArgs{})
	want = rows(t, b.admin, recountSQL, from, to)
	require.Equal(t, want, rows(t, b.admin, rollupReadSQL, from, to))
	require.Len(t, want, 5)
	for _, r := range want {
		if r.Domain == a[2] && r.Campaign == spring && r.Day.Equal(day(2, 0)) {
			require.Equal(t, row{Domain: a[2], Campaign: spring, Day: day(2, 0), Total: 4, Opens: 3, OpensM: 1, Sent: 1}, r, "the late open is counted")
		}
		if r.Domain == a[2] && r.Campaign == spring && r.Day.Equal(day(0, 0)) {
			require.Equal(t, row{Domain: a[2], Campaign: spring, Day: day(0, 0), Total: 1, Clicks: 1, ClicksM: 1}, r)
		}
	}

	// Again: the same rows.
	b.run(t, jobs.EventRollupArgs{})
	require.Equal(t, want, rows(t, b.admin, rollupReadSQL, from, to))
}

func TestPeriodicJobsAreUniqueWhileWaiting(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	ctx := context.Background()
	for _, args := range []river.JobArgs{jobs.EventPartitionsArgs{}, jobs.EventRollupArgs{}, jobs.EventRetentionArgs{}} {
		first, err := ins.Insert(ctx, args, nil)
		require.NoError(t, err)
		require.Equal(t, jobs.QueueMaintenance, first.Job.Queue)
		again, err := ins.Insert(ctx, args, nil)
		require.NoError(t, err)
		require.True(t, again.UniqueSkippedAsDuplicate, "%s: one job waiting at a time", args.Kind())
		_, err = pool.Exec(ctx, "UPDATE river.river_job SET state = $1, finalized_at = now() WHERE id = $2", rivertype.JobStateCompleted, first.Job.ID)
		require.NoError(t, err)
		next, err := ins.Insert(ctx, args, nil)
		require.NoError(t, err)
		require.False(t, next.UniqueSkippedAsDuplicate, "%s: a completed job does not hold the next period back", args.Kind())
	}
	require.Len(t, eventstorage.PeriodicJobs(15*time.Minute), 3)
}
