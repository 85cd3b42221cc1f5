package ingestbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldmail/herald/migrations/lint"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// bins holds the service binaries, built once per run.
var bins struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		_ = os.RemoveAll(bins.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "ingestbench: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// binaries builds the services the benchmarks run once and returns their directory:
// events-ingest and the gateway, and for BenchmarkCampaignStats the campaign service
// (events-ingest asks it whether a campaign exists) and the worker (the rollup).
func binaries(b *testing.B) string {
	b.Helper()
	bins.once.Do(func() {
		root, err := lint.RepoRoot(".")
		if err != nil {
			bins.err = err
			return
		}
		dir, err := os.MkdirTemp("", "herald-ingestbench-")
		if err != nil {
			bins.err = err
			return
		}
		bins.dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
			"./services/events-ingest/cmd/events-ingest", "./services/gateway/cmd/gateway",
			"./services/campaign/cmd/campaign", "./services/worker/cmd/worker")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(b, bins.err)
	return bins.dir
}

// processEnv returns the environment every service a benchmark starts shares, its admin
// listener on adminPort.
func processEnv(redisHost, redisPort, secret string, adminPort int) map[string]string {
	return map[string]string{
		"APP_ENV": "test", "LOG_LEVEL": "warn", "REDIS_HOST": redisHost, "REDIS_PORT": redisPort,
		"JWT_SECRET": secret, "ADMIN_PORT": strconv.Itoa(adminPort), "DRAIN_DELAY": "0s",
	}
}

func randomSecret() string {
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

// lockedBuffer collects a process's output for failure reports.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start runs the service name with env (nothing inherited but PATH), waits until its admin
// listener on adminPort is ready, and stops it (SIGTERM) at the end of the benchmark.
func start(b *testing.B, name string, adminPort int, env map[string]string) {
	b.Helper()
	// Stopped by the cleanup below (SIGTERM first), not by a context.
	cmd := exec.CommandContext(context.WithoutCancel(b.Context()), filepath.Join(binaries(b), name)) //nolint:gosec // a binary this run built
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(b, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if b.Failed() {
			b.Logf("output of %s:\n%s", name, out.String())
		}
	})
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	url := "http://127.0.0.1:" + strconv.Itoa(adminPort) + "/health/ready"
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			b.Fatalf("%s exited before it was ready:\n%s", name, out.String())
		default:
		}
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		require.NoError(b, err)
		if res, err := client.Do(req); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not ready within 60s:\n%s", name, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
