package flags

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Unleash/unleash-client-go/v4"
	unleashctx "github.com/Unleash/unleash-client-go/v4/context"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Defaults of the Unleash provider.
const (
	// DefaultUnleashRefreshInterval is how often the Unleash SDK fetches the flags again.
	DefaultUnleashRefreshInterval = 15 * time.Second
	// UnleashTimeout bounds one request to the Unleash server.
	UnleashTimeout = 5 * time.Second
)

// Unleash context fields a strategy or constraint can target: the company and the workspace
// of the check, as UUID strings (absent when the scope has none).
const (
	UnleashCompanyField   = "companyId"
	UnleashWorkspaceField = "workspaceId"
)

// ErrInvalidUnleashConfig is an Unleash provider that cannot be built from its arguments.
var ErrInvalidUnleashConfig = errors.New("invalid unleash configuration")

// UnleashOption tunes NewUnleash.
type UnleashOption func(*unleashConfig)

type unleashConfig struct {
	defs            []Definition
	refreshInterval time.Duration
	backupPath      string
	timeout         time.Duration
}

// WithUnleashDefinitions replaces the registry (Registered()) by defs, for tests with fixture
// flags.
func WithUnleashDefinitions(defs ...Definition) UnleashOption {
	return func(c *unleashConfig) { c.defs = defs }
}

// WithUnleashRefreshInterval sets how often the flags are fetched again
// (DefaultUnleashRefreshInterval).
func WithUnleashRefreshInterval(d time.Duration) UnleashOption {
	return func(c *unleashConfig) { c.refreshInterval = d }
}

// WithUnleashBackupPath sets the directory where the SDK keeps a copy of the last flags
// fetched, read at start so that a process that cannot reach the server answers from it (the
// SDK's default is the system's temporary directory).
func WithUnleashBackupPath(dir string) UnleashOption {
	return func(c *unleashConfig) { c.backupPath = dir }
}

// WithUnleashTimeout bounds one request to the Unleash server (UnleashTimeout).
func WithUnleashTimeout(d time.Duration) UnleashOption {
	return func(c *unleashConfig) { c.timeout = d }
}

// Unleash is the provider that asks an Unleash server. The SDK fetches every flag in the
// background and answers checks from memory; a check passes the company and the workspace as
// the context properties companyId and workspaceId, and a flag the server does not know has
// its registry default. It is safe for concurrent use.
type Unleash struct {
	client    *unleash.Client
	transport *http.Transport
	reg       *Registry
	log       *zap.Logger
	apiKey    string

	// mu orders checks before Close: the SDK's checks block once it is closed.
	mu     sync.RWMutex
	closed bool

	loaded atomic.Bool
	down   atomic.Bool
	ready  chan struct{}
	readyO sync.Once

	fallbackLastKnown, fallbackDefault, fallbackUnknown prometheus.Counter
	up                                                  prometheus.Gauge

	stop     chan struct{}
	stopOnce sync.Once

	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int64
}

// NewUnleash returns a provider on the Unleash server at url (its API root, e.g.
// https://unleash.example.com/api) with the flags of Registered(), authenticated with apiKey
// (a client API token, sent as the Authorization header and never logged). It registers the
// client with the server (one request, bounded by the timeout, whose failure is only logged)
// and starts the SDK's background fetch; until the first fetch, checks answer from the SDK's
// backup file or the registry defaults. It registers herald_flags_fallback_total{reason} and
// herald_flags_unleash_up on reg. Close (or Shutdown) stops it.
func NewUnleash(url, apiKey, appName string, reg prometheus.Registerer, log *zap.Logger, opts ...UnleashOption) (*Unleash, error) {
	cfg := unleashConfig{defs: Registered(), refreshInterval: DefaultUnleashRefreshInterval, timeout: UnleashTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case url == "" || appName == "":
		return nil, fmt.Errorf("flags: unleash url and app name must be set: %w", ErrInvalidUnleashConfig)
	case apiKey == "":
		return nil, fmt.Errorf("flags: unleash api key must be set: %w", ErrInvalidUnleashConfig)
	case cfg.refreshInterval <= 0 || cfg.timeout <= 0:
		return nil, fmt.Errorf("flags: unleash refresh interval and timeout must be positive: %w", ErrInvalidUnleashConfig)
	}
	registry, err := NewRegistry(cfg.defs...)
	if err != nil {
		return nil, fmt.Errorf("flags registry: %w", err)
	}
	u := &Unleash{
		reg:    registry,
		log:    log,
		apiKey: apiKey,
		ready:  make(chan struct{}),
		stop:   make(chan struct{}),
	}
	fallback, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_flags_fallback_total",
		Help: "Feature flag checks answered without Redis, by reason (last_known, default, unknown_flag).",
	}, []string{"reason"}))
	if err != nil {
		return nil, err
	}
	u.fallbackLastKnown = fallback.WithLabelValues(FallbackLastKnown)
	u.fallbackDefault = fallback.WithLabelValues(FallbackDefault)
	u.fallbackUnknown = fallback.WithLabelValues(FallbackUnknownFlag)
	u.up, err = register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_flags_unleash_up",
		Help: "1 when the feature flags were last fetched from Unleash successfully, 0 when they are served from memory because Unleash is unreachable.",
	}))
	if err != nil {
		return nil, err
	}

	// A transport of its own, so that Close releases its connections.
	u.transport = http.DefaultTransport.(*http.Transport).Clone()
	options := []unleash.ConfigOption{
		unleash.WithUrl(url),
		unleash.WithAppName(appName),
		unleash.WithCustomHeaders(http.Header{"Authorization": []string{apiKey}}),
		unleash.WithRefreshInterval(cfg.refreshInterval),
		unleash.WithHttpClient(&http.Client{Timeout: cfg.timeout, Transport: &unleashTransport{next: u.transport, u: u}}),
		unleash.WithListener(&unleashListener{u: u}),
	}
	if cfg.backupPath != "" {
		options = append(options, unleash.WithBackupPath(cfg.backupPath))
	}
	client, err := unleash.NewClient(options...)
	if err != nil {
		u.transport.CloseIdleConnections()
		return nil, fmt.Errorf("unleash client: %s: %w", u.redact(err.Error()), ErrInvalidUnleashConfig)
	}
	u.client = client
	// The SDK read its backup file while it was built: what it holds is the last known state.
	if len(client.ListFeatures()) > 0 {
		u.loaded.Store(true)
	}
	return u, nil
}

// Registry returns the provider's registry.
func (u *Unleash) Registry() *Registry { return u.reg }

// Enabled implements Provider. It reads only the SDK's memory.
func (u *Unleash) Enabled(_ context.Context, f Flag, scope Scope) bool {
	def, ok := u.reg.byName[f.name]
	if !ok {
		u.fallbackUnknown.Inc()
		return false
	}
	if u.down.Load() {
		if u.loaded.Load() {
			u.fallbackLastKnown.Inc()
		} else {
			u.fallbackDefault.Inc()
		}
	}
	props := make(map[string]string, 2)
	if scope.CompanyID != uuid.Nil {
		props[UnleashCompanyField] = scope.CompanyID.String()
	}
	if scope.WorkspaceID != uuid.Nil {
		props[UnleashWorkspaceField] = scope.WorkspaceID.String()
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed {
		return def.Default
	}
	return u.client.IsEnabled(f.name,
		unleash.WithContext(unleashctx.Context{Properties: props}),
		unleash.WithFallback(def.Default))
}

// Ready is closed once the flags were fetched from the server for the first time.
func (u *Unleash) Ready() <-chan struct{} { return u.ready }

// Up reports whether the flags were last fetched from Unleash successfully (the gauge
// herald_flags_unleash_up).
func (u *Unleash) Up() bool { return !u.down.Load() && isClosed(u.ready) }

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Name implements lifecycle.Component.
func (u *Unleash) Name() string { return "flags" }

// Serve implements lifecycle.Component. The SDK fetches in the background from NewUnleash
// on; Serve only waits for Shutdown or the end of ctx, then closes the SDK.
func (u *Unleash) Serve(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-u.stop:
	}
	return u.Close()
}

// Shutdown implements lifecycle.Component.
func (u *Unleash) Shutdown(context.Context) error {
	u.stopOnce.Do(func() { close(u.stop) })
	return nil
}

// Close stops the SDK's background work and releases its connections; later checks answer
// the registry defaults. It may be called more than once.
func (u *Unleash) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	u.closed = true
	err := u.client.Close()
	u.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close unleash client: %w", err)
	}
	return nil
}

// fetched records the outcome of a request for the flags.
func (u *Unleash) fetched(err error) {
	if err == nil {
		u.down.Store(false)
		u.up.Set(1)
		return
	}
	u.down.Store(true)
	u.up.Set(0)
	u.warn("unleash unreachable, flags answered from the last known state or the registry defaults", err)
}

// warn logs at most once per LogInterval; the API key never reaches the log.
func (u *Unleash) warn(msg string, err error) {
	u.logMu.Lock()
	defer u.logMu.Unlock()
	now := time.Now()
	if !u.lastLog.IsZero() && now.Sub(u.lastLog) < LogInterval {
		u.suppressed++
		return
	}
	u.log.Warn(msg, zap.String("error", u.redact(err.Error())), zap.Int64("suppressed", u.suppressed))
	u.lastLog = now
	u.suppressed = 0
}

func (u *Unleash) redact(s string) string {
	return strings.ReplaceAll(s, u.apiKey, "[redacted]")
}

// unleashTransport observes the SDK's requests for the flags, the only way to know whether the
// server answers (the SDK reports nothing when the flags did not change).
type unleashTransport struct {
	next http.RoundTripper
	u    *Unleash
}

// RoundTrip implements http.RoundTripper.
func (t *unleashTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if !strings.HasSuffix(req.URL.Path, "/client/features") {
		return resp, err //nolint:wrapcheck // the SDK inspects the transport's own errors.
	}
	switch {
	case err != nil:
		t.u.fetched(err)
	case resp.StatusCode >= http.StatusBadRequest:
		t.u.fetched(fmt.Errorf("%s %s: status %d", req.Method, req.URL.Redacted(), resp.StatusCode))
	default:
		t.u.fetched(nil)
	}
	return resp, err //nolint:wrapcheck // the SDK inspects the transport's own errors.
}

// unleashListener receives the SDK's events.
type unleashListener struct{ u *Unleash }

// OnError implements unleash.ErrorListener. Failed fetches are seen by the transport; other
// errors (metrics, backup file) are logged.
func (l *unleashListener) OnError(err error) { l.u.warn("unleash client error", err) }

// OnWarning implements unleash.ErrorListener.
func (l *unleashListener) OnWarning(err error) { l.u.warn("unleash client warning", err) }

// OnReady implements unleash.RepositoryListener: the flags were fetched once.
func (l *unleashListener) OnReady() {
	l.u.loaded.Store(true)
	l.u.readyO.Do(func() { close(l.u.ready) })
}

// OnUpdate implements unleash.RepositoryListener.
func (l *unleashListener) OnUpdate() {}

// OnCount implements unleash.MetricListener.
func (l *unleashListener) OnCount(string, bool) {}

// OnSent implements unleash.MetricListener.
func (l *unleashListener) OnSent(unleash.MetricsData) {}

// OnRegistered implements unleash.MetricListener.
func (l *unleashListener) OnRegistered(unleash.ClientData) {}
