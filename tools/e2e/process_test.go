package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/lint"
)

// serviceNames lists the five processes.
func serviceNames() []string {
	return []string{"campaign", "recipient", "events-ingest", "worker", "gateway"}
}

// grpcServiceNames maps each gRPC process to the full name of the service it serves.
func grpcServiceNames() map[string]string {
	return map[string]string{
		"campaign":      "herald.campaign.v1.CampaignService",
		"recipient":     "herald.recipient.v1.RecipientService",
		"events-ingest": "herald.events.v1.EventsIngestService",
	}
}

// buildServices compiles every service into dir with one go build in the workspace.
func buildServices(ctx context.Context, dir string) error {
	root, err := lint.RepoRoot(".")
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, name := range serviceNames() {
		args = append(args, "./services/"+name+"/cmd/"+name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// freePorts returns n distinct TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var lc net.ListenConfig
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// randomSecret returns a random signing secret that no process knows (a forger's).
func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the process instead).
	return hex.EncodeToString(b)
}

// ports are the listeners of one service process.
type ports struct {
	admin int
	grpc  int // 0 for the worker and the gateway
	http  int // the gateway's public port
}

// deps are what a service process connects to, and its secrets.
type deps struct {
	databaseURL string
	// databasePassword goes into the process's DATABASE_URL; the test clusters trust the
	// loopback, so it is accepted and ignored.
	databasePassword string
	redisAddr        string
	redisPassword    string
	jwtSecret        string
	// jwtSecretPrevious is given to the gateway, the one process that reads it.
	jwtSecretPrevious string
	// trackingSecret and webhookSecret are given to the gateway (TRACKING_SECRET,
	// TRACKING_WEBHOOK_SECRET).
	trackingSecret string
	webhookSecret  string
	sentryDSN      string
	// grpcAddrs maps a gRPC service process to its address, for the processes that call
	// another: the gateway, events-ingest and the worker.
	grpcAddrs  map[string]string
	drainDelay time.Duration
	// env holds further variables of the process (tuning of one test's own process).
	env map[string]string
}

// serviceEnv is the environment of the service process name. Nothing is inherited from the
// test's own environment.
func serviceEnv(name string, p ports, d deps) (map[string]string, error) {
	host, port, err := net.SplitHostPort(d.redisAddr)
	if err != nil {
		return nil, fmt.Errorf("redis address %q: %w", d.redisAddr, err)
	}
	databaseURL, err := withPassword(d.databaseURL, d.databasePassword)
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"APP_ENV":          "test",
		"LOG_LEVEL":        "info",
		"DATABASE_URL":     databaseURL,
		"REDIS_HOST":       host,
		"REDIS_PORT":       port,
		"JWT_SECRET":       d.jwtSecret,
		"ADMIN_PORT":       strconv.Itoa(p.admin),
		"DRAIN_DELAY":      d.drainDelay.String(),
		"SHUTDOWN_TIMEOUT": "20s",
	}
	if d.redisPassword != "" {
		env["REDIS_PASSWORD"] = d.redisPassword
	}
	if d.sentryDSN != "" {
		env["SENTRY_DSN"] = d.sentryDSN
	}
	if p.grpc != 0 {
		env["GRPC_PORT"] = strconv.Itoa(p.grpc)
	}
	if p.http != 0 {
		env["PORT"] = strconv.Itoa(p.http)
		if d.jwtSecretPrevious != "" {
			env["JWT_SECRET_PREVIOUS"] = d.jwtSecretPrevious
		}
		if d.trackingSecret != "" {
			env["TRACKING_SECRET"] = d.trackingSecret
		}
		if d.webhookSecret != "" {
			env["TRACKING_WEBHOOK_SECRET"] = d.webhookSecret
		}
		// The tests act as a few companies sending hundreds of requests within seconds (the
		// isolation suite above all); the rate limit has tests of its own.
		env["RATE_LIMIT_BURST"] = "10000"
	}
	if name == "worker" {
		// Statistics are recounted every second, so that tests see their events counted
		// within moments.
		env["EVENT_ROLLUP_INTERVAL"] = "1s"
	}
	maps.Copy(env, d.env)
	for svc, addr := range d.grpcAddrs {
		switch svc {
		case "campaign":
			env["CAMPAIGN_GRPC_ADDR"] = addr
		case "recipient":
			env["RECIPIENT_GRPC_ADDR"] = addr
		case "events-ingest":
			env["EVENTS_GRPC_ADDR"] = addr
		}
	}
	return env, nil
}

// process is one running service.
type process struct {
	name  string
	ports ports
	cmd   *exec.Cmd
	out   *output
	done  chan struct{}
	err   error // Wait's result, set before done closes
}

// output collects a process's output for failure reports.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// bytes returns a copy of everything written so far.
func (o *output) bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.buf.Bytes())
}

// tail returns the last n lines.
func (o *output) tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	lines := strings.Split(strings.TrimRight(o.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startProcess starts the binary name from bins with exactly env. The process lives until it
// is stopped with sigterm or kill (or the test binary dies).
func startProcess(bins, name string, p ports, env map[string]string) (*process, error) {
	env, err := withServiceRole(env, name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(context.Background(), filepath.Join(bins, name))
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	out := &output{}
	cmd.Stdout = out
	cmd.Stderr = out
	// Should the test binary die, the services die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	proc := &process{name: name, ports: p, cmd: cmd, out: out, done: make(chan struct{})}
	watch.watchProcess(proc)
	go func() {
		proc.err = cmd.Wait()
		close(proc.done)
	}()
	return proc, nil
}

// withServiceRole returns env with its DATABASE_URL, the URL the migrations ran as, turned
// into the URL of the service's own database role (migrations.ServiceRoles), as in
// production: the service is held to its grants and to row-level security. The URL keeps its
// password.
func withServiceRole(env map[string]string, name string) (map[string]string, error) {
	databaseURL, ok := env["DATABASE_URL"]
	role, known := migrations.ServiceRoles()[name]
	if !ok || !known {
		return env, nil
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database url of %s: cannot be parsed", name)
	}
	password, _ := u.User.Password()
	roleURL, err := migrations.RoleURL(databaseURL, role)
	if err != nil {
		return nil, fmt.Errorf("database url of %s: %w", name, err)
	}
	if roleURL, err = withPassword(roleURL, password); err != nil {
		return nil, err
	}
	env = maps.Clone(env)
	env["DATABASE_URL"] = roleURL
	return env, nil
}

// withPassword returns the postgres:// URL databaseURL with password in its user info (as it
// was when password is empty). Errors never quote the URL.
func withPassword(databaseURL, password string) (string, error) {
	if password == "" {
		return databaseURL, nil
	}
	u, err := url.Parse(databaseURL)
	if err != nil || u.User == nil {
		return "", errors.New("database url: cannot be parsed, or names no user")
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String(), nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// adminURL is the base URL of the admin listener.
func (p *process) adminURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(p.ports.admin)
}

// waitReady polls /health/ready until it answers 200, the process exits or ctx ends.
func (p *process) waitReady(ctx context.Context, client *http.Client) error {
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready (%s); its output:\n%s", p.name, p.cmd.ProcessState, p.out.tail(40))
		}
		code, body, err := get(ctx, client, p.adminURL()+"/health/ready")
		if err == nil && code == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("%d %s %v", code, body, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (last answer: %s); its output:\n%s", p.name, last, p.out.tail(40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sigterm asks the process to stop.
func (p *process) sigterm() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// terminate sends SIGTERM and waits up to timeout; it returns the exit code, or an error when
// the process had to be killed.
func (p *process) terminate(timeout time.Duration) (int, error) {
	p.sigterm()
	return p.wait(timeout)
}

// wait waits up to timeout for the process to exit and returns its exit code; after the
// timeout it kills the process and returns an error.
func (p *process) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return -1, fmt.Errorf("%s did not exit within %s; killed", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// kill stops the process at once, for cleanups after a failure.
func (p *process) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// get performs a GET and returns the status and body.
func get(ctx context.Context, client *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("new request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read %s: %w", url, err)
	}
	return resp.StatusCode, body, nil
}

// waitFor polls check every 50ms until it reports done, failing the test when timeout passes
// first; state describes what check last saw.
func waitFor(t *testing.T, timeout time.Duration, what string, check func() (done bool, state string)) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := check()
		if done {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("waited %s for %s; last seen: %s", timeout, what, state)
		case <-tick.C:
		}
	}
}
