package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/worker/internal/app"
	"github.com/heraldmail/herald/services/worker/internal/backfills"
	"github.com/heraldmail/herald/services/worker/internal/jobstats"
	"github.com/heraldmail/herald/services/worker/internal/recipienttest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const secret = "test-secret-test-secret-test-secret-0123"

func freePort(t *testing.T) int {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

func getJSON(ctx context.Context, url string, into any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = res.Body.Close() }()
	if err := json.NewDecoder(res.Body).Decode(into); err != nil {
		return res.StatusCode, fmt.Errorf("decode %s: %w", url, err)
	}
	return res.StatusCode, nil
}

type healthReport struct {
	Status  string                    `json:"status"`
	Details map[string]map[string]any `json:"details"`
}

func TestRun(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	redisHost, redisPort, err := net.SplitHostPort(pgtest.RedisAddr(t))
	require.NoError(t, err)
	fake := recipienttest.Start(t, secret, nil)
	adminPort := freePort(t)
	env := config.FromMap(map[string]string{
		"APP_ENV":             "test",
		"LOG_LEVEL":           "warn",
		"DATABASE_URL":        pgtest.URLAs(t, dbURL, migrations.RoleWorker),
		"REDIS_HOST":          redisHost,
		"REDIS_PORT":          redisPort,
		"JWT_SECRET":          secret,
		"ADMIN_PORT":          strconv.Itoa(adminPort),
		"RECIPIENT_GRPC_ADDR": fake.Addr,
		"DRAIN_DELAY":         "0s",
		"SHUTDOWN_TIMEOUT":    "10s",
	}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, zaptest.NewLogger(t), env) }()

	admin := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	require.Eventually(t, func() bool {
		var rep healthReport
		code, err := getJSON(ctx, admin+"/health/ready", &rep)
		return err == nil && code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)

	var rep healthReport
	code, err := getJSON(ctx, admin+"/health", &rep)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", rep.Status)
	for _, dep := range []string{"database", "redis", "river"} {
		require.Equal(t, "up", rep.Details[dep]["status"], dep)
	}
	for _, k := range []string{"activeJobs", "waitingJobs", "failedJobs"} {
		require.Contains(t, rep.Details["river"], k)
	}

	// A job enqueued by another process reaches the recipient service through this one.
	pool, err := pgxpool.New(ctx, pgtest.URLAs(t, dbURL, migrations.RoleEvents))
	require.NoError(t, err)
	defer pool.Close()
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	args := jobs.RecipientStatusArgs{
		CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New(), RecipientID: uuid.New(),
		EventID: uuid.New(), Status: "unsubscribed", Reason: "unsubscribe",
	}
	_, err = ins.Insert(ctx, args, nil)
	require.NoError(t, err)
	select {
	case c := <-fake.Calls:
		require.Equal(t, args.CompanyID, c.Principal.CompanyID)
		require.Equal(t, args.RecipientID.String(), c.Request.GetRecipientId())
	case <-time.After(20 * time.Second):
		t.Fatal("the job never called the recipient service")
	}
	require.Eventually(t, func() bool {
		var stats jobstats.Stats
		code, err := getJSON(ctx, admin+jobstats.Path, &stats)
		return err == nil && code == http.StatusOK && stats.Queues[jobs.QueueNotifications]["completed"] == 1
	}, 20*time.Second, 20*time.Millisecond)

	// The backfills' progress is served on the admin listener, read as the worker's role.
	var backfillReport backfills.Report
	code, err = getJSON(ctx, admin+backfills.Path, &backfillReport)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.NotNil(t, backfillReport.Backfills)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestRun_configError(t *testing.T) {
	t.Parallel()
	err := app.Run(context.Background(), zaptest.NewLogger(t), config.FromMap(map[string]string{
		"DATABASE_URL": "postgres://herald@127.0.0.1:1/x",
		"JWT_SECRET":   "short",
	}, nil))
	var cerr *config.Error
	require.True(t, errors.As(err, &cerr), "%v", err)
	require.Equal(t, "JWT_SECRET", cerr.Var)
}

func TestRun_badSchedules(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"JOB_RESCUE_AFTER":      {"JOB_RESCUE_AFTER": "30s"},
		"EVENT_ROLLUP_INTERVAL": {"EVENT_ROLLUP_INTERVAL": "500ms"},
	} {
		env["DATABASE_URL"] = "postgres://herald@127.0.0.1:1/x"
		env["JWT_SECRET"] = "test-secret-test-secret-test-secret-0123"
		err := app.Run(context.Background(), zaptest.NewLogger(t), config.FromMap(env, nil))
		var cerr *config.Error
		require.True(t, errors.As(err, &cerr), "%s: %v", name, err)
		require.Equal(t, name, cerr.Var)
	}
}
