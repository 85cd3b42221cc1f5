package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/postgres"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

func TestConnectAppliesLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := postgres.Connect(ctx, config.Database{
		URL: testenv.DatabaseURL(t), PoolSize: 3, StatementTimeout: 1500 * time.Millisecond, ConnectTimeout: 2 * time.Second,
	}, "herald-test", zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.Equal(t, int32(3), pool.Config().MaxConns)

	var timeout, app string
	require.NoError(t, pool.QueryRow(ctx, `SELECT current_setting('statement_timeout'), current_setting('application_name')`).Scan(&timeout, &app))
	require.Equal(t, "1500ms", timeout)
	require.Equal(t, "herald-test", app)

	_, err = pool.Exec(ctx, `SELECT pg_sleep(3)`)
	require.Error(t, err, "the statement timeout cancels a long query")

	reg := metrics.NewRegistry()
	require.NoError(t, metrics.RegisterPool(reg, pool))
	n, err := testutil.GatherAndCount(reg, "herald_db_pool_max_connections", "herald_db_pool_acquires_total")
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

func TestConnectToleratesAnAbsentDatabase(t *testing.T) {
	t.Parallel()
	pool, err := postgres.Connect(context.Background(), config.Database{
		URL: "postgres://nobody@127.0.0.1:1/none?sslmode=disable", PoolSize: 1, StatementTimeout: time.Second, ConnectTimeout: 200 * time.Millisecond,
	}, "herald-test", zaptest.NewLogger(t))
	require.NoError(t, err, "the process starts and reports not ready instead")
	pool.Close()
}

func TestConnectRejectsPlaintextWhenTLSIsRequired(t *testing.T) {
	t.Parallel()
	_, err := postgres.Connect(context.Background(), config.Database{
		URL: "postgres://u:secret-sentinel@db:5432/x?sslmode=disable", PoolSize: 1, TLS: true, ConnectTimeout: time.Second,
	}, "herald-test", zaptest.NewLogger(t))
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.NotContains(t, err.Error(), "secret-sentinel")
}

func TestTLSWithoutSSLModeMeansVerifyFull(t *testing.T) {
	t.Parallel()
	// The server does not speak TLS, so a verified connection fails; the point is that the
	// pool refuses to fall back to plain text.
	pool, err := postgres.Connect(context.Background(), config.Database{
		URL: strings.SplitN(testenv.DatabaseURL(t), "?", 2)[0], PoolSize: 1, TLS: true, StatementTimeout: time.Second, ConnectTimeout: time.Second,
	}, "herald-test", zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NotNil(t, pool.Config().ConnConfig.TLSConfig)
	require.Empty(t, pool.Config().ConnConfig.Fallbacks, "no plain-text fallback")
}
