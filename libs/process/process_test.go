package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/heraldmail/herald/libs/process"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/heraldmail/herald/libs/rpc"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type svcConfig struct {
	process.Common
	GRPCPort int `env:"GRPC_PORT" default:"1"`
}

func TestStartServeAndStop(t *testing.T) {
	t.Parallel()
	host, port, err := net.SplitHostPort(testenv.RedisAddr(t))
	require.NoError(t, err)
	adminPort, grpcPort := freePort(t), freePort(t)
	var cfg svcConfig
	require.NoError(t, config.Load(&cfg, config.FromMap(map[string]string{
		"DATABASE_URL":     testenv.DatabaseURL(t),
		"REDIS_HOST":       host,
		"REDIS_PORT":       port,
		"JWT_SECRET":       "process-test-secret-0123456789abcdef0123",
		"ADMIN_PORT":       fmt.Sprint(adminPort),
		"GRPC_PORT":        fmt.Sprint(grpcPort),
		"DRAIN_DELAY":      "100ms",
		"SHUTDOWN_TIMEOUT": "5s",
	}, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := process.Start(ctx, process.Options{
		Name: "process-test",
		ExtraChecks: func(*pgxpool.Pool) []health.Check {
			return []health.Check{{Name: "extra", Timeout: time.Second, Run: func(context.Context) (map[string]any, error) { return nil, nil }}}
		},
	}, cfg, &cfg.Common)
	require.NoError(t, err)
	p.Log = zaptest.NewLogger(t)
	defer p.Close()

	srv, hs := p.GRPCServer()
	hs.SetServing("test.Service")
	comps, err := p.ServeGRPC(ctx, cfg.GRPCPort, srv, hs)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, comps...) }()

	base := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	var rep health.Report
	require.Eventually(t, func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&rep) == nil
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "up", rep.Info["database"]["status"])
	require.Equal(t, "up", rep.Info["redis"]["status"])
	require.Equal(t, "up", rep.Info["extra"]["status"])

	cc, err := rpc.Dial(fmt.Sprintf("127.0.0.1:%d", grpcPort))
	require.NoError(t, err)
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "test.Service"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())

	cancel()
	require.NoError(t, <-done)
}

func TestPortConflictFailsAtStart(t *testing.T) {
	t.Parallel()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", ":0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = process.Listen(context.Background(), ln.Addr().(*net.TCPAddr).Port)
	require.Error(t, err)
}
