package pgtest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/migrations"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// currentDatabase returns the name of the database dbURL connects to.
func currentDatabase(t *testing.T, dbURL string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Close(context.Background())) }()
	var name string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name))
	return name
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), os.Getenv(EnvDatabaseURL))
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Close(context.Background())) }()
	var exists bool
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	return exists
}

func TestTestsGetDifferentDatabases(t *testing.T) {
	t.Parallel()

	var (
		mu    sync.Mutex
		names = map[string]string{}
	)
	t.Run("group", func(t *testing.T) {
		for _, test := range []string{"first", "second"} {
			t.Run(test, func(t *testing.T) {
				t.Parallel()
				pool := Pool(t)

				// Each database is migrated and holds only this test's rows.
				var count int
				require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM recipient.recipients").Scan(&count))
				require.Zero(t, count)
				_, err := pool.Exec(t.Context(), `
					INSERT INTO recipient.recipients (company_id, workspace_id, domain_id, email)
					VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'same@example.com')`)
				require.NoError(t, err)

				var name string
				require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&name))
				mu.Lock()
				names[test] = name
				mu.Unlock()
			})
		}
	})

	require.Len(t, names, 2)
	require.NotEqual(t, names["first"], names["second"])
	for _, name := range names {
		require.True(t, strings.HasPrefix(name, clonePrefix), name)
		require.False(t, databaseExists(t, name), "%s is dropped when its test ends", name)
	}
}

func TestURLIsMigrated(t *testing.T) {
	t.Parallel()
	dbURL := URL(t)

	statuses, err := migrations.Status(t.Context(), dbURL)
	require.NoError(t, err)
	for _, s := range statuses {
		require.Equal(t, s.Latest, s.Version, s.Schema)
		require.False(t, s.Dirty, s.Schema)
	}
}

func TestTemplateRefusesConnections(t *testing.T) {
	t.Parallel()
	URL(t) // builds the template

	fingerprint, err := migrations.Fingerprint()
	require.NoError(t, err)
	name := templatePrefix + fingerprint[:12]
	require.Equal(t, template.name, name)

	tplURL, err := withDatabase(os.Getenv(EnvDatabaseURL), name)
	require.NoError(t, err)
	_, err = pgx.Connect(t.Context(), tplURL)
	require.ErrorContains(t, err, "not currently accepting connections")
}

func TestEmptyURL(t *testing.T) {
	t.Parallel()
	dbURL := EmptyURL(t)
	require.True(t, strings.HasPrefix(currentDatabase(t, dbURL), clonePrefix))

	statuses, err := migrations.Status(t.Context(), dbURL)
	require.NoError(t, err)
	for _, s := range statuses {
		require.Zero(t, s.Version, s.Schema)
	}
}

// fatalTB records the message of Fatal and ends the goroutine like
// testing.T does.
type fatalTB struct {
	testing.TB
	message string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) {
	f.message = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestRequireEnv(t *testing.T) {
	t.Parallel()

	getenv := func(vars map[string]string) func(string) string {
		return func(name string) string { return vars[name] }
	}
	call := func(vars map[string]string, name string) (value string, fatal string) {
		tb := &fatalTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			value = requireEnv(tb, getenv(vars), name)
		}()
		<-done
		return value, tb.message
	}

	value, fatal := call(map[string]string{EnvDatabaseURL: "postgres://x"}, EnvDatabaseURL)
	require.Equal(t, "postgres://x", value)
	require.Empty(t, fatal)

	for _, name := range []string{EnvDatabaseURL, EnvRedisAddr} {
		_, fatal = call(map[string]string{}, name)
		require.Equal(t, name+" is not set: run the tests with `make test`, which starts PostgreSQL and Redis", fatal)
	}
}

func TestKeyPrefix(t *testing.T) {
	t.Parallel()

	first, second := KeyPrefix(t), KeyPrefix(t)
	require.NotEqual(t, first, second)
	require.True(t, strings.HasPrefix(first, "TestKeyPrefix:"), first)
	require.True(t, strings.HasSuffix(first, ":"), first)

	t.Run("odd name: with spaces*and{braces}", func(t *testing.T) {
		t.Parallel()
		prefix := KeyPrefix(t)
		require.Regexp(t, `^TestKeyPrefix/odd_name__with_spaces_and_braces_:[0-9a-f]{16}:$`, prefix)
	})
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()

	got, err := withDatabase("postgres://herald:pw@127.0.0.1:5432/postgres?sslmode=disable", "herald_test_1")
	require.NoError(t, err)
	require.Equal(t, "postgres://herald:pw@127.0.0.1:5432/herald_test_1?sslmode=disable", got)

	_, err = withDatabase("host=127.0.0.1 password=s3cr3t", "x")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cr3t")

	_, err = withDatabase("postgres://herald:s3cr3t@127.0.0.1:bad/x", "x")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cr3t")
}

func TestPoolAs(t *testing.T) {
	t.Parallel()
	pool := PoolAs(t, migrations.RoleRecipient)

	var user, database string
	var super bool
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_user, current_database(), current_setting('is_superuser') = 'on'").
		Scan(&user, &database, &super))
	require.Equal(t, migrations.RoleRecipient, user)
	require.True(t, strings.HasPrefix(database, clonePrefix), database)
	require.False(t, super)

	// Migrated: the role's own table is there, and row-level security hides
	// every row when no tenant is set.
	var count int
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM recipient.recipients").Scan(&count))
	require.Zero(t, count)
}

func TestURLAs(t *testing.T) {
	t.Parallel()
	dbURL := URL(t)
	roleURL := URLAs(t, dbURL, migrations.RoleWorker)
	require.Equal(t, currentDatabase(t, dbURL), currentDatabase(t, roleURL))

	pool := Open(t, roleURL)
	var user string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_user").Scan(&user))
	require.Equal(t, migrations.RoleWorker, user)
}
