package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/heraldmail/herald/migrations/pgtest"
)

// runMainEnv makes the test binary run main instead of the tests, so that
// tests can check exit codes and what a person sees on stderr.
const runMainEnv = "HERALD_MIGRATE_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{"migrate"}, strings.Fields(os.Getenv(runMainEnv+"_ARGS"))...)
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// runMain runs main in a child process with args and env (on top of a clean
// environment) and returns its exit code and stderr.
func runMain(t *testing.T, args string, env ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append([]string{runMainEnv + "=1", runMainEnv + "_ARGS=" + args, "PATH=" + os.Getenv("PATH")}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), stderr.String()
	}
	require.NoError(t, err)
	return 0, stderr.String()
}

func TestUsage(t *testing.T) {
	t.Parallel()

	for _, args := range []string{"", "down", "down 0", "down x", "down 1 2", "down -schema", "down -nope 1", "up now", "plan all", "seed now", "help"} {
		require.ErrorIs(t, run(t.Context(), zap.NewNop(), strings.Fields(args)), errUsage, args)

		code, stderr := runMain(t, args)
		require.Equal(t, 2, code, args)
		require.Contains(t, stderr, "usage: migrate <command>", args)
	}
}

func TestMissingDatabaseURL(t *testing.T) {
	t.Parallel()

	code, stderr := runMain(t, "up")
	require.Equal(t, 1, code)
	require.Equal(t, "migrate: DATABASE_URL is not set (nor DATABASE_URL_FILE)\n", stderr)
}

func TestErrorsNeverPrintTheURL(t *testing.T) {
	t.Parallel()

	code, stderr := runMain(t, "status", "DATABASE_URL=postgres://herald:s3cr3t@127.0.0.1:1/herald?sslmode=disable&connect_timeout=5")
	require.Equal(t, 1, code)
	require.NotContains(t, stderr, "s3cr3t")
	require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
}

func TestLoadDatabaseURL(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	file := filepath.Join(dir, "database-url")
	require.NoError(t, os.WriteFile(file, []byte("postgres://from-file\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))

	for name, tc := range map[string]struct {
		env     map[string]string
		want    string
		wantErr string
	}{
		"variable":             {env: map[string]string{"DATABASE_URL": "postgres://from-env"}, want: "postgres://from-env"},
		"variable wins":        {env: map[string]string{"DATABASE_URL": "postgres://from-env", "DATABASE_URL_FILE": file}, want: "postgres://from-env"},
		"file":                 {env: map[string]string{"DATABASE_URL_FILE": file}, want: "postgres://from-file"},
		"neither":              {env: map[string]string{}, wantErr: "DATABASE_URL is not set (nor DATABASE_URL_FILE)"},
		"missing file":         {env: map[string]string{"DATABASE_URL_FILE": filepath.Join(dir, "nope")}, wantErr: "read DATABASE_URL_FILE: "},
		"empty file":           {env: map[string]string{"DATABASE_URL_FILE": empty}, wantErr: "DATABASE_URL_FILE names an empty file"},
		"empty variable, file": {env: map[string]string{"DATABASE_URL": "", "DATABASE_URL_FILE": file}, want: "postgres://from-file"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := loadDatabaseURL(func(k string) string { return tc.env[k] }, os.ReadFile)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestExecuteUpAndStatus(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.EmptyURL(t)
	log := zaptest.NewLogger(t)

	var out bytes.Buffer
	require.NoError(t, execute(t.Context(), log, command{name: "status"}, databaseURL, &out))
	require.Regexp(t, `(?m)^identity\s+0\s+[1-9]\d*\s+false$`, out.String())

	require.NoError(t, execute(t.Context(), log, command{name: "up"}, databaseURL, &out))

	out.Reset()
	require.NoError(t, execute(t.Context(), log, command{name: "status"}, databaseURL, &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 8, out.String())
	require.Regexp(t, `^storage: partitioned, [1-9]\d* weekly partitions, engagement_events_p\d{8} to engagement_events_p\d{8}$`, lines[7])
	require.Regexp(t, `^SCHEMA\s+VERSION\s+LATEST\s+DIRTY$`, lines[0])
	for i, schema := range []string{"identity", "recipient", "campaign", "events", "maintenance", "river"} {
		require.Regexp(t, `^`+schema+`\s+[1-9]\d*\s+\d+\s+false$`, lines[i+1])
		fields := strings.Fields(lines[i+1])
		require.Equal(t, fields[1], fields[2], "%s is fully migrated", schema)
	}
}

// devCompanies counts the seeded development company.
func devCompanies(t *testing.T, databaseURL string) int {
	t.Helper()
	var n int
	require.NoError(t, pgtest.Open(t, databaseURL).QueryRow(t.Context(),
		`SELECT count(*) FROM identity.companies WHERE id = '00000000-0000-4000-8000-00000000c0de'`).Scan(&n))
	return n
}

func TestExecuteUpSeedsOutsideProduction(t *testing.T) {
	t.Parallel()

	for _, appEnv := range []string{"", "development", "test", "staging"} {
		databaseURL := pgtest.EmptyURL(t)
		require.NoError(t, execute(t.Context(), zaptest.NewLogger(t), command{name: "up", appEnv: appEnv}, databaseURL, io.Discard))
		require.Equal(t, 1, devCompanies(t, databaseURL), "APP_ENV=%q", appEnv)
	}

	databaseURL := pgtest.EmptyURL(t)
	core, logs := observer.New(zap.InfoLevel)
	require.NoError(t, execute(t.Context(), zap.New(core), command{name: "up", appEnv: "production"}, databaseURL, io.Discard))
	require.Zero(t, devCompanies(t, databaseURL), "production gets no seed data")
	require.Equal(t, 1, logs.FilterMessage("seed data skipped: APP_ENV=production").Len())
	require.Zero(t, logs.FilterMessage("seed data applied").Len())

	// seed alone, twice: the second run changes nothing.
	require.NoError(t, execute(t.Context(), zaptest.NewLogger(t), command{name: "seed", appEnv: "staging"}, databaseURL, io.Discard))
	require.NoError(t, execute(t.Context(), zaptest.NewLogger(t), command{name: "seed"}, databaseURL, io.Discard))
	require.Equal(t, 1, devCompanies(t, databaseURL))
}

func TestExecutePlanAndDown(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.EmptyURL(t)
	log := zaptest.NewLogger(t)
	ctx := t.Context()

	var out bytes.Buffer
	require.NoError(t, execute(ctx, log, command{name: "plan"}, databaseURL, &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Regexp(t, `^SCHEMA\s+VERSION\s+FILE$`, lines[0])
	require.Regexp(t, `^identity\s+1\s+000001_[a-z0-9_]+\.up\.sql$`, lines[1])
	require.Regexp(t, `^river\s+\d+\s+\d{3}_[a-z0-9_]+\.up\.sql$`, lines[len(lines)-2])
	require.Regexp(t, `^storage\s+-\s+partitioned: weekly partitions of events\.engagement_events from \d{4}-\d{2}-\d{2} to \d{4}-\d{2}-\d{2}$`, lines[len(lines)-1])
	for _, schema := range []string{"recipient", "campaign", "events", "maintenance", "river"} {
		require.Regexp(t, `(?m)^`+schema+`\s+1\s`, out.String())
	}

	require.NoError(t, execute(ctx, log, command{name: "up"}, databaseURL, io.Discard))
	out.Reset()
	require.NoError(t, execute(ctx, log, command{name: "plan"}, databaseURL, &out))
	require.Equal(t, "nothing to apply: every schema is up to date\n", out.String())

	out.Reset()
	require.NoError(t, execute(ctx, log, command{name: "down", n: 1, schema: "campaign", appEnv: "test"}, databaseURL, &out))
	require.Regexp(t, `(?m)^campaign\s+\d+\s+\d{6}_[a-z0-9_]+\.down\.sql$`, out.String())

	out.Reset()
	require.NoError(t, execute(ctx, log, command{name: "plan"}, databaseURL, &out))
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2, out.String())
	require.Regexp(t, `^campaign\s+\d+\s+\d{6}_[a-z0-9_]+\.up\.sql$`, lines[1])
}

// TestRefusals: seed in production and down in production or staging are
// refused with one line on stderr and exit status 1, before any database is
// reached (there is none here).
func TestRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args, appEnv, want string
	}{
		{"seed", "production", "migrate: seed data is refused when APP_ENV=production\n"},
		{"down 1", "production", "migrate: down is refused when APP_ENV=production: rolling back is for development databases only\n"},
		{"down -schema recipient 2", "staging", "migrate: down is refused when APP_ENV=staging: rolling back is for development databases only\n"},
		{"up", "prod", "migrate: APP_ENV must be development, test, staging or production, not \"prod\"\n"},
	} {
		code, stderr := runMain(t, tc.args, "APP_ENV="+tc.appEnv, "DATABASE_URL=postgres://herald@127.0.0.1:1/herald?sslmode=disable")
		require.Equal(t, 1, code, tc.args)
		require.Equal(t, tc.want, stderr, tc.args)
	}

	// The same checks guard execute, whoever calls it.
	err := execute(t.Context(), zap.NewNop(), command{name: "seed", appEnv: "production"}, "postgres://herald@127.0.0.1:1/herald", io.Discard)
	require.EqualError(t, err, "seed data is refused when APP_ENV=production")
}

func TestNewLogger(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct{ env, level string }{
		{"production", ""},
		{"production", "warn"},
		{"development", "debug"},
		{"", ""},
	} {
		log, err := newLogger(tc.env, tc.level)
		require.NoError(t, err, tc)
		require.NotNil(t, log)
	}

	_, err := newLogger("", "loud")
	require.ErrorContains(t, err, "LOG_LEVEL")
}

func TestLint(t *testing.T) {
	t.Parallel()
	testdata := filepath.Join("..", "..", "lint", "testdata")
	getwd := os.Getwd

	t.Run("embedded migrations are clean", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		require.NoError(t, runLint(nil, &out, getwd))
		require.Empty(t, out.String())
	})

	t.Run("findings fail", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		err := runLint([]string{filepath.Join(testdata, "bad", "ZD004_add_column_not_null.sql"), filepath.Join(testdata, "bad", "ZD010_truncate.sql")}, &out, getwd)
		require.EqualError(t, err, "lint: 2 finding(s)")
		require.Contains(t, out.String(), "ZD004_add_column_not_null.sql:4: ZD004 error: ")
		require.Contains(t, out.String(), "ZD010_truncate.sql:4: ZD010 error: ")
		require.Contains(t, out.String(), "\n    TRUNCATE TABLE events.email_events\n    fix: ")
	})

	t.Run("clean paths pass", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		require.NoError(t, runLint([]string{filepath.Join(testdata, "good")}, &out, getwd))
		require.Empty(t, out.String())
	})

	t.Run("code roots", func(t *testing.T) {
		t.Parallel()
		contract := filepath.Join(testdata, "contract")
		var out bytes.Buffer
		err := runLint([]string{"-code-root", filepath.Join(testdata, "code", "used"), contract}, &out, getwd)
		require.EqualError(t, err, "lint: 2 finding(s)")
		require.Contains(t, out.String(), "still references the flag")

		out.Reset()
		require.NoError(t, runLint([]string{"-code-root", filepath.Join(testdata, "code", "unused"), contract}, &out, getwd))

		// Outside the repository, without -code-root, a contract step
		// cannot be checked.
		outside := func() (string, error) { return t.TempDir(), nil }
		require.ErrorContains(t, runLint([]string{contract}, &out, outside), "no code root")
	})

	t.Run("bad flags", func(t *testing.T) {
		t.Parallel()
		require.ErrorIs(t, runLint([]string{"-nope"}, io.Discard, getwd), errUsage)
		require.ErrorIs(t, runLint([]string{"-code-root"}, io.Discard, getwd), errUsage)
	})
}

func TestLintExitCodes(t *testing.T) {
	t.Parallel()
	bad := filepath.Join("..", "..", "lint", "testdata", "bad", "ZD010_truncate.sql")

	code, stderr := runMain(t, "lint "+bad)
	require.Equal(t, 1, code)
	require.Equal(t, "migrate: lint: 1 finding(s)\n", stderr)

	code, stderr = runMain(t, "lint")
	require.Equal(t, 0, code, stderr)

	code, stderr = runMain(t, "lint -nope")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "usage: migrate <command>")
}
