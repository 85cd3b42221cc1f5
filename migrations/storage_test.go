package migrations_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
)

func TestWeekStart(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"2026-03-02T00:00:00Z":      "2026-03-02", // a Monday
		"2026-03-08T23:59:59Z":      "2026-03-02", // the Sunday after
		"2026-03-09T00:30:00+02:00": "2026-03-02", // Sunday 22:30 UTC
		"2026-01-01T12:00:00Z":      "2025-12-29",
	} {
		ts, err := time.Parse(time.RFC3339, in)
		require.NoError(t, err)
		require.Equal(t, want, migrations.WeekStart(ts).Format(time.DateOnly), in)
	}
	require.Equal(t, "engagement_events_p20251229", migrations.PartitionName(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
}

// TestStorageSetupPartitions runs up twice at a fixed clock: the weekly
// partitions of the window exist, each under row-level security, and the
// second run changes nothing.
func TestStorageSetupPartitions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	now := time.Date(2026, time.March, 4, 12, 0, 0, 0, time.UTC)
	require.NoError(t, migrations.UpAt(ctx, b.url, now, b.log))
	require.NoError(t, migrations.UpAt(ctx, b.url, now, b.log))

	want := []string{
		"engagement_events_p20260223", "engagement_events_p20260302", "engagement_events_p20260309",
		"engagement_events_p20260316", "engagement_events_p20260323", "engagement_events_p20260330",
	}
	st, err := migrations.StorageStatus(ctx, b.url)
	require.NoError(t, err)
	require.Equal(t, migrations.StorageState{Mode: migrations.StoragePartitioned, Partitions: want}, st)

	pool := connect(t, b.url)
	var bounds string
	require.NoError(t, pool.QueryRow(ctx, `SELECT pg_get_expr(relpartbound, oid) FROM pg_class
		WHERE oid = 'events.engagement_events_p20260302'::regclass`).Scan(&bounds))
	require.Equal(t, "FOR VALUES FROM ('2026-03-02 00:00:00+00') TO ('2026-03-09 00:00:00+00')", bounds)

	// An event at the first instant of a week lands in that week's partition.
	_, err = pool.Exec(ctx, `INSERT INTO events.engagement_events (id, company_id, workspace_id, domain_id, type, created_at)
		VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'sent', '2026-03-09 00:00:00+00')`)
	require.NoError(t, err)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events.engagement_events_p20260309`).Scan(&n))
	require.Equal(t, 1, n)
}

func TestPartitionFunctions(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := t.Context()
	create := func(from, to any) ([]string, error) {
		rows, err := pool.Query(ctx, "SELECT events.create_engagement_partitions($1, $2)", from, to)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}

	_, err := create(time.Now(), time.Now().Add(-time.Hour))
	requireCode(t, err, "22023", "to before from")
	_, err = create(time.Now(), time.Now().AddDate(2, 0, 0))
	requireCode(t, err, "22023", "more than 400 days")
	_, err = create(nil, time.Now())
	requireCode(t, err, "22023", "no from")

	old := time.Date(2025, time.June, 4, 0, 0, 0, 0, time.UTC) // a Wednesday
	created, err := create(old, old.AddDate(0, 0, 14))
	require.NoError(t, err)
	require.Equal(t, []string{"engagement_events_p20250602", "engagement_events_p20250609", "engagement_events_p20250616"}, created)
	created, err = create(old, old.AddDate(0, 0, 14))
	require.NoError(t, err)
	require.Empty(t, created, "idempotent")

	drop := func(before time.Time) []string {
		rows, err := pool.Query(ctx, "SELECT events.drop_engagement_partitions($1)", before)
		require.NoError(t, err)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return names
	}
	// 2025-06-16 ends the week of 06-09: not yet (one microsecond short), then dropped.
	require.Equal(t, []string{"engagement_events_p20250602"}, drop(time.Date(2025, time.June, 15, 23, 59, 59, 0, time.UTC)))
	require.Equal(t, []string{"engagement_events_p20250609"}, drop(time.Date(2025, time.June, 16, 0, 0, 0, 0, time.UTC)))
	require.Empty(t, drop(time.Date(2025, time.June, 16, 0, 0, 0, 0, time.UTC)))
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass('events.engagement_events_p20250616') IS NOT NULL").Scan(&exists))
	require.True(t, exists)
}

// TestTimescaleSetupStatements runs the TimescaleDB setup against stand-ins
// of TimescaleDB's functions, with their signatures (2.13 and later), which
// record their arguments: the statements parse, resolve to those functions
// and pass the intended arguments. The stand-ins live in a schema of the
// test's own database, first on the search_path.
func TestTimescaleSetupStatements(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	pool := pgtest.Open(t, dbURL)
	ctx := t.Context()
	_, err := pool.Exec(ctx, `
		CREATE SCHEMA tsstub;
		CREATE TABLE tsstub.calls (n serial, fn text, args text);
		CREATE FUNCTION tsstub.by_range(column_name name, partition_interval anyelement DEFAULT NULL::unknown,
			partition_func regproc DEFAULT NULL) RETURNS text LANGUAGE sql
			AS $$ SELECT format('by_range(%s, %s)', column_name, partition_interval) $$;
		CREATE FUNCTION tsstub.create_hypertable(relation regclass, dimension text,
			create_default_indexes boolean DEFAULT true, if_not_exists boolean DEFAULT false,
			migrate_data boolean DEFAULT false) RETURNS TABLE (hypertable_id integer, created boolean)
			LANGUAGE sql AS $$
				INSERT INTO tsstub.calls (fn, args) VALUES ('create_hypertable',
					format('%s, %s, create_default_indexes=%s, if_not_exists=%s, migrate_data=%s',
						relation, dimension, create_default_indexes, if_not_exists, migrate_data));
				SELECT 1, true $$;
		CREATE FUNCTION tsstub.add_retention_policy(relation regclass, drop_after anyelement,
			if_not_exists boolean DEFAULT false, schedule_interval interval DEFAULT NULL,
			initial_start timestamptz DEFAULT NULL, timezone text DEFAULT NULL,
			drop_created_before interval DEFAULT NULL) RETURNS integer
			LANGUAGE sql AS $$
				INSERT INTO tsstub.calls (fn, args) VALUES ('add_retention_policy',
					format('%s, drop_after=%s, if_not_exists=%s', relation, drop_after, if_not_exists));
				SELECT 1000 $$;`)
	require.NoError(t, err)

	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", "tsstub,public")
	u.RawQuery = q.Encode()
	require.NoError(t, migrations.SetupTimescale(ctx, u.String()))

	rows, err := pool.Query(ctx, "SELECT fn || '(' || args || ')' FROM tsstub.calls ORDER BY n")
	require.NoError(t, err)
	calls, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{
		"create_hypertable(events.engagement_events, by_range(created_at, 7 days), create_default_indexes=f, if_not_exists=t, migrate_data=f)",
		"add_retention_policy(events.engagement_events, drop_after=90 days, if_not_exists=t)",
	}, calls)
}

// TestStorageModeFollowsTimescale checks that the events migration and the
// storage setup agree on the server: a partitioned table where TimescaleDB is
// not usable, a table for a hypertable where it is.
func TestStorageModeFollowsTimescale(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	usable, err := migrations.TimescaleUsable(t.Context(), dbURL)
	require.NoError(t, err)
	st, err := migrations.StorageStatus(t.Context(), dbURL)
	require.NoError(t, err)
	if usable {
		require.Equal(t, migrations.StorageTimescale, st.Mode)
		require.True(t, st.Hypertable, "up made events.engagement_events a hypertable")
		return
	}
	require.Equal(t, migrations.StoragePartitioned, st.Mode)
	require.NotEmpty(t, st.Partitions)
}

// TestTimescaleIntegration runs where TimescaleDB is usable: up makes the
// hypertable with its retention policy, and a second up changes nothing.
func TestTimescaleIntegration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	usable, err := migrations.TimescaleUsable(ctx, b.url)
	require.NoError(t, err)
	if !usable {
		t.Skip("TimescaleDB is not available and preloaded on the test server: the TimescaleDB path is covered by TestTimescaleSetupStatements only")
	}
	require.NoError(t, migrations.Up(ctx, b.url, b.log))
	require.NoError(t, migrations.Up(ctx, b.url, b.log))
	pool := connect(t, b.url)
	var chunkInterval time.Duration
	require.NoError(t, pool.QueryRow(ctx, `SELECT time_interval FROM timescaledb_information.dimensions
		WHERE hypertable_schema = 'events' AND hypertable_name = 'engagement_events' AND column_name = 'created_at'`).Scan(&chunkInterval))
	require.Equal(t, 7*24*time.Hour, chunkInterval)
	var jobs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM timescaledb_information.jobs
		WHERE proc_name = 'policy_retention' AND hypertable_name = 'engagement_events'`).Scan(&jobs))
	require.Equal(t, 1, jobs)
	plan, err := migrations.Plan(ctx, b.url)
	require.NoError(t, err)
	require.Empty(t, plan)
}
