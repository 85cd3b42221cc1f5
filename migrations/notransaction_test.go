package migrations_test

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/migrations"
)

// notxFiles is a schema "notx" whose first migration creates a table with
// rows, followed by the given migrations (file name to SQL).
func notxFiles(more map[string]string) fstest.MapFS {
	files := fstest.MapFS{
		"sql/notx/000001_create_items.up.sql": {Data: []byte(`SET lock_timeout = '5s';
SET statement_timeout = '60s';

CREATE TABLE notx.items (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO notx.items SELECT g, 'item ' || g FROM generate_series(1, 1000) AS g;
`)},
		"sql/notx/000001_create_items.down.sql": {Data: []byte("DROP TABLE notx.items;\n")},
	}
	for name, body := range more {
		files["sql/notx/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return files
}

// notxSetup returns an empty database with schema notx.
func notxSetup(t *testing.T) testBundle {
	t.Helper()
	b := setup(t)
	_, err := connect(t, b.url).Exec(t.Context(), "CREATE SCHEMA notx")
	require.NoError(t, err)
	return b
}

func schemaVersion(t *testing.T, b testBundle) (int64, bool) {
	t.Helper()
	var (
		version int64
		dirty   bool
	)
	err := connect(t, b.url).QueryRow(t.Context(), "SELECT version, dirty FROM notx.schema_migrations").Scan(&version, &dirty)
	require.NoError(t, err)
	return version, dirty
}

func TestNoTransactionRunsConcurrentIndexBuild(t *testing.T) {
	t.Parallel()
	b := notxSetup(t)
	ctx := t.Context()

	files := notxFiles(map[string]string{
		"000002_index_items_name.up.sql": `-- herald:no-transaction
SET lock_timeout = '5s';
SET statement_timeout = 0;

CREATE INDEX CONCURRENTLY items_name_idx
    ON notx.items (name);
`,
		"000002_index_items_name.down.sql": "-- herald:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS notx.items_name_idx;\n",
	})
	require.NoError(t, migrations.MigrateSchemaFS(ctx, b.url, files, "notx", b.log))

	var valid bool
	err := connect(t, b.url).QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'notx.items_name_idx'::regclass").Scan(&valid)
	require.NoError(t, err)
	require.True(t, valid)

	version, dirty := schemaVersion(t, b)
	require.Equal(t, int64(2), version)
	require.False(t, dirty)
}

func TestConcurrentIndexBuildNeedsNoTransaction(t *testing.T) {
	t.Parallel()
	b := notxSetup(t)

	// Without the header the file runs as one transaction, which
	// PostgreSQL refuses for CONCURRENTLY: the header is what makes it work.
	files := notxFiles(map[string]string{
		"000002_index_items_name.up.sql":   "SET lock_timeout = '5s';\nSET statement_timeout = 0;\nCREATE INDEX CONCURRENTLY items_name_idx ON notx.items (name);\n",
		"000002_index_items_name.down.sql": "DROP INDEX IF EXISTS notx.items_name_idx;\n",
	})
	err := migrations.MigrateSchemaFS(t.Context(), b.url, files, "notx", b.log)
	require.ErrorContains(t, err, "cannot run inside a transaction block")

	version, dirty := schemaVersion(t, b)
	require.Equal(t, int64(2), version)
	require.True(t, dirty)
}

func TestNoTransactionStatementsShareTheSession(t *testing.T) {
	t.Parallel()
	b := notxSetup(t)
	ctx := t.Context()

	// Each statement is an Exec of its own on one connection: the SETs
	// still hold for the statements after them.
	files := notxFiles(map[string]string{
		"000002_settings.up.sql": `-- herald:no-transaction
SET lock_timeout = '4s';
SET statement_timeout = '50s';
CREATE TABLE notx.settings AS
    SELECT current_setting('lock_timeout') AS lock_timeout, current_setting('statement_timeout') AS statement_timeout;
`,
		"000002_settings.down.sql": "DROP TABLE notx.settings;\n",
	})
	require.NoError(t, migrations.MigrateSchemaFS(ctx, b.url, files, "notx", b.log))

	var lock, statement string
	err := connect(t, b.url).QueryRow(ctx, "SELECT lock_timeout, statement_timeout FROM notx.settings").Scan(&lock, &statement)
	require.NoError(t, err)
	require.Equal(t, "4s", lock)
	require.Equal(t, "50s", statement)
}

func TestNoTransactionFailureKeepsEarlierStatements(t *testing.T) {
	t.Parallel()
	b := notxSetup(t)
	ctx := t.Context()

	// Statements run in transactions of their own, so a failure leaves
	// those before it applied and the version dirty: why the linter keeps
	// such a file to one statement besides its SETs.
	files := notxFiles(map[string]string{
		"000002_two_steps.up.sql": `-- herald:no-transaction
SET lock_timeout = '5s';
SET statement_timeout = '60s';
CREATE TABLE notx.first (id bigint);
-- A semicolon inside a string does not end the statement: ';'
INSERT INTO notx.missing VALUES ('a;b');
CREATE TABLE notx.never (id bigint);
`,
		"000002_two_steps.down.sql": "DROP TABLE IF EXISTS notx.first;\n",
	})
	err := migrations.MigrateSchemaFS(ctx, b.url, files, "notx", b.log)
	require.ErrorContains(t, err, "statement at line 6")
	require.ErrorContains(t, err, `relation "notx.missing" does not exist`)

	pool := connect(t, b.url)
	var first, never bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass('notx.first') IS NOT NULL, to_regclass('notx.never') IS NOT NULL").Scan(&first, &never))
	require.True(t, first, "the statement before the failure stays applied")
	require.False(t, never, "nothing runs after the failure")

	version, dirty := schemaVersion(t, b)
	require.Equal(t, int64(2), version)
	require.True(t, dirty)
}

func TestNoTransactionRefusesUnsplittableFile(t *testing.T) {
	t.Parallel()
	b := notxSetup(t)
	ctx := t.Context()

	files := notxFiles(map[string]string{
		"000002_broken.up.sql":   "-- herald:no-transaction\nCREATE TABLE notx.first (id bigint);\nSELECT 'never closed;\n",
		"000002_broken.down.sql": "SELECT 1;\n",
	})
	err := migrations.MigrateSchemaFS(ctx, b.url, files, "notx", b.log)
	require.ErrorContains(t, err, "split no-transaction migration: line 3: string constant opened here is never closed")

	var first bool
	require.NoError(t, connect(t, b.url).QueryRow(ctx, "SELECT to_regclass('notx.first') IS NOT NULL").Scan(&first))
	require.False(t, first, "nothing of a file that cannot be split runs")
}
