package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/heraldmail/herald/services/campaign/internal/app"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// secret signs tokens in tests; it is not a real credential.
const secret = "app-test-secret-0123456789abcdefghij"

// freePort returns a port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://u@db:5432/herald", "JWT_SECRET": secret}

	cfg, err := app.LoadConfig(config.FromMap(base, nil))
	require.NoError(t, err)
	require.Equal(t, 50051, cfg.GRPCPort)
	require.Equal(t, app.DefaultAdminPort, cfg.AdminPort)
	require.Equal(t, 9051, cfg.AdminPort)

	for name, value := range map[string]string{"GRPC_PORT": "0", "ADMIN_PORT": "70000"} {
		vars := map[string]string{name: value}
		for k, v := range base {
			vars[k] = v
		}
		_, err := app.LoadConfig(config.FromMap(vars, nil))
		var cerr *config.Error
		require.True(t, errors.As(err, &cerr), "%s=%s: %v", name, value, err)
		require.Equal(t, name, cerr.Var)
	}
}

func TestRun_configError(t *testing.T) {
	t.Parallel()
	err := app.Run(context.Background(), zaptest.NewLogger(t), config.FromMap(map[string]string{"JWT_SECRET": secret}, nil))
	var cerr *config.Error
	require.True(t, errors.As(err, &cerr), "%v", err)
	require.Equal(t, "DATABASE_URL", cerr.Var)
}

func TestRun(t *testing.T) {
	t.Parallel()
	redisHost, redisPort, err := net.SplitHostPort(pgtest.RedisAddr(t))
	require.NoError(t, err)
	grpcPort, adminPort := freePort(t), freePort(t)
	env := config.FromMap(map[string]string{
		"APP_ENV":      "test",
		"LOG_LEVEL":    "warn",
		"DATABASE_URL": pgtest.URLAs(t, pgtest.URL(t), migrations.RoleCampaign),
		"REDIS_HOST":   redisHost,
		"REDIS_PORT":   redisPort,
		"JWT_SECRET":   secret,
		"GRPC_PORT":    strconv.Itoa(grpcPort),
		"ADMIN_PORT":   strconv.Itoa(adminPort),
		"DRAIN_DELAY":  "0s",
	}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, zaptest.NewLogger(t), env) }()

	httpc := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer httpc.CloseIdleConnections()
	adminURL := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	get := func(path string) (int, map[string]any) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, adminURL+path, nil)
		require.NoError(t, err)
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}
	// The listeners are bound once Run has connected; poll until the admin port answers.
	require.Eventually(t, func() bool {
		code, _ := get("/health/live")
		return code == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond)

	for _, path := range []string{"/health", "/health/ready"} {
		code, body := get(path)
		require.Equal(t, http.StatusOK, code, "%s: %v", path, body)
		require.Equal(t, "ok", body["status"])
		info, ok := body["info"].(map[string]any)
		require.True(t, ok, "%s: %v", path, body)
		for _, dep := range []string{"database", "redis"} {
			entry, ok := info[dep].(map[string]any)
			require.True(t, ok, "%s: no %s in %v", path, dep, body)
			require.Equal(t, "up", entry["status"])
		}
	}

	cc, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", campaignv1.CampaignService_ServiceDesc.ServiceName} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err, "service %q", svc)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus(), "service %q", svc)
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}
