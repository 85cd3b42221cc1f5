package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/heraldmail/herald/services/events-ingest/internal/app"
	"github.com/heraldmail/herald/services/events-ingest/internal/grpcapi"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"
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

type healthReport struct {
	Status  string                    `json:"status"`
	Details map[string]map[string]any `json:"details"`
}

func getHealth(ctx context.Context, url string) (int, healthReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, healthReport{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, healthReport{}, err
	}
	defer func() { _ = res.Body.Close() }()
	var rep healthReport
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil {
		return res.StatusCode, rep, fmt.Errorf("decode health: %w", err)
	}
	return res.StatusCode, rep, nil
}

func TestRun(t *testing.T) {
	t.Parallel()
	redisHost, redisPort, err := net.SplitHostPort(pgtest.RedisAddr(t))
	require.NoError(t, err)
	grpcPort, adminPort := freePort(t), freePort(t)
	env := config.FromMap(map[string]string{
		"APP_ENV":          "test",
		"LOG_LEVEL":        "warn",
		"DATABASE_URL":     pgtest.URLAs(t, pgtest.URL(t), migrations.RoleEvents),
		"REDIS_HOST":       redisHost,
		"REDIS_PORT":       redisPort,
		"JWT_SECRET":       secret,
		"GRPC_PORT":        strconv.Itoa(grpcPort),
		"ADMIN_PORT":       strconv.Itoa(adminPort),
		"DRAIN_DELAY":      "0s",
		"SHUTDOWN_TIMEOUT": "5s",
	}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, zaptest.NewLogger(t), env) }()

	admin := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	require.Eventually(t, func() bool {
		code, _, err := getHealth(ctx, admin+"/health/ready")
		return err == nil && code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)

	code, rep, err := getHealth(ctx, admin+"/health")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", rep.Status)
	for _, dep := range []string{"database", "redis"} {
		require.Equal(t, "up", rep.Details[dep]["status"], dep)
	}
	code, _, err = getHealth(ctx, admin+"/health/live")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)

	// The write buffer's metrics are on the admin listener.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	require.NoError(t, err)
	mres, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(mres.Body)
	require.NoError(t, mres.Body.Close())
	require.NoError(t, err)
	for _, name := range []string{"herald_ingest_buffer_events", "herald_ingest_rejected_events_total", "herald_ingest_batch_events", "herald_ingest_flush_seconds"} {
		require.Contains(t, string(body), name)
	}

	cc, err := rpc.Dial("127.0.0.1:" + strconv.Itoa(grpcPort))
	require.NoError(t, err)
	defer func() { _ = cc.Close() }()
	hc := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", grpcapi.ServiceName} {
		res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, res.GetStatus(), svc)
	}

	tok, err := tenancy.NewSigner(secret).Sign("user-1", uuid.New(), tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	res, err := eventsv1.NewEventsIngestServiceClient(cc).IngestEvents(tenancy.WithToken(ctx, tok), &eventsv1.IngestEventsRequest{
		WorkspaceId: uuid.NewString(),
		DomainId:    uuid.NewString(),
		Events: []*eventsv1.Event{{
			Id: uuid.NewString(), Type: eventsv1.EventType_EVENT_TYPE_OPEN, OccurTime: timestamppb.Now(),
		}},
	})
	require.NoError(t, err)
	require.Equal(t, int32(1), res.GetAccepted())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestRun_configError(t *testing.T) {
	t.Parallel()
	err := app.Run(context.Background(), zaptest.NewLogger(t), config.FromMap(map[string]string{"JWT_SECRET": secret}, nil))
	var cerr *config.Error
	require.True(t, errors.As(err, &cerr), "%v", err)
	require.Equal(t, "DATABASE_URL", cerr.Var)
}

func TestRun_ingestConfigErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		env map[string]string
		bad string
	}{
		"batch larger than buffer": {map[string]string{"INGEST_BATCH_SIZE": "5000", "INGEST_BUFFER_EVENTS": "2000"}, "INGEST_BATCH_SIZE"},
		"buffer below a message":   {map[string]string{"INGEST_BUFFER_EVENTS": "999"}, "INGEST_BUFFER_EVENTS"},
		"flush interval too long":  {map[string]string{"INGEST_FLUSH_INTERVAL": "2m"}, "INGEST_FLUSH_INTERVAL"},
		"retry after below 1s":     {map[string]string{"INGEST_RETRY_AFTER": "200ms"}, "INGEST_RETRY_AFTER"},
		"no writer":                {map[string]string{"INGEST_WRITERS": "0"}, "INGEST_WRITERS"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"JWT_SECRET": secret, "DATABASE_URL": "postgres://u@127.0.0.1:1/db"}
			maps.Copy(env, tc.env)
			err := app.Run(context.Background(), zaptest.NewLogger(t), config.FromMap(env, nil))
			var cerr *config.Error
			require.True(t, errors.As(err, &cerr), "%v", err)
			require.Equal(t, tc.bad, cerr.Var)
		})
	}
}
