package importbench

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/process/processtest"
	"github.com/heraldmail/herald/migrations/lint"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The import tests and the benchmark run the real processes (recipient, gateway, worker) on
// free ports against a database of their own, as a client and an operator would see them.

// services are the processes an import needs.
var services = []string{"recipient", "gateway", "worker"}

// build compiles the services once per test binary.
var build struct {
	once sync.Once
	dir  string
	err  error
}

func binaries(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "herald-importbench-")
		if build.err != nil {
			return
		}
		root, err := lint.RepoRoot(".")
		if err != nil {
			build.err = err
			return
		}
		args := []string{"build", "-o", build.dir + string(filepath.Separator)}
		for _, name := range services {
			args = append(args, "./services/"+name+"/cmd/"+name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		tb.Fatalf("build services: %v", build.err)
	}
	return build.dir
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// proc is one running service.
type proc struct {
	name  string
	admin int
	cmd   *exec.Cmd
	out   *lockedBuffer
	done  chan struct{}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// peakRSSMB is the process's peak resident set (VmHWM), in MB.
func (p *proc) peakRSSMB() (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %s: %w", p.name, err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM of %s: %w", p.name, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM for %s", p.name)
}

// stack is the recipient service, the gateway and the worker on one database.
type stack struct {
	tb        testing.TB
	bins      string
	dbURL     string // the migrating role's URL (superuser in tests)
	admin     *pgxpool.Pool
	common    map[string]string
	recipient string // host:port of its gRPC server
	gateway   string // base URL of the public port
	worker    *proc
	workerEnv map[string]string
	client    *http.Client
}

// startStack starts the three services; workerEnv is added to the worker's environment.
func startStack(tb testing.TB, workerEnv map[string]string) *stack {
	tb.Helper()
	s := &stack{tb: tb, bins: binaries(tb), dbURL: pgtest.URL(tb), client: &http.Client{Timeout: 10 * time.Minute}}
	s.admin = pgtest.Open(tb, s.dbURL)
	host, port, err := net.SplitHostPort(pgtest.RedisAddr(tb))
	if err != nil {
		tb.Fatalf("redis address: %v", err)
	}
	s.common = map[string]string{
		"APP_ENV":          "test",
		"LOG_LEVEL":        "warn",
		"REDIS_HOST":       host,
		"REDIS_PORT":       port,
		"JWT_SECRET":       randomHex(32),
		"DRAIN_DELAY":      "0s",
		"SHUTDOWN_TIMEOUT": "10s",
	}
	grpcPort := processtest.FreePort(tb)
	s.recipient = "127.0.0.1:" + strconv.Itoa(grpcPort)
	s.start("recipient", map[string]string{"GRPC_PORT": strconv.Itoa(grpcPort)})
	httpPort := processtest.FreePort(tb)
	s.gateway = "http://127.0.0.1:" + strconv.Itoa(httpPort)
	nowhere := "127.0.0.1:" + strconv.Itoa(processtest.FreePort(tb))
	s.start("gateway", map[string]string{
		"PORT":                strconv.Itoa(httpPort),
		"RECIPIENT_GRPC_ADDR": s.recipient,
		"CAMPAIGN_GRPC_ADDR":  nowhere,
		"EVENTS_GRPC_ADDR":    nowhere,
		"RATE_LIMIT_BURST":    "100000",
	})
	s.workerEnv = map[string]string{"RECIPIENT_GRPC_ADDR": s.recipient}
	for k, v := range workerEnv {
		s.workerEnv[k] = v
	}
	s.worker = s.start("worker", s.workerEnv)
	return s
}

// startWorker starts a new worker process (after the last one was killed).
func (s *stack) startWorker() {
	s.worker = s.start("worker", s.workerEnv)
}

// start runs a service with the common environment, env and its own database role, and
// waits until it is ready; it is killed when the test ends.
func (s *stack) start(name string, env map[string]string) *proc {
	s.tb.Helper()
	p := &proc{name: name, admin: processtest.FreePort(s.tb), out: &lockedBuffer{}, done: make(chan struct{})}
	all := map[string]string{"ADMIN_PORT": strconv.Itoa(p.admin), "DATABASE_URL": pgtest.URLAs(s.tb, s.dbURL, "herald_"+map[string]string{
		"recipient": "recipient", "gateway": "gateway", "worker": "worker",
	}[name])}
	for k, v := range s.common {
		all[k] = v
	}
	for k, v := range env {
		all[k] = v
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	p.cmd = exec.CommandContext(context.Background(), filepath.Join(s.bins, name))
	for _, k := range keys {
		p.cmd.Env = append(p.cmd.Env, k+"="+all[k])
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		s.tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	s.tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.kill()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			s.tb.Fatalf("%s exited before it was ready:\n%s", name, p.out.tail(4000))
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health/ready", p.admin)) //nolint:noctx // a probe
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("%s not ready within 60s:\n%s", name, p.out.tail(4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tenant is a signed-up company with a domain.
type tenant struct {
	token              string
	company, workspace string
	domainPath         string
}

// signUp creates a company with a domain, and the custom fields first_name, last_name, city
// (text) and age (number) in its workspace.
func (s *stack) signUp() tenant {
	s.tb.Helper()
	marker := randomHex(8)
	var res struct {
		Tokens struct {
			AccessToken string `json:"access_token"`
		} `json:"tokens"`
		Company   map[string]any    `json:"company"`
		Workspace map[string]string `json:"workspace"`
	}
	s.json(http.MethodPost, "/v1/auth/signup", "", map[string]any{
		"company_name": "Import " + marker, "email": "owner-" + marker + "@example.com",
		"password": "import-bench-" + randomHex(12), "name": "Owner",
	}, &res)
	tn := tenant{token: res.Tokens.AccessToken, company: res.Company["id"].(string), workspace: res.Workspace["id"]}
	tn.domainPath = s.newDomain(tn)
	_, err := s.admin.Exec(context.Background(), `INSERT INTO recipient.field_definitions (company_id, workspace_id, key, label, type)
		VALUES ($1, $2, 'first_name', 'First name', 'text'), ($1, $2, 'last_name', 'Last name', 'text'),
		       ($1, $2, 'city', 'City', 'text'), ($1, $2, 'age', 'Age', 'number')`, tn.company, tn.workspace)
	if err != nil {
		s.tb.Fatalf("define fields: %v", err)
	}
	return tn
}

// newDomain creates a domain in tn's workspace and returns its API path.
func (s *stack) newDomain(tn tenant) string {
	s.tb.Helper()
	var dom struct {
		Domain map[string]string `json:"domain"`
	}
	s.json(http.MethodPost, "/v1/workspaces/"+tn.workspace+"/domains", tn.token,
		map[string]any{"name": "d-" + randomHex(6) + ".example.com"}, &dom)
	return "/v1/workspaces/" + tn.workspace + "/domains/" + dom.Domain["id"]
}

// json sends a JSON request and decodes a 200 answer into out.
func (s *stack) json(method, path, token string, body, out any) {
	s.tb.Helper()
	code, raw := s.do(method, path, token, "application/json", jsonBody(body), nil)
	if code != http.StatusOK {
		s.tb.Fatalf("%s %s: %d %s", method, path, code, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.tb.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

func jsonBody(v any) io.Reader {
	if v == nil {
		return nil
	}
	raw, _ := json.Marshal(v)
	return bytes.NewReader(raw)
}

// do sends a request and returns the status and body.
func (s *stack) do(method, path, token, contentType string, body io.Reader, query url.Values) (int, []byte) {
	s.tb.Helper()
	u := s.gateway + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, body)
	if err != nil {
		s.tb.Fatalf("request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.tb.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp.StatusCode, raw
}

// importReport is the import as GET returns it.
type importReport struct {
	ID         string  `json:"id"`
	State      string  `json:"state"`
	TotalBytes int64   `json:"total_bytes,string"`
	BytesDone  int64   `json:"bytes_done,string"`
	Percent    float64 `json:"percent"`
	RowsDone   int64   `json:"rows_done,string"`
	Inserted   int64   `json:"inserted,string"`
	Updated    int64   `json:"updated,string"`
	Rejected   int64   `json:"rejected,string"`
	Duplicates int64   `json:"duplicates,string"`
	Error      string  `json:"error"`
}

// upload posts file with the mapping and returns the status and the body.
func (s *stack) upload(tn tenant, path string, file io.Reader, mapping ...string) (int, []byte) {
	s.tb.Helper()
	return s.do(http.MethodPost, path+"/imports", tn.token, "text/csv", file, url.Values{"map": mapping})
}

// startImport uploads file and returns the pending import.
func (s *stack) startImport(tn tenant, path string, file io.Reader, mapping ...string) importReport {
	s.tb.Helper()
	code, raw := s.upload(tn, path, file, mapping...)
	if code != http.StatusOK {
		s.tb.Fatalf("upload: %d %s", code, raw)
	}
	var res struct {
		Import importReport `json:"import"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		s.tb.Fatalf("decode upload answer: %v", err)
	}
	return res.Import
}

func (s *stack) getImport(tn tenant, path, id string) importReport {
	s.tb.Helper()
	var res struct {
		Import importReport `json:"import"`
	}
	s.json(http.MethodGet, path+"/imports/"+id, tn.token, nil, &res)
	return res.Import
}

// waitImport polls the import until done says so, or fails after timeout.
func (s *stack) waitImport(tn tenant, path, id string, timeout time.Duration, done func(importReport) bool) importReport {
	s.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		im := s.getImport(tn, path, id)
		if done(im) {
			return im
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("import %s: still %+v after %s\nworker:\n%s", id, im, timeout, s.worker.out.tail(4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ended(im importReport) bool {
	switch im.State {
	case "IMPORT_STATE_SUCCEEDED", "IMPORT_STATE_FAILED", "IMPORT_STATE_CANCELLED":
		return true
	}
	return false
}
