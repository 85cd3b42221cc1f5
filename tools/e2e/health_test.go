package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthReport is the body of every health endpoint.
type healthReport struct {
	Status  string                    `json:"status"`
	Info    map[string]map[string]any `json:"info"`
	Error   map[string]map[string]any `json:"error"`
	Details map[string]map[string]any `json:"details"`
}

// getHealth fetches a health endpoint and decodes its report.
func getHealth(t *testing.T, client *http.Client, url string) (int, healthReport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := get(ctx, client, url)
	require.NoError(t, err)
	var rep healthReport
	require.NoError(t, json.Unmarshal(body, &rep), "health body of %s: %s", url, body)
	return code, rep
}

// newHTTPClient returns a client whose answers are recorded for the hygiene check.
func newHTTPClient(t *testing.T) *http.Client {
	t.Helper()
	c := newRecordingClient(30 * time.Second)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestGatewayHealthShowsDependenciesUp(t *testing.T) {
	t.Parallel()
	s := shared(t)
	client := newHTTPClient(t)

	code, rep := getHealth(t, client, s.gateway+"/health")
	require.Equal(t, http.StatusOK, code, "%+v", rep)
	require.Equal(t, "ok", rep.Status)
	require.Empty(t, rep.Error)
	for _, dep := range []string{"database", "redis"} {
		require.Equal(t, "up", rep.Details[dep]["status"], "%s in %+v", dep, rep)
		require.Contains(t, rep.Details[dep], "responseTime")
	}

	// The public port serves readiness and liveness too.
	code, rep = getHealth(t, client, s.gateway+"/health/ready")
	require.Equal(t, http.StatusOK, code, "%+v", rep)
	code, rep = getHealth(t, client, s.gateway+"/health/live")
	require.Equal(t, http.StatusOK, code, "%+v", rep)
}

func TestEveryAdminListenerIsReady(t *testing.T) {
	t.Parallel()
	s := shared(t)
	client := newHTTPClient(t)

	for _, name := range serviceNames() {
		p := s.procs[name]
		code, rep := getHealth(t, client, p.adminURL()+"/health/ready")
		require.Equal(t, http.StatusOK, code, "%s: %+v", name, rep)
		require.Equal(t, "up", rep.Details["database"]["status"], "%s: %+v", name, rep)
		require.Equal(t, "up", rep.Details["redis"]["status"], "%s: %+v", name, rep)

		code, rep = getHealth(t, client, p.adminURL()+"/health/live")
		require.Equal(t, http.StatusOK, code, "%s: %+v", name, rep)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, body, err := get(ctx, client, p.adminURL()+"/metrics")
		cancel()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, name)
		require.Contains(t, string(body), "herald_db_pool_max_connections", name)
		require.Contains(t, string(body), "go_goroutines", name)
	}
}

func TestGRPCHealthIsServing(t *testing.T) {
	t.Parallel()
	s := shared(t)

	for name, full := range grpcServiceNames() {
		status := grpcHealth(t, s.procs[name].ports.grpc, "")
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, status, "%s overall", name)
		status = grpcHealth(t, s.procs[name].ports.grpc, full)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, status, "%s %s", name, full)
	}
}

// grpcHealth asks the grpc.health.v1 service on port for the status of service ("" for the
// whole server).
func grpcHealth(t *testing.T, port int, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	cc, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	require.NoError(t, err)
	return resp.GetStatus()
}
