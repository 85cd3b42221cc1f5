package flags_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// unleashServerDir is the npm package of the Unleash server (tools/unleash-server), installed
// by scripts/unleash.sh.
const unleashServerDir = "../../tools/unleash-server"

// Bounds of the real server's start (it migrates a new database first) and stop.
const (
	unleashStartTimeout = 2 * time.Minute
	unleashStopTimeout  = 20 * time.Second
)

// unleashServer is an Unleash server run as a child process on a database of its own.
type unleashServer struct {
	url         string // the API root, http://127.0.0.1:<port>/api
	adminToken  string
	clientToken string
	http        *http.Client

	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	kill   sync.Once
}

// lockedBuffer collects the server's output for the failure message.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p) //nolint:wrapcheck // bytes.Buffer never fails.
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// startUnleashServer starts the Unleash server of tools/unleash-server on a free port with a
// new database on the test PostgreSQL and random API tokens, and waits until it is healthy. The
// server is stopped and its database dropped when the test ends. When the server is not
// installed the test fails under CI and is skipped elsewhere.
func startUnleashServer(t *testing.T) *unleashServer {
	t.Helper()
	dir, err := filepath.Abs(unleashServerDir)
	require.NoError(t, err)
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "unleash-server", "package.json"))
	}
	if err != nil {
		msg := fmt.Sprintf("the Unleash server is not installed (%v): run scripts/unleash.sh (make test does)", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	dbURL := unleashDatabase(t)
	port := freeTCPPort(t)
	s := &unleashServer{
		url: "http://127.0.0.1:" + strconv.Itoa(port) + "/api",
		// The token formats of Unleash: <project>:<environment>.<secret>.
		adminToken:  "*:*." + randomHex(t, 24),
		clientToken: "default:development." + randomHex(t, 24),
		http:        &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second},
		out:         &lockedBuffer{},
		exited:      make(chan struct{}),
	}
	t.Cleanup(s.http.CloseIdleConnections)

	// The tokens and the database URL go through the environment, never the command line.
	s.cmd = exec.Command(node, "index.js") //nolint:noctx // stopped with SIGTERM, then killed, by stop.
	s.cmd.Dir = dir
	s.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"TZ=UTC",
		"SCARF_ANALYTICS=false",
		"NODE_OPTIONS=--no-deprecation",
		"LOG_LEVEL=warn",
		"HTTP_PORT=" + strconv.Itoa(port),
		"DATABASE_URL=" + dbURL,
		"INIT_ADMIN_API_TOKENS=" + s.adminToken,
		"INIT_BACKEND_API_TOKENS=" + s.clientToken,
	}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	require.NoError(t, s.cmd.Start())
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	start := time.Now()
	deadline := time.NewTimer(unleashStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !s.healthy(t) {
		select {
		case <-s.exited:
			t.Fatalf("the Unleash server exited at start: %s\n%s", s.cmd.ProcessState, s.output())
		case <-deadline.C:
			t.Fatalf("the Unleash server was not healthy within %s:\n%s", unleashStartTimeout, s.output())
		case <-tick.C:
		}
	}
	t.Logf("Unleash server healthy on port %d after %s", port, time.Since(start).Round(time.Millisecond))
	return s
}

// unleashDatabase creates a database for the server through the superuser URL of the tests and
// drops it when the test ends; it returns the URL of the new database.
func unleashDatabase(t *testing.T) string {
	t.Helper()
	admin := testenv.DatabaseURL(t)
	name := "herald_unleash_" + randomHex(t, 6)
	run := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	}
	require.NoError(t, run("CREATE DATABASE "+name))
	t.Cleanup(func() {
		if err := run("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop the Unleash database: %v", err)
		}
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

func (s *unleashServer) healthy(t *testing.T) bool {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimSuffix(s.url, "/api")+"/health", nil)
	require.NoError(t, err)
	resp, err := s.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// output is what the server printed, with the tokens masked.
func (s *unleashServer) output() string {
	return strings.NewReplacer(s.adminToken, "[admin token]", s.clientToken, "[client token]").Replace(s.out.String())
}

// stop ends the server with SIGTERM, or SIGKILL when it does not stop in time.
func (s *unleashServer) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(unleashStopTimeout):
		t.Logf("the Unleash server did not stop within %s after SIGTERM; killing it", unleashStopTimeout)
		s.killNow()
	}
}

// killNow ends the server at once, as a crash would, and waits until it is gone.
func (s *unleashServer) killNow() {
	s.kill.Do(func() { _ = s.cmd.Process.Kill() })
	<-s.exited
}

// admin calls the admin API and requires a 2xx answer.
func (s *unleashServer) admin(t *testing.T, method, path string, body any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+"/admin"+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", s.adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	require.Less(t, resp.StatusCode, 300, "%s %s: %s", method, path, answer)
}

// contextField creates a custom context field constraints and stickiness can use.
func (s *unleashServer) contextField(t *testing.T, name string) {
	t.Helper()
	s.admin(t, http.MethodPost, "/context", map[string]any{"name": name, "description": "Herald tenant " + name, "stickiness": true})
}

// constraint is a constraint of an Unleash strategy.
type constraint struct {
	ContextName string   `json:"contextName"`
	Operator    string   `json:"operator"`
	Values      []string `json:"values"`
}

// feature creates a feature toggle in the default project, turned off in the development
// environment (the client token's).
func (s *unleashServer) feature(t *testing.T, f flags.Flag) {
	t.Helper()
	s.admin(t, http.MethodPost, "/projects/default/features", map[string]any{"name": f.Name(), "type": "release"})
}

// strategy adds a strategy to f in development.
func (s *unleashServer) strategy(t *testing.T, f flags.Flag, name string, params map[string]string, constraints ...constraint) {
	t.Helper()
	if constraints == nil {
		constraints = []constraint{}
	}
	s.admin(t, http.MethodPost, "/projects/default/features/"+f.Name()+"/environments/development/strategies",
		map[string]any{"name": name, "parameters": params, "constraints": constraints})
}

// toggle turns f on or off in development.
func (s *unleashServer) toggle(t *testing.T, f flags.Flag, on bool) {
	t.Helper()
	state := "off"
	if on {
		state = "on"
	}
	s.admin(t, http.MethodPost, "/projects/default/features/"+f.Name()+"/environments/development/"+state, nil)
}

// TestUnleash_realServer runs the provider against a real Unleash server: tenant targeting
// through the companyId and workspaceId context fields, registry defaults for flags the server
// does not know, changes made through the admin API, and the last known values once the
// server is gone.
func TestUnleash_realServer(t *testing.T) {
	t.Parallel()
	srv := startUnleashServer(t)
	companyA, companyB := uuid.New(), uuid.New()
	workspaceA, workspaceB := uuid.New(), uuid.New()

	srv.contextField(t, flags.UnleashCompanyField)
	srv.contextField(t, flags.UnleashWorkspaceField)
	// fixture_company: a gradual rollout to every member of company A, sticky on the company.
	srv.feature(t, companyFlag)
	srv.strategy(t, companyFlag, "flexibleRollout",
		map[string]string{"rollout": "100", "stickiness": flags.UnleashCompanyField, "groupId": companyFlag.Name()},
		constraint{ContextName: flags.UnleashCompanyField, Operator: "IN", Values: []string{companyA.String()}})
	srv.toggle(t, companyFlag, true)
	// fixture_workspace: on for workspace A only.
	srv.feature(t, workspaceFlag)
	srv.strategy(t, workspaceFlag, "default", map[string]string{},
		constraint{ContextName: flags.UnleashWorkspaceField, Operator: "IN", Values: []string{workspaceA.String()}})
	srv.toggle(t, workspaceFlag, true)
	// fixture_global: known to the server, on for everyone, but turned off for now.
	srv.feature(t, globalFlag)
	srv.strategy(t, globalFlag, "default", map[string]string{})
	// fixture_on_by_default and fixture_unleash_absent are unknown to the server.

	b := newUnleashBundle(t)
	b.apiKey = srv.clientToken
	p := newUnleash(t, srv.url, b, flags.WithUnleashRefreshInterval(100*time.Millisecond))
	requireReady(t, p)
	ctx := t.Context()

	inA := flags.Scope{CompanyID: companyA, WorkspaceID: workspaceB}
	inB := flags.Scope{CompanyID: companyB, WorkspaceID: workspaceB}
	wsA := flags.Scope{CompanyID: companyB, WorkspaceID: workspaceA}

	t.Run("company constraint", func(t *testing.T) {
		require.True(t, p.Enabled(ctx, companyFlag, inA), "company A")
		require.True(t, p.Enabled(ctx, companyFlag, flags.Scope{CompanyID: companyA}), "company A, no workspace")
		require.False(t, p.Enabled(ctx, companyFlag, inB), "company B")
		require.False(t, p.Enabled(ctx, companyFlag, flags.Scope{WorkspaceID: workspaceB}), "no company")
	})
	t.Run("workspace constraint", func(t *testing.T) {
		require.True(t, p.Enabled(ctx, workspaceFlag, wsA), "workspace A")
		require.True(t, p.Enabled(ctx, workspaceFlag, flags.Scope{WorkspaceID: workspaceA}), "workspace A, no company")
		require.False(t, p.Enabled(ctx, workspaceFlag, inB), "workspace B")
		require.False(t, p.Enabled(ctx, workspaceFlag, flags.Scope{CompanyID: companyA}), "no workspace")
	})
	t.Run("unknown to the server", func(t *testing.T) {
		require.True(t, p.Enabled(ctx, absentFlag, inB), "registry default on")
		require.True(t, p.Enabled(ctx, onFlag, inB), "registry default on")
		require.False(t, p.Enabled(ctx, flags.NewFlag("fixture_not_registered"), inA), "not in the registry")
	})
	t.Run("turned off on the server", func(t *testing.T) {
		require.False(t, p.Enabled(ctx, globalFlag, inA))
	})
	t.Run("admin API changes are seen", func(t *testing.T) {
		srv.toggle(t, globalFlag, true)
		flagstest.Eventually(t, p, globalFlag, inB, true, propagation)
		require.True(t, p.Enabled(ctx, globalFlag, flags.Scope{}), "no tenant")

		// Company B joins the rollout.
		srv.strategy(t, companyFlag, "flexibleRollout",
			map[string]string{"rollout": "100", "stickiness": flags.UnleashCompanyField, "groupId": companyFlag.Name()},
			constraint{ContextName: flags.UnleashCompanyField, Operator: "IN", Values: []string{companyB.String()}})
		flagstest.Eventually(t, p, companyFlag, inB, true, propagation)
		require.True(t, p.Enabled(ctx, companyFlag, inA))

		srv.toggle(t, workspaceFlag, false)
		flagstest.Eventually(t, p, workspaceFlag, wsA, false, propagation)
	})

	// The server goes away: the provider answers from the last values it fetched.
	srv.killNow()
	want := map[flags.Flag]map[flags.Scope]bool{
		globalFlag:    {inA: true, inB: true},
		companyFlag:   {inA: true, inB: true, {WorkspaceID: workspaceA}: false},
		workspaceFlag: {wsA: false},
		absentFlag:    {inB: true},
	}
	requireAnswers := func() {
		for f, scopes := range want {
			for scope, on := range scopes {
				require.Equal(t, on, p.Enabled(ctx, f, scope), "%s in %+v", f, scope)
			}
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(propagation)
	for p.Up() || fallbacks(t, b.metrics, flags.FallbackLastKnown) == 0 {
		requireAnswers()
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the provider did not notice within %s that the server is gone", propagation)
		}
	}
	requireAnswers()
	require.Zero(t, fallbacks(t, b.metrics, flags.FallbackDefault), "never the registry defaults")
	require.NotContains(t, srv.output(), srv.adminToken)
}
