package flags_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// absentFlag is registered but unknown to the recorded Unleash server; it is on by default.
var absentFlag = flags.NewFlag("fixture_unleash_absent")

// targetCompany is the company the constraint of fixture_company in
// testdata/unleash-features.json lists.
var targetCompany = uuid.MustParse("6f1c2b3a-0d4e-4b5f-8a6c-7d8e9f0a1b2c")

func unleashFixtures() []flags.Definition {
	defs := fixtures()
	d := defs[0]
	d.Flag, d.Default = absentFlag, true
	return append(defs, d)
}

// fakeUnleash serves the client API of an Unleash server from a recorded features response
// and counts requests that did not carry the API key.
type fakeUnleash struct {
	*httptest.Server
	apiKey       string
	unauthorized atomic.Int64
}

func newFakeUnleash(t *testing.T, apiKey string) *fakeUnleash {
	t.Helper()
	features, err := os.ReadFile("testdata/unleash-features.json")
	require.NoError(t, err)
	require.True(t, json.Valid(features))
	f := &fakeUnleash{apiKey: apiKey}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/client/register", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /api/client/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /api/client/features", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(features)
	})
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != f.apiKey {
			f.unauthorized.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

type unleashBundle struct {
	apiKey  string
	backup  string
	log     *zap.Logger
	logs    *observer.ObservedLogs
	metrics *prometheus.Registry
}

func newUnleashBundle(t *testing.T) unleashBundle {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	return unleashBundle{
		apiKey:  "*:development." + uuid.NewString(),
		backup:  t.TempDir(),
		log:     zap.New(core),
		logs:    logs,
		metrics: prometheus.NewRegistry(),
	}
}

func newUnleash(t *testing.T, url string, b unleashBundle, opts ...flags.UnleashOption) *flags.Unleash {
	t.Helper()
	opts = append([]flags.UnleashOption{
		flags.WithUnleashDefinitions(unleashFixtures()...),
		flags.WithUnleashBackupPath(b.backup),
		flags.WithUnleashTimeout(2 * time.Second),
	}, opts...)
	p, err := flags.NewUnleash(url, b.apiKey, "herald-test", b.metrics, b.log, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, p.Close())
		requireNoKeyInLogs(t, b.logs, b.apiKey)
	})
	return p
}

// setupUnleash returns a provider on a fresh recorded server once it has fetched the flags.
func setupUnleash(t *testing.T, opts ...flags.UnleashOption) (*flags.Unleash, *fakeUnleash, unleashBundle) {
	t.Helper()
	b := newUnleashBundle(t)
	srv := newFakeUnleash(t, b.apiKey)
	p := newUnleash(t, srv.URL+"/api", b, opts...)
	requireReady(t, p)
	return p, srv, b
}

func requireReady(t *testing.T, p *flags.Unleash) {
	t.Helper()
	select {
	case <-p.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the provider did not fetch the flags within 10s")
	}
	require.True(t, p.Up())
}

func requireNoKeyInLogs(t *testing.T, logs *observer.ObservedLogs, apiKey string) {
	t.Helper()
	for _, e := range logs.All() {
		require.NotContains(t, e.Message, apiKey)
		for k, v := range e.ContextMap() {
			require.NotContains(t, fmt.Sprint(v), apiKey, k)
		}
	}
}

func TestUnleash_onOffFromServer(t *testing.T) {
	t.Parallel()
	p, srv, _ := setupUnleash(t)
	scope := flags.Scope{CompanyID: uuid.New(), WorkspaceID: uuid.New()}
	require.True(t, p.Enabled(t.Context(), globalFlag, scope), "enabled with the default strategy")
	require.True(t, p.Enabled(t.Context(), globalFlag, flags.Scope{}), "no tenant")
	require.False(t, p.Enabled(t.Context(), onFlag, scope), "disabled on the server, on by default")
	require.Zero(t, srv.unauthorized.Load())
}

func TestUnleash_constraintOnCompany(t *testing.T) {
	t.Parallel()
	p, _, _ := setupUnleash(t)
	ws := uuid.New()
	require.True(t, p.Enabled(t.Context(), companyFlag, flags.Scope{CompanyID: targetCompany, WorkspaceID: ws}))
	require.True(t, p.Enabled(t.Context(), companyFlag, flags.Scope{CompanyID: targetCompany}))
	require.False(t, p.Enabled(t.Context(), companyFlag, flags.Scope{CompanyID: uuid.New(), WorkspaceID: ws}))
	require.False(t, p.Enabled(t.Context(), companyFlag, flags.Scope{WorkspaceID: ws}))
}

func TestUnleash_unknownToServerHasDefault(t *testing.T) {
	t.Parallel()
	p, _, _ := setupUnleash(t)
	scope := flags.Scope{CompanyID: targetCompany, WorkspaceID: uuid.New()}
	require.True(t, p.Enabled(t.Context(), absentFlag, scope))
	require.False(t, p.Enabled(t.Context(), workspaceFlag, scope))
	require.False(t, p.Enabled(t.Context(), flags.NewFlag("fixture_not_registered"), scope), "not in the registry")
}

func TestUnleash_serverDownFromStart(t *testing.T) {
	t.Parallel()
	b := newUnleashBundle(t)
	srv := newFakeUnleash(t, b.apiKey)
	url := srv.URL + "/api"
	srv.Close()
	p := newUnleash(t, url, b)
	scope := flags.Scope{CompanyID: targetCompany, WorkspaceID: uuid.New()}
	for deadline := time.Now().Add(10 * time.Second); fallbacks(t, b.metrics, flags.FallbackDefault) == 0; runtime.Gosched() {
		require.True(t, time.Now().Before(deadline), "the failed fetch was not seen within 10s")
		require.False(t, p.Enabled(t.Context(), globalFlag, scope))
	}
	require.False(t, p.Up())
	require.False(t, p.Enabled(t.Context(), globalFlag, scope))
	require.False(t, p.Enabled(t.Context(), companyFlag, scope))
	require.True(t, p.Enabled(t.Context(), onFlag, scope))
	require.True(t, p.Enabled(t.Context(), absentFlag, scope))
	require.NotZero(t, b.logs.FilterLevelExact(zapcore.WarnLevel).Len(), "a warning is logged")
}

func TestUnleash_neverLogsAPIKey(t *testing.T) {
	t.Parallel()
	b := newUnleashBundle(t)
	srv := newFakeUnleash(t, "another key")
	p := newUnleash(t, srv.URL+"/api", b)
	for deadline := time.Now().Add(10 * time.Second); b.logs.FilterLevelExact(zapcore.WarnLevel).Len() == 0; runtime.Gosched() {
		require.True(t, time.Now().Before(deadline), "the refused requests were not logged within 10s")
	}
	require.NotZero(t, srv.unauthorized.Load())
	require.False(t, p.Enabled(t.Context(), globalFlag, flags.Scope{}))
	requireNoKeyInLogs(t, b.logs, b.apiKey)
}

func TestNewUnleash_rejects(t *testing.T) {
	t.Parallel()
	log := zap.NewNop()
	_, err := flags.NewUnleash("", "key", "herald", nil, log)
	require.ErrorIs(t, err, flags.ErrInvalidUnleashConfig)
	_, err = flags.NewUnleash("http://127.0.0.1:1/api", "", "herald", nil, log)
	require.ErrorIs(t, err, flags.ErrInvalidUnleashConfig)
	_, err = flags.NewUnleash("http://127.0.0.1:1/api", "key", "herald", nil, log, flags.WithUnleashRefreshInterval(0))
	require.ErrorIs(t, err, flags.ErrInvalidUnleashConfig)
}

// fallbacks is herald_flags_fallback_total{reason}.
func fallbacks(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "herald_flags_fallback_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestUnleash_serverGoesDownKeepsLastKnown(t *testing.T) {
	t.Parallel()
	p, srv, b := setupUnleash(t, flags.WithUnleashRefreshInterval(20*time.Millisecond))
	srv.Close()
	scope := flags.Scope{CompanyID: targetCompany, WorkspaceID: uuid.New()}
	for deadline := time.Now().Add(10 * time.Second); fallbacks(t, b.metrics, flags.FallbackLastKnown) == 0; runtime.Gosched() {
		require.True(t, time.Now().Before(deadline), "the failed fetch was not seen within 10s")
		require.True(t, p.Enabled(t.Context(), globalFlag, scope))
	}
	require.False(t, p.Up())
	require.True(t, p.Enabled(t.Context(), globalFlag, scope))
	require.True(t, p.Enabled(t.Context(), companyFlag, scope))
	require.False(t, p.Enabled(t.Context(), onFlag, scope))
}

func TestUnleash_startsFromBackupWhenServerDown(t *testing.T) {
	t.Parallel()
	first, srv, b := setupUnleash(t)
	require.NoError(t, first.Close())
	srv.Close()

	b.metrics = prometheus.NewRegistry()
	p := newUnleash(t, srv.URL+"/api", b)
	scope := flags.Scope{CompanyID: targetCompany, WorkspaceID: uuid.New()}
	require.True(t, p.Enabled(t.Context(), globalFlag, scope), "as last fetched")
	require.True(t, p.Enabled(t.Context(), companyFlag, scope))
	require.False(t, p.Enabled(t.Context(), onFlag, scope))
	require.True(t, p.Enabled(t.Context(), absentFlag, scope), "unknown to the server")
	for deadline := time.Now().Add(10 * time.Second); fallbacks(t, b.metrics, flags.FallbackLastKnown) == 0; runtime.Gosched() {
		require.True(t, time.Now().Before(deadline), "the failed fetch was not seen within 10s")
		require.True(t, p.Enabled(t.Context(), globalFlag, scope))
	}
}
