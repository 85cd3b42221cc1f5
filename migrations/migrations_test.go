package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/lint/sqlfile"
	"github.com/heraldmail/herald/migrations/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testBundle holds what a test needs around one empty database.
type testBundle struct {
	url string
	log *zap.Logger
}

func setup(t *testing.T) testBundle {
	t.Helper()
	return testBundle{url: pgtest.EmptyURL(t), log: zaptest.NewLogger(t)}
}

func connect(t *testing.T, databaseURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), databaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// tables lists every table of the database as schema.table.
func tables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT table_schema || '.' || table_name
		FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
		ORDER BY 1`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// latestRiverVersion is the highest migration River ships.
func latestRiverVersion(t *testing.T) uint {
	t.Helper()
	migrator, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	require.NoError(t, err)
	all := migrator.AllVersions()
	require.NotEmpty(t, all)
	return uint(all[len(all)-1].Version)
}

func TestUpCreatesEveryTable(t *testing.T) {
	t.Parallel()
	b := setup(t)

	require.NoError(t, migrations.Up(t.Context(), b.url, b.log))

	got := tables(t, connect(t, b.url))
	for _, want := range []string{
		"identity.companies",
		"identity.workspaces",
		"identity.domains",
		"identity.users",
		"identity.memberships",
		"identity.invitations",
		"identity.api_keys",
		"identity.refresh_tokens",
		"identity.platform_operators",
		"identity.schema_migrations",
		"recipient.recipients",
		"recipient.schema_migrations",
		"campaign.campaigns",
		"campaign.schema_migrations",
		"events.email_events",
		"events.schema_migrations",
		"river.river_job",
		"river.river_migration",
		"river.river_queue",
		"river.river_leader",
	} {
		require.Contains(t, got, want)
	}
	for _, name := range got {
		require.NotRegexp(t, `^public\.`, name, "nothing belongs in schema public")
	}
}

func TestUpTwiceIsNoop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()

	require.NoError(t, migrations.Up(ctx, b.url, b.log))
	before, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)

	core, logs := observer.New(zap.InfoLevel)
	require.NoError(t, migrations.Up(ctx, b.url, zap.New(core)))

	after, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)
	require.Equal(t, before, after)
	require.Zero(t, logs.FilterMessage("schema migrated").Len())
	require.Equal(t, len(migrations.Schemas())+1, logs.FilterMessage("schema up to date").Len())
}

func TestUpConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)

	const runs = 2
	errs := make(chan error, runs)
	for range runs {
		go func() { errs <- migrations.Up(t.Context(), b.url, b.log) }()
	}
	for range runs {
		require.NoError(t, <-errs)
	}

	statuses, err := migrations.Status(t.Context(), b.url)
	require.NoError(t, err)
	for _, s := range statuses {
		require.Equal(t, s.Latest, s.Version, s.Schema)
		require.False(t, s.Dirty, s.Schema)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()

	wantSchemas := append(migrations.Schemas(), migrations.RiverSchema)
	schemasOf := func(statuses []migrations.SchemaStatus) []string {
		names := make([]string, 0, len(statuses))
		for _, s := range statuses {
			names = append(names, s.Schema)
		}
		return names
	}

	t.Run("before up", func(t *testing.T) {
		statuses, err := migrations.Status(ctx, b.url)
		require.NoError(t, err)
		require.Equal(t, wantSchemas, schemasOf(statuses))
		for _, s := range statuses {
			require.Zero(t, s.Version, s.Schema)
			require.False(t, s.Dirty, s.Schema)
			require.NotZero(t, s.Latest, s.Schema)
		}
	})

	require.NoError(t, migrations.Up(ctx, b.url, b.log))

	t.Run("after up", func(t *testing.T) {
		statuses, err := migrations.Status(ctx, b.url)
		require.NoError(t, err)
		require.Equal(t, wantSchemas, schemasOf(statuses))
		for _, s := range statuses {
			require.Equal(t, s.Latest, s.Version, s.Schema)
			require.False(t, s.Dirty, s.Schema)
		}
		require.Equal(t, latestRiverVersion(t), statuses[len(statuses)-1].Version)
	})
}

func TestUpRefusesDirtySchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	require.NoError(t, migrations.Up(ctx, b.url, b.log))

	_, err := connect(t, b.url).Exec(ctx, "UPDATE recipient.schema_migrations SET dirty = true")
	require.NoError(t, err)

	statuses, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)
	require.Equal(t, "recipient", statuses[1].Schema)
	require.True(t, statuses[1].Dirty)

	err = migrations.Up(ctx, b.url, b.log)
	require.ErrorContains(t, err, fmt.Sprintf("migrate recipient: version %d is dirty", statuses[1].Version))
}

func TestUpNeverRepeatsThePassword(t *testing.T) {
	t.Parallel()

	for _, databaseURL := range []string{
		"postgres://herald:s3cr3t@127.0.0.1:notaport/herald",
		"mysql://herald:s3cr3t@127.0.0.1/herald",
		"postgres://herald:s3cr3t@127.0.0.1:1/herald?sslmode=disable",
	} {
		err := migrations.Up(t.Context(), databaseURL, zap.NewNop())
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cr3t")

		_, err = migrations.Status(t.Context(), databaseURL)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cr3t")
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()

	first, err := migrations.Fingerprint()
	require.NoError(t, err)
	require.Len(t, first, 64)

	second, err := migrations.Fingerprint()
	require.NoError(t, err)
	require.Equal(t, first, second)
}

func TestRecipientsUniqueEmailPerDomain(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := t.Context()

	insert := func(domainID, email string) error {
		_, err := pool.Exec(ctx, `
			INSERT INTO recipient.recipients (company_id, workspace_id, domain_id, email)
			VALUES (gen_random_uuid(), gen_random_uuid(), $1, $2)`, domainID, email)
		return err
	}
	const (
		domainA = "0b8f6a57-8f0d-4c8e-9a57-2a1f0e3c4d5e"
		domainB = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
	)

	require.NoError(t, insert(domainA, "ada@example.com"))
	require.NoError(t, insert(domainB, "ada@example.com"), "the same email in another domain is another recipient")

	err := insert(domainA, "ada@example.com")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a PostgreSQL error, got %v", err)
	require.Equal(t, "23505", pgErr.Code)
	require.Equal(t, "recipients_domain_id_email_key", pgErr.ConstraintName)
}

func TestCheckConstraints(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)

	for name, stmt := range map[string]string{
		"recipients_status_check": `INSERT INTO recipient.recipients (company_id, workspace_id, domain_id, email, status)
			VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'a@example.com', 'gone')`,
		"recipients_attributes_check": `INSERT INTO recipient.recipients (company_id, workspace_id, domain_id, email, attributes)
			VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'a@example.com', '[]')`,
		"campaigns_status_check": `INSERT INTO campaign.campaigns (company_id, workspace_id, domain_id, name, status)
			VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'spring', 'done')`,
		"email_events_type_check": `INSERT INTO events.email_events (id, company_id, workspace_id, domain_id, type, occurred_at)
			VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'read', now())`,
	} {
		_, err := pool.Exec(t.Context(), stmt)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%s: want a PostgreSQL error, got %v", name, err)
		require.Equal(t, "23514", pgErr.Code, name)
		require.Equal(t, name, pgErr.ConstraintName)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := t.Context()

	var (
		status, reason, attributes string
		changedAt                  *string
	)
	err := pool.QueryRow(ctx, `
		INSERT INTO recipient.recipients (company_id, workspace_id, domain_id, email)
		VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'a@example.com')
		RETURNING status, status_reason, status_changed_at::text, attributes::text`).
		Scan(&status, &reason, &changedAt, &attributes)
	require.NoError(t, err)
	require.Equal(t, "subscribed", status)
	require.Empty(t, reason)
	require.Nil(t, changedAt)
	require.Equal(t, "{}", attributes)

	var campaignStatus string
	err = pool.QueryRow(ctx, `
		INSERT INTO campaign.campaigns (company_id, workspace_id, domain_id, name)
		VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'spring')
		RETURNING status`).Scan(&campaignStatus)
	require.NoError(t, err)
	require.Equal(t, "draft", campaignStatus)
}

func TestDomainsBelongToAWorkspace(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := t.Context()

	var companyID, workspaceID string
	require.NoError(t, pool.QueryRow(ctx, "INSERT INTO identity.companies (name) VALUES ('Acme') RETURNING id").Scan(&companyID))
	require.NoError(t, pool.QueryRow(ctx, "INSERT INTO identity.workspaces (company_id, name) VALUES ($1, 'Main') RETURNING id", companyID).Scan(&workspaceID))

	_, err := pool.Exec(ctx, "INSERT INTO identity.domains (company_id, workspace_id, name) VALUES ($1, $2, 'mail.acme.test')", companyID, workspaceID)
	require.NoError(t, err)

	_, err = pool.Exec(ctx, "INSERT INTO identity.domains (company_id, workspace_id, name) VALUES ($1, $2, 'mail.acme.test')", companyID, workspaceID)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a PostgreSQL error, got %v", err)
	require.Equal(t, "domains_name_key", pgErr.ConstraintName)

	_, err = pool.Exec(ctx, "INSERT INTO identity.domains (company_id, workspace_id, name) VALUES ($1, gen_random_uuid(), 'other.acme.test')", companyID)
	require.True(t, errors.As(err, &pgErr), "want a PostgreSQL error, got %v", err)
	require.Equal(t, "23503", pgErr.Code)
}

func TestMigrationFiles(t *testing.T) {
	t.Parallel()
	// A migration that validates a constraint may allow its scan more time than 60 s; it still
	// sets one.
	const failFast = "SET lock_timeout = '5s';\nSET statement_timeout = '"

	for _, schema := range migrations.Schemas() {
		dir := filepath.Join("sql", schema)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.NotEmpty(t, entries, schema)

		for _, e := range entries {
			name := e.Name()
			require.Regexp(t, `^\d{6}_[a-z0-9_]+\.(up|down)\.sql$`, name)
			if base, ok := strings.CutSuffix(name, ".up.sql"); ok {
				require.FileExists(t, filepath.Join(dir, base+".down.sql"), "every up migration has a down")
				body, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				// Header annotations (-- herald:contract, -- herald:no-transaction) come first.
				text := string(body)
				noTx := strings.HasPrefix(text, "-- herald:no-transaction\n")
				for strings.HasPrefix(text, "-- herald:") {
					_, text, _ = strings.Cut(text, "\n")
				}
				if noTx {
					// An index built concurrently may take longer than a minute on a large
					// table, so such a file may lift the statement timeout.
					text = strings.Replace(text, "SET statement_timeout = 0;", "SET statement_timeout = '0';", 1)
				}
				require.True(t, strings.HasPrefix(text, failFast), "%s/%s must begin with the lock and statement timeouts", schema, name)
			}
		}
	}
}

func TestDownReversesUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	require.NoError(t, migrations.Up(ctx, b.url, b.log))
	pool := connect(t, b.url)
	before := tables(t, pool)

	files := func(schema, direction string) []string {
		names, err := filepath.Glob(filepath.Join("sql", schema, "*."+direction+".sql"))
		require.NoError(t, err)
		require.NotEmpty(t, names)
		if direction == "down" {
			slices.Reverse(names)
		}
		return names
	}
	apply := func(name string) {
		body, err := os.ReadFile(name)
		require.NoError(t, err)
		if !sqlfile.NoTransaction(string(body)) {
			_, err = pool.Exec(ctx, string(body))
			require.NoError(t, err, name)
			return
		}
		// As the runner does: one Exec per statement, on one connection.
		f, err := sqlfile.Parse(string(body))
		require.NoError(t, err, name)
		conn, err := pool.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		for _, st := range f.Statements {
			_, err = conn.Exec(ctx, st.Text)
			require.NoError(t, err, name)
		}
	}

	schemas := migrations.Schemas()
	for _, schema := range slices.Backward(schemas) {
		for _, name := range files(schema, "down") {
			apply(name)
		}
	}
	for _, name := range tables(t, pool) {
		if !strings.HasPrefix(name, migrations.RiverSchema+".") {
			require.True(t, strings.HasSuffix(name, ".schema_migrations"), "%s is left after every down migration", name)
		}
	}

	for _, schema := range schemas {
		for _, name := range files(schema, "up") {
			apply(name)
		}
	}
	// The weekly partitions of events come from up's storage setup, not from the files.
	require.NoError(t, migrations.Up(ctx, b.url, b.log))
	require.Equal(t, before, tables(t, pool))
}
