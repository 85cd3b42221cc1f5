package lifecycle_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/lifecycle"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// slowServer serves GET /slow, which takes 2 seconds, and /ready, which reports draining.
func slowServer(t *testing.T, draining *atomic.Bool, started chan<- struct{}) (*lifecycle.HTTPServer, string) {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(2 * time.Second) // the in-flight work under test
		_, _ = io.WriteString(w, "done")
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	return lifecycle.NewHTTPServer("http", srv, ln), "http://" + ln.Addr().String()
}

func TestInFlightRequestFinishesDuringShutdown(t *testing.T) {
	t.Parallel()
	var draining atomic.Bool
	started := make(chan struct{}, 1)
	comp, base := slowServer(t, &draining, started)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		runErr <- lifecycle.Run(ctx, zaptest.NewLogger(t), lifecycle.Options{
			DrainDelay:      500 * time.Millisecond,
			ShutdownTimeout: 10 * time.Second,
			OnDrain:         func() { draining.Store(true) },
		}, comp)
	}()

	type result struct {
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow") //nolint:noctx // test client
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- result{string(b), err}
	}()
	<-started
	cancel()

	// During the drain the server still answers, and readiness says 503.
	require.Eventually(t, draining.Load, time.Second, 5*time.Millisecond)
	resp, err := http.Get(base + "/ready") //nolint:noctx // test client
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	r := <-slow
	require.NoError(t, r.err)
	require.Equal(t, "done", r.body)
	require.NoError(t, <-runErr)

	resp, err = http.Get(base + "/ready") //nolint:noctx // test client
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "the listener is closed after shutdown")
}

func TestShutdownTimeoutBoundsInFlightWork(t *testing.T) {
	t.Parallel()
	var draining atomic.Bool
	started := make(chan struct{}, 1)
	comp, base := slowServer(t, &draining, started)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		runErr <- lifecycle.Run(ctx, zaptest.NewLogger(t), lifecycle.Options{ShutdownTimeout: 200 * time.Millisecond}, comp)
	}()
	clientDone := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/slow") //nolint:noctx // test client
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		clientDone <- err
	}()
	<-started
	start := time.Now()
	cancel()
	err := <-runErr
	require.Error(t, err, "work that outlives the shutdown timeout is reported")
	require.Less(t, time.Since(start), 2*time.Second)
	require.Error(t, <-clientDone, "the connection was closed")
}

func TestSignalStartsShutdown(t *testing.T) {
	// Not parallel: it signals the test process itself.
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	var drained atomic.Bool
	runErr := make(chan error, 1)
	go func() {
		runErr <- lifecycle.Run(context.Background(), zaptest.NewLogger(t), lifecycle.Options{
			ShutdownTimeout: 5 * time.Second,
			OnDrain:         func() { drained.Store(true) },
			Signals:         []os.Signal{syscall.SIGUSR1},
		}, lifecycle.NewGRPCServer("grpc", srv, ln))
	}()
	require.Eventually(t, func() bool {
		c, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGUSR1))
	require.NoError(t, <-runErr)
	require.True(t, drained.Load())
}

func TestFailingComponentStopsTheOthers(t *testing.T) {
	t.Parallel()
	var draining atomic.Bool
	comp, _ := slowServer(t, &draining, make(chan struct{}, 1))
	boom := errors.New("boom")
	failing := lifecycle.Func{
		ComponentName: "failing",
		ServeFunc:     func(context.Context) error { return boom },
		ShutdownFunc:  func(context.Context) error { return nil },
	}
	err := lifecycle.Run(context.Background(), zaptest.NewLogger(t), lifecycle.Options{
		DrainDelay: time.Hour, ShutdownTimeout: time.Second,
	}, comp, failing)
	require.ErrorIs(t, err, boom)
	require.Contains(t, err.Error(), "failing")
}
