package migrations_test

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
)

// pgDump returns the path of pg_dump the way scripts/deps.sh finds the
// PostgreSQL client programs: from the server's bin directory (the one of
// initdb on PATH, else the newest /usr/lib/postgresql/<version>/bin), else
// from PATH. The test fails when there is none: a schema comparison that
// does not run must not pass.
func pgDump(t *testing.T) string {
	t.Helper()
	var dirs []string
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(initdb); err == nil {
			dirs = append(dirs, filepath.Dir(resolved))
		}
		dirs = append(dirs, filepath.Dir(initdb))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	dirs = append(dirs, versions...)
	for _, dir := range dirs {
		p := filepath.Join(dir, "pg_dump")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("pg_dump")
	require.NoError(t, err, "pg_dump not found with initdb, in /usr/lib/postgresql/*/bin nor on PATH (scripts/deps.sh installs it)")
	return p
}

// schemaDump returns `pg_dump --schema-only --no-owner` of databaseURL,
// normalised so that dumps of two databases compare equal when their schemas
// are: the database name and pg_dump's version lines and per-run keys are
// taken out.
func schemaDump(t *testing.T, databaseURL string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	require.NoError(t, err)
	dbName := strings.TrimPrefix(u.Path, "/")
	require.NotEmpty(t, dbName)

	// The password, if any, goes through the environment, never the command line.
	env := os.Environ()
	if pw, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	cmd := exec.CommandContext(t.Context(), pgDump(t), "--schema-only", "--no-owner", "--dbname", u.String())
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "pg_dump: %s", stderr.String())

	var b strings.Builder
	for line := range strings.Lines(string(out)) {
		switch {
		case strings.HasPrefix(line, "-- Dumped from database version"),
			strings.HasPrefix(line, "-- Dumped by pg_dump version"),
			// pg_dump 15.14 and later fence the dump with a random key.
			strings.HasPrefix(line, `\restrict `),
			strings.HasPrefix(line, `\unrestrict `):
			continue
		}
		b.WriteString(strings.ReplaceAll(line, dbName, "DBNAME"))
	}
	dump := b.String()
	require.Contains(t, dump, "CREATE TABLE identity.companies", "the dump holds the schema")
	return dump
}

// dumpClock is the storage setup's clock in the dump tests: the weekly
// partitions it creates depend on the date, and a fixed one keeps two runs
// comparable even across a week's end.
var dumpClock = time.Date(2026, time.March, 4, 12, 0, 0, 0, time.UTC)

// TestUpStepByStepMatchesUpFromEmpty migrates one database in one run and
// another as successive releases would have (the first migration of each
// schema, then up): both end in the same schema.
func TestUpStepByStepMatchesUpFromEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	require.NoError(t, migrations.UpAt(ctx, b.url, dumpClock, b.log))

	stepped := pgtest.EmptyURL(t)
	require.NoError(t, migrations.UpSteps(ctx, stepped, 1, b.log))
	statuses, err := migrations.Status(ctx, stepped)
	require.NoError(t, err)
	for _, s := range statuses {
		if s.Schema == migrations.RiverSchema {
			require.Zero(t, s.Version, "river is left alone")
			continue
		}
		require.Equal(t, uint(1), s.Version, s.Schema)
	}
	require.NoError(t, migrations.UpAt(ctx, stepped, dumpClock, b.log))

	require.Equal(t, schemaDump(t, b.url), schemaDump(t, stepped))
}

// TestUpDownUpRoundTrips rolls back migrations and applies them again: the
// schema is the same as before, dump for dump.
func TestUpDownUpRoundTrips(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	require.NoError(t, migrations.UpAt(ctx, b.url, dumpClock, b.log))
	want := schemaDump(t, b.url)
	require.Contains(t, want, "CREATE TABLE events."+migrations.PartitionName(dumpClock), "the partitions are part of the comparison")

	done, err := migrations.Down(ctx, b.url, 1, migrations.DownOptions{}, b.log)
	require.NoError(t, err)
	require.Len(t, done, 1)
	require.NotEqual(t, want, schemaDump(t, b.url), "down 1 changed the schema")
	require.NoError(t, migrations.UpAt(ctx, b.url, dumpClock, b.log))
	require.Equal(t, want, schemaDump(t, b.url), "up, down 1, up")

	// Every migration of every owning schema, and back.
	total := 0
	for _, schema := range migrations.Schemas() {
		files, err := filepath.Glob(filepath.Join("sql", schema, "*.up.sql"))
		require.NoError(t, err)
		total += len(files)
	}
	done, err = migrations.Down(ctx, b.url, total, migrations.DownOptions{}, b.log)
	require.NoError(t, err)
	require.Len(t, done, total)
	require.NoError(t, migrations.UpAt(ctx, b.url, dumpClock, b.log))
	require.Equal(t, want, schemaDump(t, b.url), "up, down all, up")
}
