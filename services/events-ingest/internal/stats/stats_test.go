package stats_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/events-ingest/internal/stats"
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
}

// setup returns a reader connected as events-ingest's role, held to its grants and to
// row-level security.
func setup(t *testing.T) (*stats.Reader, bundle) {
	t.Helper()
	dbURL := pgtest.URL(t)
	pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleEvents))
	return stats.New(pool), bundle{admin: pgtest.Open(t, dbURL), tenant: newTenant()}
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

func TestCampaignTotals(t *testing.T) {
	t.Parallel()
	r, b := setup(t)
	ctx := context.Background()
	spring := uuid.NullUUID{UUID: uuid.New(), Valid: true}
	autumn := uuid.NullUUID{UUID: uuid.New(), Valid: true}
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Campaign: spring, Day: "2031-01-13", Sent: 10, Delivered: 9, Opens: 6, OpensMachine: 2})
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Campaign: spring, Day: "2031-01-14", Opens: 2, Clicks: 2, ClicksMachine: 2, Complaints: 1})
	addRollup(t, b.admin, rollupOpts{Tenant: b.tenant, Campaign: autumn, Day: "2031-01-14", Sent: 50})

	got, err := r.CampaignTotals(ctx, b.tenant, spring.UUID)
	require.NoError(t, err)
	require.Equal(t, stats.Counts{Total: 30, Sent: 10, Delivered: 9, Opens: 8, HumanOpens: 6, Clicks: 2, HumanClicks: 0, Complaints: 1}, got)

	// Another tenant naming the campaign sees nothing of it.
	got, err = r.CampaignTotals(ctx, newTenant(), spring.UUID)
	require.NoError(t, err)
	require.Equal(t, stats.Counts{}, got)

	_, err = r.CampaignTotals(ctx, b.tenant, uuid.Nil)
	require.ErrorIs(t, err, stats.ErrInvalid)
}
