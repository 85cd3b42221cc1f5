// Package processtest checks a whole service in process: it starts the service's run function
// on free ports, waits for its admin listener, checks the health endpoints and the gRPC health
// service, then cancels and requires a clean shutdown.
package processtest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/health"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// RunFunc is a service's app.Run.
type RunFunc func(ctx context.Context, boot *zap.Logger, env config.Source) error

// Options describe the service under test.
type Options struct {
	Run RunFunc
	// Env is the service's environment (database, Redis, secret); ports are added.
	Env map[string]string
	// GRPCServices are the gRPC services that must report SERVING besides the server ("");
	// nil for a process without a gRPC server.
	GRPCServices []string
	// Deps must be "up" in /health; ReadyDeps in /health/ready (database and redis when nil).
	Deps      []string
	ReadyDeps []string
}

// Ports are where the service under test listens.
type Ports struct {
	Admin int
	GRPC  int
}

// FreePort returns a port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// Check runs the whole check and returns the last /health report.
func Check(t *testing.T, o Options) health.Report {
	t.Helper()
	ports := Ports{Admin: FreePort(t), GRPC: FreePort(t)}
	env := map[string]string{"APP_ENV": "test", "LOG_LEVEL": "warn", "DRAIN_DELAY": "0s"}
	for k, v := range o.Env {
		env[k] = v
	}
	env["ADMIN_PORT"] = strconv.Itoa(ports.Admin)
	if o.GRPCServices != nil {
		env["GRPC_PORT"] = strconv.Itoa(ports.GRPC)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, zaptest.NewLogger(t), config.FromMap(env, nil)) }()

	httpc := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer httpc.CloseIdleConnections()
	adminURL := "http://127.0.0.1:" + strconv.Itoa(ports.Admin)
	get := func(path string) (int, health.Report) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+path, nil)
		require.NoError(t, err)
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, health.Report{}
		}
		defer resp.Body.Close()
		var rep health.Report
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
		return resp.StatusCode, rep
	}
	// The listeners are bound once Run has connected; poll until the admin port answers.
	require.Eventually(t, func() bool {
		code, _ := get("/health/live")
		return code == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond)

	deps, readyDeps := o.Deps, o.ReadyDeps
	if deps == nil {
		deps = []string{"database", "redis"}
	}
	if readyDeps == nil {
		readyDeps = []string{"database", "redis"}
	}
	var full health.Report
	for path, want := range map[string][]string{"/health": deps, "/health/ready": readyDeps} {
		code, rep := get(path)
		require.Equal(t, http.StatusOK, code, "%s: %+v", path, rep)
		require.Equal(t, "ok", rep.Status)
		for _, dep := range want {
			require.Equal(t, "up", rep.Info[dep]["status"], "%s: %s in %+v", path, dep, rep)
		}
		if path == "/health" {
			full = rep
		}
	}

	if o.GRPCServices != nil {
		cc, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(ports.GRPC), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer cc.Close()
		hc := healthpb.NewHealthClient(cc)
		for _, svc := range append([]string{""}, o.GRPCServices...) {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			require.NoError(t, err, "service %q", svc)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus(), "service %q", svc)
		}
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	return full
}
