package jobstats_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/worker/internal/jobstats"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStats(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	for range 3 {
		_, err := ins.Insert(ctx, jobs.RecipientStatusArgs{EventID: uuid.New(), Status: "bounced"}, nil)
		require.NoError(t, err)
	}
	_, err = pool.Exec(ctx, `UPDATE river.river_job SET state = 'discarded', finalized_at = now() WHERE id = (SELECT min(id) FROM river.river_job)`)
	require.NoError(t, err)

	mux := http.NewServeMux()
	jobstats.New(pool, jobs.Schema, zaptest.NewLogger(t)).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, jobstats.Path, nil))

	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var got jobstats.Stats
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Equal(t, map[string]int64{"available": 2, "discarded": 1}, got.Queues[jobs.QueueNotifications])
	require.Equal(t, map[string]int64{"available": 2, "discarded": 1}, got.Totals)
	for name := range jobs.Queues {
		require.Contains(t, got.Queues, name)
	}
	require.Empty(t, got.Queues[jobs.QueueImport])
}

func TestStats_databaseDown(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	pool.Close()
	mux := http.NewServeMux()
	jobstats.New(pool, jobs.Schema, zaptest.NewLogger(t)).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, jobstats.Path, nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.JSONEq(t, `{"error":"job counts unavailable"}`, rec.Body.String())
}
