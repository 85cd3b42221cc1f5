package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// watch holds the secrets of the run and everything the tests saw, for the hygiene check at
// the end of TestMain. It is nil with -short.
var watch *hygiene

// Kinds of the places a secret must not appear in.
const (
	sourceOutput   = "output"   // stdout and stderr of a service process
	sourceResponse = "response" // status line, headers and body of an HTTP answer a test got
	sourceMetrics  = "metrics"  // a process's /metrics
	sourceSentry   = "sentry"   // what a process sent to the fake Sentry
)

// secret is a value that must appear in none of the sources, except where allowed says.
type secret struct {
	name  string
	value string
	// core is the random part of a sentinel, matched on its own too (a value logged with its
	// prefix cut off is still a leak); empty for secrets the servers make up (API keys).
	core string
	// allowed reports where the secret may appear; nil means nowhere.
	allowed func(source) bool
}

// source is one place a secret must not appear in.
type source struct {
	id   int
	kind string
	name string
	data []byte
}

// hygiene is the run's sentinel secrets, the secrets the tests learn on the way (API keys),
// and what the tests saw: process output, HTTP answers, metrics and error reports.
type hygiene struct {
	jwtSecret         string
	jwtSecretPrevious string
	databasePassword  string
	redisPassword     string
	sentryKey         string
	userPassword      string
	// trackingSecret and webhookSecret are the gateway's TRACKING_SECRET and
	// TRACKING_WEBHOOK_SECRET; the tracking tests sign links and webhooks with them.
	trackingSecret string
	webhookSecret  string

	mu      sync.Mutex
	secrets []secret
	sources []source
	procs   []*process
}

// sentinelPrefix starts every sentinel: no configuration, log line or metric of Herald holds
// it by chance.
const sentinelPrefix = "herald-sentinel-"

// newSentinel returns a value for the secret kind: unmistakable, random per run, and made of
// characters that URL, JSON and Redis configuration syntax keep as they are.
func newSentinel(kind string) (value, core string) {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the process instead).
	core = hex.EncodeToString(b)
	return sentinelPrefix + kind + "-" + core, core
}

// newHygiene makes the sentinels of one run: every secret the processes get, and the
// password of every user the tests sign up.
func newHygiene() *hygiene {
	h := &hygiene{}
	for _, s := range []struct {
		name, kind string
		dst        *string
		allowed    func(source) bool
	}{
		{"JWT_SECRET", "jwt-secret", &h.jwtSecret, nil},
		{"JWT_SECRET_PREVIOUS", "jwt-secret-previous", &h.jwtSecretPrevious, nil},
		{"the password in DATABASE_URL", "database-password", &h.databasePassword, nil},
		{"REDIS_PASSWORD", "redis-password", &h.redisPassword, nil},
		// The key of SENTRY_DSN authenticates what a process sends to Sentry: it belongs there.
		{"the key in SENTRY_DSN", "sentry-key", &h.sentryKey, func(src source) bool { return src.kind == sourceSentry }},
		{"a user's password", "user-password", &h.userPassword, nil},
		{"TRACKING_SECRET", "tracking-secret", &h.trackingSecret, nil},
		{"TRACKING_WEBHOOK_SECRET", "tracking-webhook-secret", &h.webhookSecret, nil},
	} {
		value, core := newSentinel(s.kind)
		*s.dst = value
		h.secrets = append(h.secrets, secret{name: s.name, value: value, core: core, allowed: s.allowed})
	}
	return h
}

// deps returns the dependencies of a service process with the run's sentinel secrets. A
// databaseURL that carries a password of its own keeps it, and the check looks for that one.
func (h *hygiene) deps(databaseURL, redisAddr, sentryDSN string) deps {
	password := h.databasePassword
	if u, err := url.Parse(databaseURL); err == nil {
		if own, ok := u.User.Password(); ok && own != "" {
			password = ""
			h.addSecret("the password in the given DATABASE_URL", own)
		}
	}
	return deps{
		databaseURL:       databaseURL,
		databasePassword:  password,
		redisAddr:         redisAddr,
		redisPassword:     h.redisPassword,
		jwtSecret:         h.jwtSecret,
		jwtSecretPrevious: h.jwtSecretPrevious,
		trackingSecret:    h.trackingSecret,
		webhookSecret:     h.webhookSecret,
		sentryDSN:         sentryDSN,
		drainDelay:        time.Second,
	}
}

// sentryDSN is the DSN of the fake Sentry at base (http://host:port), with the run's key.
func (h *hygiene) sentryDSN(base string) string {
	return strings.Replace(base, "http://", "http://"+h.sentryKey+"@", 1) + "/42"
}

// addSecret adds a secret that must appear nowhere, once.
func (h *hygiene) addSecret(name, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.secrets {
		if s.value == value {
			return
		}
	}
	h.secrets = append(h.secrets, secret{name: name, value: value})
}

// addAPIKey adds an API key the tests received: it may appear in the answer that issued it
// (the response with id issuedIn), nowhere else.
func (h *hygiene) addAPIKey(name, value string, issuedIn int) {
	if h == nil || value == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, secret{name: "API key " + strconv.Quote(name), value: value,
		allowed: func(src source) bool { return src.kind == sourceResponse && src.id == issuedIn }})
}

// add records a source and returns its id.
func (h *hygiene) add(kind, name string, data []byte) int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id := len(h.sources) + 1
	h.sources = append(h.sources, source{id: id, kind: kind, name: name, data: data})
	return id
}

// received returns the data of every source of kind recorded so far.
func (h *hygiene) received(kind string) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out [][]byte
	for _, src := range h.sources {
		if src.kind == kind {
			out = append(out, src.data)
		}
	}
	return out
}

// watchProcess adds the output of p, read at the time of the check.
func (h *hygiene) watchProcess(p *process) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.procs = append(h.procs, p)
}

// recordResponse adds an HTTP answer a test received and returns its id.
func (h *hygiene) recordResponse(req *http.Request, resp *http.Response, body []byte) int {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n%s\n", req.Method, req.URL.Path, resp.Status)
	_ = resp.Header.Write(&b)
	b.WriteString("\n")
	b.Write(body)
	return h.add(sourceResponse, fmt.Sprintf("the answer to %s %s (%d)", req.Method, req.URL.Path, resp.StatusCode), b.Bytes())
}

// collectMetrics adds the /metrics of each running process.
func (h *hygiene) collectMetrics(procs ...*process) error {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var errs []string
	for _, p := range procs {
		if p.exited() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, body, err := get(ctx, client, p.adminURL()+"/metrics")
		cancel()
		if err != nil || code != http.StatusOK {
			errs = append(errs, fmt.Sprintf("metrics of %s: status %d, %v", p.name, code, err))
			continue
		}
		h.add(sourceMetrics, fmt.Sprintf("/metrics of %s (pid %d)", p.name, p.cmd.Process.Pid), body)
	}
	if len(errs) > 0 {
		return fmt.Errorf("collect metrics: %s", strings.Join(errs, "; "))
	}
	return nil
}

// leaks returns, for every secret found where it must not be, where it was found, and a
// summary of what was searched. It never returns a secret's value: each secret in the context
// shown is replaced by its name.
func (h *hygiene) leaks() (found []string, summary string) {
	h.mu.Lock()
	sources := slices.Clone(h.sources)
	secrets := slices.Clone(h.secrets)
	for _, p := range h.procs {
		sources = append(sources, source{kind: sourceOutput,
			name: fmt.Sprintf("the output of %s (pid %d)", p.name, p.cmd.Process.Pid), data: p.out.bytes()})
	}
	h.mu.Unlock()
	count := map[string]int{}
	for _, src := range sources {
		count[src.kind]++
	}
	summary = fmt.Sprintf("%d secrets searched for in the output of %d processes, %d HTTP answers, %d /metrics and %d Sentry reports",
		len(secrets), count[sourceOutput], count[sourceResponse], count[sourceMetrics], count[sourceSentry])
	return findLeaks(secrets, sources), summary
}

// findLeaks looks for every secret (its value, and its core) in every source.
func findLeaks(secrets []secret, sources []source) []string {
	var out []string
	for _, src := range sources {
		var redacted []byte
		for _, s := range secrets {
			if s.allowed != nil && s.allowed(src) {
				continue
			}
			for _, needle := range []string{s.value, s.core} {
				if needle == "" {
					continue
				}
				at := bytes.Index(src.data, []byte(needle))
				if at < 0 {
					continue
				}
				if redacted == nil {
					redacted = redact(src.data, secrets)
				}
				line := bytes.Count(src.data[:at], []byte("\n")) + 1
				out = append(out, fmt.Sprintf("%s appears in %s, line %d: %s", s.name, src.name, line,
					around(redacted, "["+s.name+"]", line)))
				break
			}
		}
	}
	return out
}

// redact replaces every secret (value first, then core) in data by its name in brackets.
func redact(data []byte, secrets []secret) []byte {
	out := slices.Clone(data)
	for _, s := range secrets {
		for _, needle := range []string{s.value, s.core} {
			if needle != "" {
				out = bytes.ReplaceAll(out, []byte(needle), []byte("["+s.name+"]"))
			}
		}
	}
	return out
}

// around returns up to 60 bytes either side of the first mark on line (1-based) of the
// redacted data, quoted.
func around(redacted []byte, mark string, line int) string {
	lines := bytes.Split(redacted, []byte("\n"))
	if line > len(lines) {
		return "(not shown)"
	}
	l := lines[line-1]
	at := bytes.Index(l, []byte(mark))
	if at < 0 {
		at = 0
	}
	from, to := max(0, at-60), min(len(l), at+len(mark)+60)
	return strconv.Quote(string(l[from:to]))
}

// newFakeSentry starts an HTTP server that stands in for Sentry: it accepts every event and
// keeps what it received (headers and decompressed body) as a source for the check.
func newFakeSentry(h *hygiene) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			if gz, err := gzip.NewReader(r.Body); err == nil {
				rd = gz
			}
		}
		body, _ := io.ReadAll(rd)
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.Path)
		_ = r.Header.Write(&b)
		b.WriteString("\n")
		b.Write(body)
		h.add(sourceSentry, "a report sent to Sentry ("+r.URL.Path+")", b.Bytes())
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
}

// responseIDKey carries, in a request's context, where recordingTransport puts the id of the
// answer it recorded.
type responseIDKey struct{}

// recordingTransport records every answer it receives (status, headers and the whole body)
// for the hygiene check.
type recordingTransport struct {
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (rt recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the answer to %s %s: %w", req.Method, req.URL.Path, err)
	}
	id := watch.recordResponse(req, resp, body)
	if slot, ok := req.Context().Value(responseIDKey{}).(*int); ok {
		*slot = id
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// newRecordingClient returns an HTTP client whose answers are recorded.
func newRecordingClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: recordingTransport{base: &http.Transport{}}}
}

func TestFindLeaks(t *testing.T) {
	t.Parallel()
	jwt, jwtCore := newSentinel("jwt-secret")
	key, _ := newSentinel("sentry-key")
	secrets := []secret{
		{name: "JWT_SECRET", value: jwt, core: jwtCore},
		{name: "the key in SENTRY_DSN", value: key, allowed: func(src source) bool { return src.kind == sourceSentry }},
		{name: "API key", value: "hk_abc_def", allowed: func(src source) bool { return src.id == 7 }},
	}
	sources := []source{
		{id: 1, kind: sourceOutput, name: "clean", data: []byte("{\"msg\":\"config loaded\",\"JWT_SECRET\":\"[set]\"}\n")},
		{id: 2, kind: sourceOutput, name: "config dump", data: []byte("first line\n{\"jwt\":\"" + jwt + "\",\"dsn\":\"http://" + key + "@x/42\"}\n")},
		{id: 3, kind: sourceSentry, name: "sentry", data: []byte("dsn=http://" + key + "@x/42")},
		{id: 4, kind: sourceMetrics, name: "metrics", data: []byte("x{secret=\"" + jwtCore[:32] + "\"} 1")},
		{id: 7, kind: sourceResponse, name: "issuing answer", data: []byte(`{"secret":"hk_abc_def"}`)},
		{id: 8, kind: sourceResponse, name: "list answer", data: []byte(`{"keys":["hk_abc_def"]}`)},
	}
	got := findLeaks(secrets, sources)
	require.Len(t, got, 4, "%q", got)
	require.Contains(t, got[0], "JWT_SECRET appears in config dump, line 2")
	require.Contains(t, got[1], "the key in SENTRY_DSN appears in config dump, line 2")
	require.Contains(t, got[2], "JWT_SECRET appears in metrics, line 1")
	require.Contains(t, got[3], "API key appears in list answer, line 1")
	for _, g := range got {
		require.NotContains(t, g, jwtCore, "a report never shows a secret")
		require.NotContains(t, g, key)
		require.NotContains(t, g, "hk_abc_def")
	}
	require.Contains(t, got[0], `[JWT_SECRET]`)
}

// TestErrorsReachSentry starts a gateway of its own whose services are unreachable: a request
// that needs one answers 503, and the error it logs reaches the fake Sentry, so the reports
// the processes send are among what the hygiene check searches.
func TestErrorsReachSentry(t *testing.T) {
	t.Parallel()
	s := shared(t)
	closed, err := freePorts(1)
	require.NoError(t, err)
	d := s.deps
	d.grpcAddrs = map[string]string{}
	for name := range grpcServiceNames() {
		d.grpcAddrs[name] = "127.0.0.1:" + strconv.Itoa(closed[0])
	}
	gw := startOwn(t, "gateway", d)

	tn := newTenant(t, s) // through the shared gateway: the same database and JWT secret
	a := &api{t: t, base: "http://127.0.0.1:" + strconv.Itoa(gw.ports.http), http: newHTTPClient(t)}
	code, raw := a.do(http.MethodGet, tn.path("/recipients/"+tn.domain.String()), tn.token, nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", raw)
	e := requireError(t, raw, "unavailable")

	waitFor(t, 10*time.Second, "the error report to reach Sentry", func() (bool, string) {
		reports := watch.received(sourceSentry)
		for _, r := range reports {
			if bytes.Contains(r, []byte("upstream call failed")) && bytes.Contains(r, []byte(e.RequestID)) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d reports, none about request %s", len(reports), e.RequestID)
	})
}
