package backfills_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/heraldmail/herald/libs/backfill"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/worker/internal/backfills"
	"github.com/heraldmail/herald/services/worker/internal/runner"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// demo fills demo.items.doubled, and counts in hits how often it changed each row.
type demo struct{}

func (demo) Batch(ctx context.Context, tx pgx.Tx, after backfill.Cursor, limit int) (backfill.Cursor, int, bool, error) {
	from := int64(0)
	if after != "" {
		var err error
		if from, err = strconv.ParseInt(string(after), 10, 64); err != nil {
			return "", 0, false, fmt.Errorf("parse cursor: %w", err)
		}
	}
	var (
		n    int
		last *int64
	)
	if err := tx.QueryRow(ctx, `
		WITH batch AS (SELECT id FROM demo.items WHERE id > $1 ORDER BY id LIMIT $2),
		changed AS (
			UPDATE demo.items AS i SET doubled = i.value * 2, hits = i.hits + 1
			FROM batch WHERE i.id = batch.id RETURNING i.id)
		SELECT count(*), max(id) FROM changed`, from, limit).Scan(&n, &last); err != nil {
		return "", 0, false, fmt.Errorf("update batch: %w", err)
	}
	next := after
	if last != nil {
		next = backfill.Cursor(strconv.FormatInt(*last, 10))
	}
	return next, n, n < limit, nil
}

type bundle struct {
	admin  *httptest.Server
	super  *pgxpool.Pool
	worker *pgxpool.Pool
	client *runner.Client
}

// setup runs the worker's River client, as the worker's role on a migrated database, with the
// demo backfill registered, and serves the admin routes.
func setup(t *testing.T, rows int) bundle {
	t.Helper()
	dbURL := pgtest.URL(t)
	super := pgtest.Open(t, dbURL)
	_, err := super.Exec(t.Context(), `
		CREATE SCHEMA demo;
		CREATE TABLE demo.items (id bigint PRIMARY KEY, value int NOT NULL, doubled int, hits int NOT NULL DEFAULT 0);
		GRANT USAGE ON SCHEMA demo TO herald_worker;
		GRANT SELECT, UPDATE ON demo.items TO herald_worker;`)
	require.NoError(t, err)
	_, err = super.Exec(t.Context(), `INSERT INTO demo.items (id, value) SELECT g, g FROM generate_series(1, $1) AS g`, rows)
	require.NoError(t, err)

	log := zaptest.NewLogger(t)
	worker := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleWorker))
	registered := map[string]backfill.Backfill{"demo_doubled": demo{}}
	w, err := backfill.NewWorker(worker, registered, log, backfill.Options{})
	require.NoError(t, err)
	workers := river.NewWorkers()
	require.NoError(t, river.AddWorkerSafely(workers, w))
	client, err := runner.NewClient(worker, workers, log)
	require.NoError(t, err)
	require.NoError(t, client.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })

	mux := http.NewServeMux()
	backfills.NewHandler(worker, client, registered, log).Register(mux)
	admin := httptest.NewServer(mux)
	t.Cleanup(admin.Close)
	return bundle{admin: admin, super: super, worker: worker, client: client}
}

func do(t *testing.T, method, url, body string, into any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewBufferString(body))
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	if into != nil {
		require.NoError(t, json.NewDecoder(res.Body).Decode(into))
	}
	return res.StatusCode
}

func TestStartAndProgress(t *testing.T) {
	t.Parallel()
	const rows = 130
	b := setup(t, rows)

	var rep backfills.Report
	require.Equal(t, http.StatusOK, do(t, http.MethodGet, b.admin.URL+backfills.Path, "", &rep))
	require.Equal(t, []backfills.Status{{Name: "demo_doubled", Registered: true}}, rep.Backfills, "registered, not started")

	events, cancel := b.client.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	var started backfills.StartResponse
	require.Equal(t, http.StatusAccepted, do(t, http.MethodPost, b.admin.URL+backfills.Path+"/demo_doubled",
		`{"batch_size": 50, "pause": "1ms"}`, &started))
	require.False(t, started.Duplicate)

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
wait:
	for {
		select {
		case ev := <-events:
			if ev.Job.ID == started.JobID {
				break wait
			}
		case <-deadline.C:
			t.Fatal("the backfill job did not complete within 30s")
		}
	}

	var hits1 int
	require.NoError(t, b.super.QueryRow(t.Context(), `SELECT count(*) FROM demo.items WHERE hits = 1 AND doubled = value * 2`).Scan(&hits1))
	require.Equal(t, rows, hits1)

	rep = backfills.Report{}
	require.Equal(t, http.StatusOK, do(t, http.MethodGet, b.admin.URL+backfills.Path, "", &rep))
	require.Len(t, rep.Backfills, 1)
	s := rep.Backfills[0]
	require.True(t, s.Registered)
	require.NotNil(t, s.Progress)
	require.True(t, s.Progress.Done)
	require.Equal(t, int64(rows), s.Progress.RowsDone)
	require.Equal(t, int64(3), s.Progress.Batches)
	require.Equal(t, backfill.Cursor("130"), s.Progress.Cursor)
	require.NotNil(t, s.Job)
	require.Equal(t, started.JobID, s.Job.ID)
	require.Equal(t, "completed", s.Job.State)

	// Starting it again finds its job: nothing runs twice.
	var again backfills.StartResponse
	require.Equal(t, http.StatusOK, do(t, http.MethodPost, b.admin.URL+backfills.Path+"/demo_doubled", "", &again))
	require.True(t, again.Duplicate)
	require.Equal(t, started.JobID, again.JobID)
}

func TestStartRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	var body map[string]string
	require.Equal(t, http.StatusNotFound, do(t, http.MethodPost, b.admin.URL+backfills.Path+"/nope", "", &body))
	require.Contains(t, body["error"], `no backfill "nope"`)
	for _, req := range []string{`{"batch_size": -1}`, `{"batch_size": 10001}`, `{"pause": "soon"}`, `{"pause": "-1s"}`, `not json`} {
		body = nil
		require.Equal(t, http.StatusBadRequest, do(t, http.MethodPost, b.admin.URL+backfills.Path+"/demo_doubled", req, &body), req)
		require.NotEmpty(t, body["error"], req)
	}
	var n int
	require.NoError(t, b.super.QueryRow(t.Context(), `SELECT count(*) FROM river.river_job WHERE kind = 'backfill'`).Scan(&n))
	require.Zero(t, n)
}

func TestRegisteredNamesAreValid(t *testing.T) {
	t.Parallel()
	for name := range backfills.Registered(nil) {
		require.True(t, backfill.ValidName(name), name)
	}
}
