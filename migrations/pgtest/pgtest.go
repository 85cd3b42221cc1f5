// Package pgtest gives every test a PostgreSQL database of its own, cloned
// from a template database that is migrated once, and the Redis address and
// key prefix that keep tests apart on a shared Redis.
//
// The server is named by HERALD_TEST_DATABASE_URL (a superuser URL, e.g.
// postgres://herald@127.0.0.1:55432/postgres?sslmode=disable) and Redis by
// HERALD_TEST_REDIS_ADDR; `make test` starts both and exports them. A test
// that needs them and finds them unset fails: it is never skipped, so a
// missing database cannot pass for a green run.
//
// The template is named after migrations.Fingerprint, so a change to any
// migration builds a new one, and it is built once per server by whichever
// test process gets there first: the others wait on an advisory lock and
// reuse it. Cloning a migrated template takes milliseconds, where migrating
// each test's database would take a second.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/migrations"
)

const (
	// EnvDatabaseURL names the variable holding the test server's superuser URL.
	EnvDatabaseURL = "HERALD_TEST_DATABASE_URL"
	// EnvRedisAddr names the variable holding the test Redis address.
	EnvRedisAddr = "HERALD_TEST_REDIS_ADDR"

	templatePrefix = "herald_tpl_"
	clonePrefix    = "herald_test_"
	// templateLock names the advisory lock that serializes template builds
	// across the test binaries that run at once.
	templateLock = "herald.pgtest.template"
	// buildTimeout bounds building the template, waiting for the lock
	// included.
	buildTimeout = 3 * time.Minute
	// adminTimeout bounds creating or dropping one test database.
	adminTimeout = time.Minute
)

// template is built at most once per test process: every test of the process
// clones the same one, and a failure is reported to every test that asks.
var template struct {
	once sync.Once
	name string
	err  error
}

// URL returns the URL of a new database for this test alone, holding every
// migration (the owning schemas and River's). The database is dropped when
// the test and its subtests finish.
func URL(t testing.TB) string {
	t.Helper()
	server := requireEnv(t, os.Getenv, EnvDatabaseURL)

	template.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		template.name, template.err = ensureTemplate(ctx, server)
	})
	if template.err != nil {
		t.Fatalf("pgtest: template database: %v", template.err)
	}
	return newDatabase(t, server, template.name)
}

// EmptyURL returns the URL of a new, empty database for this test alone (no
// schema, no migration), for tests of the migrations themselves. The database
// is dropped when the test and its subtests finish.
func EmptyURL(t testing.TB) string {
	t.Helper()
	server := requireEnv(t, os.Getenv, EnvDatabaseURL)
	// template0 is never connected to, so the clone cannot fail for a session
	// left on the default template1.
	return newDatabase(t, server, "template0")
}

// Pool returns a pool on a new database of URL(t), closed when the test
// finishes.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Open(t, URL(t))
}

// URLAs returns databaseURL (a URL from URL or EmptyURL) with its user
// replaced by role and no password: the same database, as role.
func URLAs(t testing.TB, databaseURL, role string) string {
	t.Helper()
	roleURL, err := migrations.RoleURL(databaseURL, role)
	if err != nil {
		t.Fatalf("pgtest: url as %s: %v", role, err)
	}
	return roleURL
}

// PoolAs returns a pool on a new database of URL(t), connected as role (one
// of migrations.ServiceRoles), closed when the test finishes.
func PoolAs(t testing.TB, role string) *pgxpool.Pool {
	t.Helper()
	return Open(t, URLAs(t, URL(t), role))
}

// Open returns a pool on databaseURL, closed when the test finishes: with
// URL and URLAs, a superuser pool and a role's pool on one database.
func Open(t testing.TB, databaseURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), databaseURL)
	if err != nil {
		t.Fatalf("pgtest: new pool: %v", redactURLError(err))
	}
	// Cleanups run last-in first-out: the pool closes before URL drops the
	// database.
	t.Cleanup(pool.Close)
	return pool
}

// RedisAddr returns the address (host:port) of the test Redis.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return requireEnv(t, os.Getenv, EnvRedisAddr)
}

// KeyPrefix returns a prefix for the Redis keys of this test, unique to it:
// the test name made safe for a key, then random hex, e.g.
// "TestFlags_global:1f3a9c0d5e7b2a64:".
func KeyPrefix(t testing.TB) string {
	t.Helper()
	return sanitize(t.Name()) + ":" + randomHex(8) + ":"
}

// requireEnv returns the value of the variable name, failing the test when
// it is unset or empty.
func requireEnv(t testing.TB, getenv func(string) string, name string) string {
	t.Helper()
	v := getenv(name)
	if v == "" {
		t.Fatal(name + " is not set: run the tests with `make test`, which starts PostgreSQL and Redis")
	}
	return v
}

// newDatabase creates a database cloned from template and drops it in
// t.Cleanup.
func newDatabase(t testing.TB, server, template string) string {
	t.Helper()
	name := clonePrefix + randomHex(8)
	dbURL, err := withDatabase(server, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	if err := adminExec(ctx, server, stmt); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		// FORCE ends the sessions a test left open (an unclosed pool).
		if err := adminExec(ctx, server, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dbURL
}

// ensureTemplate returns the name of the migrated template database for this
// build's migrations, building it first when the server has none.
//
// A template is built under a temporary name and renamed when complete, so a
// half-built one is never cloned. It does not accept connections, since
// CREATE DATABASE ... TEMPLATE fails while anyone is connected to it.
func ensureTemplate(ctx context.Context, server string) (_ string, err error) {
	fingerprint, err := migrations.Fingerprint()
	if err != nil {
		return "", err
	}
	name := templatePrefix + fingerprint[:12]

	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	// Closing the session releases the advisory lock too.
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", templateLock); err != nil {
		return "", fmt.Errorf("acquire template lock: %w", err)
	}

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up template %s: %w", name, err)
	}
	if exists {
		return name, nil
	}

	// A build left by a process that died midway: nobody else is building
	// while this session holds the lock.
	buildPrefix := name + "_build_"
	if err := dropDatabases(ctx, conn, buildPrefix); err != nil {
		return "", err
	}

	build := buildPrefix + randomHex(4)
	buildIdent := pgx.Identifier{build}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+buildIdent); err != nil {
		return "", fmt.Errorf("create database %s: %w", build, err)
	}
	defer func() {
		if err != nil {
			_ = dropDatabase(context.WithoutCancel(ctx), conn, build)
		}
	}()

	buildURL, err := withDatabase(server, build)
	if err != nil {
		return "", err
	}
	if err := migrations.Up(ctx, buildURL, zap.NewNop()); err != nil {
		return "", fmt.Errorf("migrate %s: %w", build, err)
	}

	if _, err := conn.Exec(ctx, "ALTER DATABASE "+buildIdent+" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"); err != nil {
		return "", fmt.Errorf("finish template %s: %w", name, err)
	}
	// Up has closed its sessions, but a backend can outlive its client for a
	// moment, and RENAME refuses while one does.
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", build); err != nil {
		return "", fmt.Errorf("finish template %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+buildIdent+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("finish template %s: %w", name, err)
	}
	return name, nil
}

// dropDatabases drops every database whose name starts with prefix.
func dropDatabases(ctx context.Context, conn *pgx.Conn, prefix string) error {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)
	if err != nil {
		return fmt.Errorf("list databases %s*: %w", prefix, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list databases %s*: %w", prefix, err)
	}
	for _, name := range names {
		if err := dropDatabase(ctx, conn, name); err != nil {
			return err
		}
	}
	return nil
}

// dropDatabase drops name, even when it is marked as a template or has
// sessions.
func dropDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	ident := pgx.Identifier{name}.Sanitize()
	for _, stmt := range []string{
		"ALTER DATABASE " + ident + " WITH IS_TEMPLATE false",
		"DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
	}
	return nil
}

// adminExec runs one statement on a session of its own to the server's
// maintenance database, closed right after: a session kept for the whole
// process would outlive the last test.
func adminExec(ctx context.Context, server, stmt string) error {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return err
	}
	return nil
}

// withDatabase returns server with its database replaced by name.
func withDatabase(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		// The error would repeat the URL, password included.
		return "", fmt.Errorf("%s is not a postgres:// URL", EnvDatabaseURL)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("%s is not a postgres:// URL", EnvDatabaseURL)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// redactURLError drops the text of a *url.Error, which repeats the URL and
// so the password in it.
func redactURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}

// sanitize keeps the letters, digits, '_', '-' and '/' of a test name, turns
// anything else into '_' and caps the length, so that the name reads well
// inside a Redis key.
func sanitize(name string) string {
	const maxLen = 64
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= maxLen {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '/':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the process instead).
	return hex.EncodeToString(b)
}
