package migrations_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// recipientIndexDef is how pg_get_indexdef shows the recipient index named
// name of table (qualified): ON ONLY for the partitioned table's own, however
// it was created.
func recipientIndexDef(name, table string) string {
	on := "ON "
	if table == "events.engagement_events" {
		on = "ON ONLY "
	}
	return "CREATE INDEX " + name + " " + on + table + " USING btree (domain_id, recipient_id, created_at)"
}

// requireRecipientIndex checks that the recipient index is valid on
// events.engagement_events and that every partition has a valid copy of it,
// named by RecipientIndexOf, attached to it; it returns the partitions.
func requireRecipientIndex(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	ctx := t.Context()
	var def string
	var valid bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT pg_get_indexdef(x.indexrelid), x.indisvalid FROM pg_index AS x
		WHERE x.indexrelid = to_regclass('events.`+migrations.RecipientIndex+`')`).Scan(&def, &valid))
	require.Equal(t, recipientIndexDef(migrations.RecipientIndex, "events.engagement_events"), def)
	require.True(t, valid, "the parent's index is valid once every partition has its own")

	rows, err := pool.Query(ctx, `SELECT c.relname, ci.relname, pg_get_indexdef(x.indexrelid), x.indisvalid
		FROM pg_inherits AS i
		JOIN pg_class AS c ON c.oid = i.inhrelid
		LEFT JOIN (pg_inherits AS ii JOIN pg_index AS x ON x.indexrelid = ii.inhrelid
			JOIN pg_class AS ci ON ci.oid = x.indexrelid)
			ON ii.inhparent = $1::regclass AND x.indrelid = c.oid
		WHERE i.inhparent = 'events.engagement_events'::regclass
		ORDER BY 1`, "events."+migrations.RecipientIndex)
	require.NoError(t, err)
	var parts []string
	for rows.Next() {
		var part string
		var index, def *string
		var valid *bool
		require.NoError(t, rows.Scan(&part, &index, &def, &valid))
		require.NotNil(t, index, "events.%s has the index attached", part)
		require.Equal(t, migrations.RecipientIndexOf(part), *index, "named as PostgreSQL names it")
		require.Equal(t, recipientIndexDef(*index, "events."+part), *def)
		require.True(t, *valid, *index)
		parts = append(parts, part)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, parts)
	return parts
}

// TestStorageSetupRecipientIndex: on a new database the index is made on the
// table before its first partition, and every partition gets it as it is
// attached, the setup's and any later one's (events.create_engagement_partitions
// or by hand, whatever its name's length).
func TestStorageSetupRecipientIndex(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	now := time.Date(2026, time.March, 4, 12, 0, 0, 0, time.UTC)
	require.NoError(t, migrations.UpAt(ctx, b.url, now, b.log))
	pool := connect(t, b.url)
	require.Len(t, requireRecipientIndex(t, pool), 6)

	_, err := pool.Exec(ctx, "SELECT events.create_engagement_partitions($1, $1)", now.AddDate(0, 3, 0))
	require.NoError(t, err)
	// A name of 63 bytes, the longest: PostgreSQL cuts the index's name to fit.
	long := "engagement_events_manual_" + strings.Repeat("x", 63-len("engagement_events_manual_"))
	_, err = pool.Exec(ctx, `CREATE TABLE events.`+long+` (LIKE events.engagement_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
		ALTER TABLE events.engagement_events ATTACH PARTITION events.`+long+`
			FOR VALUES FROM ('2030-01-01') TO ('2030-01-08')`)
	require.NoError(t, err)
	parts := requireRecipientIndex(t, pool)
	require.Len(t, parts, 8)
	require.Contains(t, parts, migrations.PartitionName(now.AddDate(0, 3, 0)))
	require.Contains(t, parts, long)

	plan, err := migrations.PlanAt(ctx, b.url, now)
	require.NoError(t, err)
	require.Empty(t, plan)
}

// TestStorageSetupRecipientIndexOnExistingTable: on a database whose table and
// partitions (with rows) predate the index, plan shows it and up builds it
// partition by partition, concurrently: a copy left INVALID by an interrupted
// build is dropped and built again, a valid one that was not attached yet is
// attached as it is.
func TestStorageSetupRecipientIndexOnExistingTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	now := time.Date(2026, time.March, 4, 12, 0, 0, 0, time.UTC)
	require.NoError(t, migrations.UpAt(ctx, b.url, now, b.log))
	pool := connect(t, b.url)

	// The database as the release before the index left it.
	_, err := pool.Exec(ctx, `DROP INDEX events.`+migrations.RecipientIndex+`;
		INSERT INTO events.engagement_events (id, company_id, workspace_id, domain_id, type, recipient_id, created_at, url)
		SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'open', gen_random_uuid(),
			'2026-03-02 00:00:00+00'::timestamptz + n * interval '1 minute', 'https://example.com/' || n
		FROM generate_series(1, 20000) AS n`)
	require.NoError(t, err)
	plan, err := migrations.PlanAt(ctx, b.url, now)
	require.NoError(t, err)
	require.Equal(t, []migrations.Migration{{
		Schema: migrations.StorageStep,
		File: "partitioned: index " + migrations.RecipientIndex +
			" on events.engagement_events (domain_id, recipient_id, created_at), built concurrently on 6 partitions",
	}}, plan)

	// An interrupted concurrent build leaves an INVALID index of the expected name
	// behind (here the build fails on a row); another partition got a valid one
	// whose attach did not happen.
	invalidPart, validPart := "engagement_events_p20260302", "engagement_events_p20260309"
	invalid, valid := migrations.RecipientIndexOf(invalidPart), migrations.RecipientIndexOf(validPart)
	_, err = pool.Exec(ctx, `CREATE INDEX CONCURRENTLY `+invalid+` ON events.`+invalidPart+`
		(domain_id, recipient_id, (1 / (length(url) - length(url))))`)
	requireCode(t, err, "22012", "division by zero")
	var isValid bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = $1::regclass`, "events."+invalid).Scan(&isValid))
	require.False(t, isValid)
	_, err = pool.Exec(ctx, `CREATE INDEX `+valid+` ON events.`+validPart+` (domain_id, recipient_id, created_at)`)
	require.NoError(t, err)
	var validOID uint32
	require.NoError(t, pool.QueryRow(ctx, `SELECT $1::regclass::oid`, "events."+valid).Scan(&validOID))

	require.NoError(t, migrations.UpAt(ctx, b.url, now, b.log))
	requireRecipientIndex(t, pool)
	var oid uint32
	require.NoError(t, pool.QueryRow(ctx, `SELECT $1::regclass::oid`, "events."+valid).Scan(&oid))
	require.Equal(t, validOID, oid, "the valid copy is attached, not built again")

	plan, err = migrations.PlanAt(ctx, b.url, now)
	require.NoError(t, err)
	require.Empty(t, plan)
	require.NoError(t, migrations.UpAt(ctx, b.url, now, b.log), "idempotent")

	// A partition made afterwards comes with the index, and the parent's stays valid.
	_, err = pool.Exec(ctx, "SELECT events.create_engagement_partitions($1, $1)", now.AddDate(0, 2, 0))
	require.NoError(t, err)
	require.Contains(t, requireRecipientIndex(t, pool), migrations.PartitionName(now.AddDate(0, 2, 0)))

	// Planned together with missing partitions.
	_, err = pool.Exec(ctx, `DROP INDEX events.`+migrations.RecipientIndex)
	require.NoError(t, err)
	plan, err = migrations.PlanAt(ctx, b.url, now.AddDate(0, 0, 21))
	require.NoError(t, err)
	require.Equal(t, []migrations.Migration{{
		Schema: migrations.StorageStep,
		File: "partitioned: index " + migrations.RecipientIndex +
			" on events.engagement_events (domain_id, recipient_id, created_at), built concurrently on 7 partitions; " +
			"weekly partitions of events.engagement_events from 2026-03-16 to 2026-04-27 (3 missing)",
	}}, plan)
}

// TestTimescaleIndexStatement checks the hypertable's index statement as far
// as PostgreSQL without TimescaleDB can: the statement parses and names the
// table, PostgreSQL refusing only TimescaleDB's option (TimescaleDB takes it
// out before PostgreSQL sees it); without the option it makes the intended
// index, which the done query then finds.
func TestTimescaleIndexStatement(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := t.Context()
	done := func() bool {
		var ok bool
		require.NoError(t, pool.QueryRow(ctx, migrations.TimescaleIndexDoneSQL).Scan(&ok))
		return ok
	}
	require.True(t, done(), "the partitioned table of the test database has it")
	_, err := pool.Exec(ctx, `DROP INDEX events.`+migrations.RecipientIndex)
	require.NoError(t, err)
	require.False(t, done())

	_, err = pool.Exec(ctx, migrations.TimescaleIndexSQL)
	requireCode(t, err, "22023")
	require.ErrorContains(t, err, `unrecognized parameter namespace "timescaledb"`)

	option := regexp.MustCompile(`\s*WITH \(timescaledb\.transaction_per_chunk\)$`)
	require.Regexp(t, option, migrations.TimescaleIndexSQL)
	_, err = pool.Exec(ctx, option.ReplaceAllString(migrations.TimescaleIndexSQL, ""))
	require.NoError(t, err)
	require.True(t, done())
	var def string
	require.NoError(t, pool.QueryRow(ctx, `SELECT pg_get_indexdef($1::regclass)`, "events."+migrations.RecipientIndex).Scan(&def))
	require.Equal(t, recipientIndexDef(migrations.RecipientIndex, "events.engagement_events"), def)
}
