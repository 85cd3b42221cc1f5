package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func up(context.Context) (map[string]any, error) { return nil, nil }

func down(context.Context) (map[string]any, error) { return nil, errors.New("connection refused") }

func hang(ctx context.Context) (map[string]any, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func get(t *testing.T, h http.Handler, path string) (int, health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil))
	var rep health.Report
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &rep), rec.Body.String())
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	return rec.Code, rep
}

func mux(h *health.Handler) *http.ServeMux {
	m := http.NewServeMux()
	h.Register(m)
	return m
}

func TestAllUp(t *testing.T) {
	t.Parallel()
	h := health.New(
		[]health.Check{{Name: "database", Timeout: time.Second, Run: up}, {Name: "redis", Timeout: time.Second, Run: up}},
		[]health.Check{{Name: "database", Timeout: time.Second, Run: up}},
	)
	code, rep := get(t, mux(h), "/health")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", rep.Status)
	require.Equal(t, "up", rep.Info["database"]["status"])
	require.Equal(t, "up", rep.Details["redis"]["status"])
	require.Contains(t, rep.Details["redis"], "responseTime")
	require.Empty(t, rep.Error)
}

func TestDownAndTimeout(t *testing.T) {
	t.Parallel()
	h := health.New([]health.Check{
		{Name: "database", Timeout: time.Second, Run: down},
		{Name: "redis", Timeout: 50 * time.Millisecond, Run: hang},
		{Name: "river", Timeout: time.Second, Run: up},
	}, nil)
	start := time.Now()
	code, rep := get(t, mux(h), "/health")
	require.Less(t, time.Since(start), time.Second, "checks run concurrently within their own limits")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "error", rep.Status)
	require.Equal(t, "down", rep.Error["database"]["status"])
	require.Equal(t, "down", rep.Error["redis"]["status"])
	require.Contains(t, rep.Error["redis"]["message"], "timed out")
	require.Equal(t, "up", rep.Info["river"]["status"])
	require.Len(t, rep.Details, 3)
}

func TestLiveNeverTouchesDependencies(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	counting := func(context.Context) (map[string]any, error) { calls.Add(1); return nil, errors.New("down") }
	h := health.New([]health.Check{{Name: "database", Timeout: time.Second, Run: counting}},
		[]health.Check{{Name: "database", Timeout: time.Second, Run: counting}})
	code, rep := get(t, mux(h), "/health/live")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", rep.Status)
	require.Zero(t, calls.Load())
}

func TestReadyTurns503WhenDraining(t *testing.T) {
	t.Parallel()
	h := health.New(nil, []health.Check{{Name: "database", Timeout: time.Second, Run: up}})
	code, _ := get(t, mux(h), "/health/ready")
	require.Equal(t, http.StatusOK, code)
	h.SetDraining()
	code, rep := get(t, mux(h), "/health/ready")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "down", rep.Error["shutdown"]["status"])
	require.Equal(t, "up", rep.Info["database"]["status"])
	code, _ = get(t, mux(h), "/health/live")
	require.Equal(t, http.StatusOK, code, "a draining process is still alive")
}

func TestDetailsAreReported(t *testing.T) {
	t.Parallel()
	h := health.New([]health.Check{{Name: "river", Timeout: time.Second, Run: func(context.Context) (map[string]any, error) {
		return map[string]any{"activeJobs": 1, "waitingJobs": 2, "failedJobs": 100}, errors.New("100 failed jobs")
	}}}, nil)
	code, rep := get(t, mux(h), "/health")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.EqualValues(t, 100, rep.Error["river"]["failedJobs"])
	require.EqualValues(t, 2, rep.Error["river"]["waitingJobs"])
}

func TestRealPostgresAndRedis(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t, 2)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	full, ready := health.Standard(pool, rdb)
	h := health.New(full, ready)
	for _, path := range []string{"/health", "/health/ready"} {
		code, rep := get(t, mux(h), path)
		require.Equal(t, http.StatusOK, code, path)
		require.Equal(t, "up", rep.Info["database"]["status"])
		require.Equal(t, "up", rep.Info["redis"]["status"])
	}

	// A Redis that is not there is reported down within the time limit, with no driver text.
	gone := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = gone.Close() })
	_, ready = health.Standard(pool, gone)
	code, rep := get(t, mux(health.New(nil, ready)), "/health/ready")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "down", rep.Error["redis"]["status"])
	require.NotContains(t, rep.Error["redis"]["message"], "127.0.0.1")
}

func TestRiverCheckCountsFailedJobs(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t, 2)
	ctx := context.Background()
	schema := "health_river_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	_, err := pool.Exec(ctx, `CREATE SCHEMA `+schema+`; CREATE TABLE `+schema+`.river_job (id bigserial, state text NOT NULL)`)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`) })
	_, err = pool.Exec(ctx, `INSERT INTO `+schema+`.river_job (state) SELECT 'discarded' FROM generate_series(1, 99);
		INSERT INTO `+schema+`.river_job (state) VALUES ('running'), ('available'), ('retryable')`)
	require.NoError(t, err)

	check := health.River(pool, schema)
	d, err := check(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, d["activeJobs"])
	require.EqualValues(t, 2, d["waitingJobs"])
	require.EqualValues(t, 99, d["failedJobs"])

	_, err = pool.Exec(ctx, `INSERT INTO `+schema+`.river_job (state) VALUES ('discarded')`)
	require.NoError(t, err)
	d, err = check(ctx)
	require.Error(t, err, "100 failed jobs is down")
	require.EqualValues(t, 100, d["failedJobs"])
}
