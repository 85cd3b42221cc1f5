// Package testenv gives the shared libraries' tests the PostgreSQL and Redis servers that
// `make test` starts.
package testenv

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DatabaseURL returns HERALD_TEST_DATABASE_URL or fails the test.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("HERALD_TEST_DATABASE_URL")
	if u == "" {
		t.Fatal("HERALD_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL and Redis")
	}
	return u
}

// RedisAddr returns HERALD_TEST_REDIS_ADDR or fails the test.
func RedisAddr(t testing.TB) string {
	t.Helper()
	a := os.Getenv("HERALD_TEST_REDIS_ADDR")
	if a == "" {
		t.Fatal("HERALD_TEST_REDIS_ADDR is not set: run the tests with `make test`, which starts PostgreSQL and Redis")
	}
	return a
}

// Pool returns a pool on the test server, closed when the test ends.
func Pool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(DatabaseURL(t))
	if err != nil {
		t.Fatalf("parse HERALD_TEST_DATABASE_URL: %v", err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
