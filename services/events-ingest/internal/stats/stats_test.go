package stats_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/events-ingest/internal/stats"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type bundle struct {
	// admin writes the rollup as the worker's job would.
	admin  *pgxpool.Pool
	tenant tenancy.Tenant
	flags  *flags.Redis
}

// setup returns a reader connected as events-ingest's role, held to its grants and to
// row-level security.
func setup(t *testing.T) (*stats.Reader, bundle) {
	t.Helper()
	dbURL := pgtest.URL(t)
	pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleEvents))
	fp := flagstest.New(t)
	return stats.New(pool, store.New(pool, nil, store.WithFlags(fp)).Partitioned), bundle{admin: pgtest.Open(t, dbURL), tenant: newTenant(), flags: fp}
}

func newTenant() tenancy.Tenant {
	return tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
}

// rollupOpts is one rollup row; zero counts are left zero.
type rollupOpts struct {
	Tenant                                                    tenancy.Tenant
	Campaign                                                  uuid.NullUUID
	Day                                                       string
	Sent, Opens, OpensMachine, Clicks, ClicksMachine, Bounces int64
	Delivered, Complaints, Unsubscribes                       int64
}

func addRollup(t *testing.T, pool *pgxpool.Pool, o rollupOpts) {
	t.Helper()
	total := o.Sent + o.Delivered + o.Opens + o.Clicks + o.Bounces + o.Complaints + o.Unsubscribes
	_, err := pool.Exec(context.Background(), `INSERT INTO events.email_events_daily
		(company_id, workspace_id, domain_id, campaign_id, day, total, sent, delivered, opens, opens_machine,
		 clicks, clicks_machine, bounces, complaints, unsubscribes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		o.Tenant.CompanyID, o.Tenant.WorkspaceID, o.Tenant.DomainID, o.Campaign, o.Day, total, o.Sent, o.Delivered,
		o.Opens, o.OpensMachine, o.Clicks, o.ClicksMachine, o.Bounces, o.Complaints, o.Unsubscribes)
	require.NoError(t, err)
}

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestDailySeries(t *testing.T) {
	t.Parallel()
	r, b := setup(t)
	ctx := context.Background()
	spring := uuid.NullUUID{UUID: uuid.New(), Valid: true}
	other := newTenant()
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Campaign: spring, Day: "2031-01-13", Sent: 10, Opens: 6, OpensMachine: 2, Clicks: 3, ClicksMachine: 1})
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Day: "2031-01-13", Bounces: 1})
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Campaign: spring, Day: "2031-01-15", Opens: 1, Unsubscribes: 1})
	addRollup(t, b.admin, rollupOpts{Tenant: other, Campaign: spring, Day: "2031-01-13", Sent: 100})

	// Times within the days, in another zone: the series goes by UTC day.
	paris := time.FixedZone("CET", 3600)
	days, err := r.DailySeries(ctx, b.tenant, time.Date(2031, 1, 13, 0, 30, 0, 0, paris), time.Date(2031, 1, 15, 18, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.Equal(t, []stats.Day{
		{Day: day("2031-01-12"), Counts: stats.Counts{}},
		{Day: day("2031-01-13"), Counts: stats.Counts{Total: 20, Sent: 10, Opens: 6, HumanOpens: 4, Clicks: 3, HumanClicks: 2, Bounces: 1}},
		{Day: day("2031-01-14")},
		{Day: day("2031-01-15"), Counts: stats.Counts{Total: 2, Opens: 1, HumanOpens: 1, Unsubscribes: 1}},
	}, days)

	// Another tenant sees only its own.
	days, err = r.DailySeries(ctx, other, day("2031-01-13"), day("2031-01-13"))
	require.NoError(t, err)
	require.Equal(t, []stats.Day{{Day: day("2031-01-13"), Counts: stats.Counts{Total: 100, Sent: 100}}}, days)
}

func TestDailySeriesRefuses(t *testing.T) {
	t.Parallel()
	r, b := setup(t)
	ctx := context.Background()
	for name, tc := range map[string]struct{ from, to time.Time }{
		"to before from": {day("2031-01-13"), day("2031-01-12")},
		"no from":        {time.Time{}, day("2031-01-12")},
		"too long":       {day("2030-01-01"), day("2031-01-02")},
	} {
		_, err := r.DailySeries(ctx, b.tenant, tc.from, tc.to)
		require.ErrorIs(t, err, stats.ErrInvalid, name)
	}
	_, err := r.DailySeries(ctx, tenancy.Tenant{CompanyID: uuid.New()}, day("2031-01-01"), day("2031-01-02"))
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
}

func addUniques(t *testing.T, pool *pgxpool.Pool, tn tenancy.Tenant, campaign uuid.UUID, opens, humanOpens, clicks, humanClicks int64) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO events.campaign_engagement_uniques
		(company_id, workspace_id, domain_id, campaign_id, unique_opens, unique_human_opens, unique_clicks, unique_human_clicks, refreshed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '2031-01-15 10:00:00+00')`,
		tn.CompanyID, tn.WorkspaceID, tn.DomainID, campaign, opens, humanOpens, clicks, humanClicks)
	require.NoError(t, err)
}

func TestCampaignStats(t *testing.T) {
	t.Parallel()
	r, b := setup(t)
	ctx := context.Background()
	spring := uuid.NullUUID{UUID: uuid.New(), Valid: true}
	autumn := uuid.NullUUID{UUID: uuid.New(), Valid: true}
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Campaign: spring, Day: "2031-01-13", Sent: 10, Delivered: 8, Opens: 6, OpensMachine: 2, Bounces: 2})
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Campaign: spring, Day: "2031-01-14", Opens: 2, Clicks: 3, ClicksMachine: 2, Complaints: 1, Unsubscribes: 2})
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Campaign: autumn, Day: "2031-01-14", Sent: 50})
	addUniques(t, b.admin, b.tenant, spring.UUID, 4, 3, 2, 1)

	got, err := r.CampaignStats(ctx, b.tenant, spring.UUID)
	require.NoError(t, err)
	require.Equal(t, stats.Counts{Total: 34, Sent: 10, Delivered: 8, Opens: 8, HumanOpens: 6, Clicks: 3, HumanClicks: 1,
		Bounces: 2, Complaints: 1, Unsubscribes: 2}, got.Counts)
	require.Equal(t, [4]int64{4, 3, 2, 1}, [4]int64{got.UniqueOpens, got.UniqueHumanOpens, got.UniqueClicks, got.UniqueHumanClicks})
	require.False(t, got.RefreshedAt.IsZero())
	// The uniques were counted after the rollup rows (written now): the later time.
	require.Equal(t, time.Date(2031, time.January, 15, 10, 0, 0, 0, time.UTC), got.RefreshedAt)
	require.Equal(t, stats.Rates{Delivery: 0.8, Open: 0.5, HumanOpen: 0.375, Click: 0.25, HumanClick: 0.125, ClickToOpen: 0.5,
		Bounce: 0.2, Complaint: 0.125, Unsubscribe: 0.25}, got.Rates())

	// A campaign with sends only: no rate divides by zero; without deliveries the
	// per-delivered rates go per sent.
	got, err = r.CampaignStats(ctx, b.tenant, autumn.UUID)
	require.NoError(t, err)
	require.Equal(t, stats.Counts{Total: 50, Sent: 50}, got.Counts)
	require.Equal(t, stats.Rates{}, got.Rates())
	require.Equal(t, stats.Rates{Open: 0.1, HumanOpen: 0.1, Click: 0.1, ClickToOpen: 1}, stats.Campaign{Counts: stats.Counts{Sent: 10},
		UniqueOpens: 1, UniqueHumanOpens: 1, UniqueClicks: 1}.Rates())

	// Another tenant naming the campaign sees nothing of it.
	got, err = r.CampaignStats(ctx, newTenant(), spring.UUID)
	require.NoError(t, err)
	require.Equal(t, stats.Campaign{}, got)

	_, err = r.CampaignStats(ctx, b.tenant, uuid.Nil)
	require.ErrorIs(t, err, stats.ErrInvalid)
}

// insertTimeline writes n events of recipient in t's domain, one a minute back from at, to
// the table the flag says.
func insertTimeline(t *testing.T, pool *pgxpool.Pool, partitioned bool, tn tenancy.Tenant, recipient uuid.UUID, at time.Time, n int) {
	t.Helper()
	ctx := context.Background()
	if partitioned {
		_, err := pool.Exec(ctx, "SELECT events.create_engagement_partitions($1, $2)", at.Add(-time.Duration(n)*time.Minute), at)
		require.NoError(t, err)
	}
	table, timeColumn := "events.email_events", "occurred_at"
	if partitioned {
		table, timeColumn = "events.engagement_events", "created_at"
	}
	_, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, company_id, workspace_id, domain_id, recipient_id, campaign_id, type, url, `+timeColumn+`)
		SELECT gen_random_uuid(), $1, $2, $3, $4, $5, CASE WHEN i % 2 = 0 THEN 'open' ELSE 'click' END,
			CASE WHEN i % 2 = 0 THEN '' ELSE 'https://example.com/' || i END,
			$6::timestamptz - i * interval '1 minute'
		FROM generate_series(0, $7 - 1) AS i`,
		tn.CompanyID, tn.WorkspaceID, tn.DomainID, recipient, uuid.New(), at, n)
	require.NoError(t, err)
}

func TestTimeline(t *testing.T) {
	t.Parallel()
	r, b := setup(t)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Second)
	flagstest.Both(t, b.flags, flags.EventsPartitionedStorage, func(t *testing.T, on bool) {
		tn, other := newTenant(), newTenant()
		recipient := uuid.New()
		insertTimeline(t, b.admin, on, tn, recipient, at, 7)
		insertTimeline(t, b.admin, on, tn, uuid.New(), at, 3)
		// The same recipient id in another tenant's domain is another timeline.
		insertTimeline(t, b.admin, on, other, recipient, at, 2)

		var all []stats.Event
		token := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 4)
			page, err := r.Timeline(ctx, tn, recipient, 3, token)
			require.NoError(t, err)
			all = append(all, page.Events...)
			if page.Next == "" {
				break
			}
			token = page.Next
		}
		require.Len(t, all, 7)
		for i, e := range all {
			require.True(t, e.OccurredAt.Equal(at.Add(-time.Duration(i)*time.Minute)), "newest first: %d %s", i, e.OccurredAt)
			if i%2 == 1 {
				require.Equal(t, "click", e.Type)
				require.NotEmpty(t, e.URL)
			}
		}

		page, err := r.Timeline(ctx, other, recipient, 0, "")
		require.NoError(t, err)
		require.Len(t, page.Events, 2)
		page, err = r.Timeline(ctx, newTenant(), recipient, 0, "")
		require.NoError(t, err)
		require.Empty(t, page.Events)
		require.Empty(t, page.Next)

		// Refusals: a token of another recipient, a made-up token, page sizes out of range.
		first, err := r.Timeline(ctx, tn, recipient, 1, "")
		require.NoError(t, err)
		_, err = r.Timeline(ctx, tn, uuid.New(), 1, first.Next)
		require.ErrorIs(t, err, stats.ErrInvalid)
		_, err = r.Timeline(ctx, tn, recipient, 1, "bm90LWEtdG9rZW4")
		require.ErrorIs(t, err, stats.ErrInvalid)
		_, err = r.Timeline(ctx, tn, recipient, stats.MaxPageSize+1, "")
		require.ErrorIs(t, err, stats.ErrInvalid)
		_, err = r.Timeline(ctx, tn, recipient, -1, "")
		require.ErrorIs(t, err, stats.ErrInvalid)
	})
}
