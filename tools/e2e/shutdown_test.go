package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/heraldmail/herald/migrations/pgtest"
)

// startOwn starts a process of its own for one test: the service name on free ports with
// d, waits until it is ready, and kills it at the end of the test if it still runs.
func startOwn(t *testing.T, name string, d deps) *process {
	t.Helper()
	bin := binaries(t)
	free, err := freePorts(2)
	require.NoError(t, err)
	p := ports{admin: free[0]}
	switch name {
	case "gateway":
		p.http = free[1]
	case "worker":
	default:
		p.grpc = free[1]
	}
	env, err := serviceEnv(name, p, d)
	require.NoError(t, err)
	proc, err := startProcess(bin, name, p, env)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := watch.collectMetrics(proc); err != nil {
			t.Error(err)
		}
		proc.kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, proc.out.tail(60))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	require.NoError(t, proc.waitReady(ctx, newHTTPClient(t)))
	return proc
}

// TestGracefulShutdown sends SIGTERM to a service while it serves a request that takes
// longer than its drain delay: readiness turns 503 at once, the service keeps serving through DRAIN_DELAY, the
// request in flight completes, and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	binaries(t) // skips with -short
	const drainDelay = 3 * time.Second
	s := shared(t)
	d := watch.deps(pgtest.URL(t), s.deps.redisAddr, s.deps.sentryDSN)
	d.drainDelay = drainDelay
	proc := startOwn(t, "recipient", d)
	client := newHTTPClient(t)
	require.NoError(t, watch.collectMetrics(proc))

	// A CPU profile is a real request that takes as long as it is asked to.
	type result struct {
		code int
		size int
		err  error
	}
	sent := make(chan struct{})
	done := make(chan result, 1)
	go func() {
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { close(sent) },
		})
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, proc.adminURL()+"/debug/pprof/profile?seconds=4", nil)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, size: len(body), err: err}
	}()
	<-sent
	start := time.Now()
	proc.sigterm()

	// Draining: not ready, on HTTP and on gRPC, while the process still answers.
	waitFor(t, drainDelay, "readiness to turn 503", func() (bool, string) {
		code, _ := getHealth(t, client, proc.adminURL()+"/health/ready")
		return code == http.StatusServiceUnavailable, strconv.Itoa(code)
	})
	code, rep := getHealth(t, client, proc.adminURL()+"/health/ready")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "error", rep.Status)
	require.Equal(t, "down", rep.Error["shutdown"]["status"], "%+v", rep)
	code, _ = getHealth(t, client, proc.adminURL()+"/health/live")
	require.Equal(t, http.StatusOK, code, "liveness stays 200 while draining")
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, grpcHealth(t, proc.ports.grpc, ""))

	// The request in flight completes normally.
	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, http.StatusOK, res.code)
	require.Positive(t, res.size, "an empty profile")

	exit, err := proc.wait(stopTimeout)
	require.NoError(t, err)
	require.Zero(t, exit, "exit status after SIGTERM; output:\n%s", proc.out.tail(30))
	require.GreaterOrEqual(t, time.Since(start), drainDelay, "the process stopped before its drain delay")
}
