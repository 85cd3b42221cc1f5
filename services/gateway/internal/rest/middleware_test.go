package rest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	testSecret   = "a-test-secret-that-is-long-enough-for-hs256"
	testFrontend = "https://app.example.com"
	testLimit    = 64
)

// tokenAuth authenticates access tokens; every route needs one.
type tokenAuth struct{ v *tenancy.Verifier }

func (tokenAuth) Public(*http.Request) bool { return false }

func (a tokenAuth) Authenticate(ctx context.Context, tok string) (context.Context, error) {
	p, err := a.v.Verify(tok)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	return tenancy.WithPrincipal(ctx, p), nil
}

// budget allows a fixed number of requests per company.
type budget struct {
	mu   sync.Mutex
	left map[uuid.UUID]int
	size int
}

func (b *budget) Allow(r *http.Request) RateDecision {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok {
		return RateDecision{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	left, seen := b.left[p.CompanyID]
	if !seen {
		left = b.size
	}
	if left == 0 {
		return RateDecision{Applies: true, RetryAfter: 1200 * time.Millisecond}
	}
	b.left[p.CompanyID] = left - 1
	return RateDecision{Applies: true, Allowed: true, Remaining: left - 1}
}

type fixture struct {
	handler http.Handler
	reg     *prometheus.Registry
	logs    *observer.ObservedLogs
	token   string
}

// setup builds the public handler around a proxy mux with three routes: one that echoes the
// body it reads, one that panics and one that fails with NotFound.
func setup(t *testing.T) fixture {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	reg := prometheus.NewRegistry()
	api := NewAPIMux(log, testLimit)
	require.NoError(t, api.HandlePath(http.MethodPost, "/v1/things/{id}", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			// What the generated handlers do with a body they cannot decode.
			runtime.HTTPError(r.Context(), api, &runtime.JSONPb{}, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
			return
		}
		_, _ = w.Write(b)
	}))
	require.NoError(t, api.HandlePath(http.MethodGet, "/v1/things/{id}", func(http.ResponseWriter, *http.Request, map[string]string) {
		panic("boom")
	}))
	require.NoError(t, api.HandlePath(http.MethodGet, "/v1/missing/{id}", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		runtime.HTTPError(r.Context(), api, &runtime.JSONPb{}, w, r, status.Error(codes.NotFound, "thing not found"))
	}))
	h := NewHandler(Options{
		Log:         log,
		Registry:    reg,
		Health:      health.New(nil, nil),
		Auth:        tokenAuth{v: tenancy.NewVerifier(testSecret)},
		Limiter:     &budget{left: map[uuid.UUID]int{}, size: 1000},
		FrontendURL: testFrontend,
		BodyLimit:   testLimit,
		OpenAPI:     []byte(`{"swagger":"2.0"}`),
	}, api)
	tok, err := tenancy.NewSigner(testSecret).Sign("user-1", uuid.New(), tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	return fixture{handler: h, reg: reg, logs: logs, token: tok}
}

func (f fixture) do(t *testing.T, method, path string, body io.Reader, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func (f fixture) auth() map[string]string {
	return map[string]string{"Authorization": "Bearer " + f.token}
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) Error {
	t.Helper()
	var e Error
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	return e
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"sane", "client-id_0123", true},
		{"max length", strings.Repeat("a", 64), true},
		{"too long", strings.Repeat("a", 65), false},
		{"bad characters", "id with spaces", false},
		{"injection", "id\r\nx: y", false},
		{"absent", "", false},
	}
	for _, tt := range tests {
		rec := f.do(t, http.MethodPost, "/v1/things/1", strings.NewReader("{}"),
			map[string]string{"Authorization": "Bearer " + f.token, HeaderRequestID: tt.sent})
		require.Equal(t, http.StatusOK, rec.Code, tt.name)
		got := rec.Header().Get(HeaderRequestID)
		if tt.kept {
			require.Equal(t, tt.sent, got, tt.name)
		} else {
			require.NotEqual(t, tt.sent, got, tt.name)
			require.True(t, validRequestID(got), tt.name)
		}
	}
}

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, hdr := range []map[string]string{
		nil,
		{"Authorization": "Bearer not-a-token"},
		{"Authorization": "Basic dXNlcjpwYXNz"},
	} {
		rec := f.do(t, http.MethodPost, "/v1/things/1", strings.NewReader("{}"), hdr)
		require.Equal(t, http.StatusUnauthorized, rec.Code)
		e := decodeError(t, rec)
		require.Equal(t, "unauthenticated", e.Code)
		require.Equal(t, rec.Header().Get(HeaderRequestID), e.RequestID)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	big := strings.Repeat("x", testLimit+1)

	// A declared length over the limit is refused before the body is read.
	rec := f.do(t, http.MethodPost, "/v1/things/1", strings.NewReader(big), f.auth())
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	require.Equal(t, CodeRequestTooLarge, decodeError(t, rec).Code)

	// A body of unknown length fails when reading crosses the limit.
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/things/1", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+f.token)
	rec = httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	require.Equal(t, CodeRequestTooLarge, decodeError(t, rec).Code)

	// At the limit it passes.
	rec = f.do(t, http.MethodPost, "/v1/things/1", strings.NewReader(big[1:]), f.auth())
	require.Equal(t, http.StatusOK, rec.Code)
}

func TestRecovery(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rec := f.do(t, http.MethodGet, "/v1/things/1", nil, f.auth())
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	e := decodeError(t, rec)
	require.Equal(t, "internal", e.Code)
	require.NotContains(t, rec.Body.String(), "boom")
	require.Len(t, f.logs.FilterMessage("panic serving request").All(), 1)
}

func TestAccessLogAndMetrics(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := "0b6e1c1e-3f0e-4a57-9d11-5b8a4c4f2e10"
	rec := f.do(t, http.MethodGet, "/v1/missing/"+id, nil, map[string]string{
		"Authorization": "Bearer " + f.token, HeaderRequestID: "log-me",
	})
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Equal(t, Error{Code: "not_found", Message: "thing not found", Details: []any{}, RequestID: "log-me"}, decodeError(t, rec))
	f.do(t, http.MethodGet, "/v1/missing/"+id, nil, nil) // unauthenticated

	entries := f.logs.FilterMessage("http request").All()
	require.Len(t, entries, 2)
	fields := entries[0].ContextMap()
	require.Equal(t, "GET", fields["method"])
	require.Equal(t, "/v1/missing/{id}", fields["route"])
	require.EqualValues(t, http.StatusNotFound, fields["status"])
	require.Equal(t, "log-me", fields["request_id"])
	require.Contains(t, fields, "duration")
	for _, e := range f.logs.All() {
		b, err := json.Marshal(e.ContextMap())
		require.NoError(t, err)
		require.NotContains(t, string(b), f.token)
		require.NotContains(t, string(b), id)
	}

	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	routes := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "herald_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					routes[l.GetValue()] = true
				}
			}
		}
	}
	require.Equal(t, map[string]bool{"/v1/missing/{id}": true, routeUnmatched: true}, routes)
}

func TestCORS(t *testing.T) {
	t.Parallel()
	f := setup(t)
	preflight := func(origin string) *httptest.ResponseRecorder {
		return f.do(t, http.MethodOptions, "/v1/things/1", nil, map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type",
		})
	}
	rec := preflight(testFrontend)
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, testFrontend, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Contains(t, rec.Header().Get("Access-Control-Allow-Headers"), "Authorization")
	require.Contains(t, rec.Header().Get("Access-Control-Allow-Methods"), "POST")

	rec = preflight("https://evil.example.com")
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, CodeOriginNotAllowed, decodeError(t, rec).Code)

	hdr := f.auth()
	hdr["Origin"] = testFrontend
	rec = f.do(t, http.MethodPost, "/v1/things/1", strings.NewReader("{}"), hdr)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, testFrontend, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, "X-Request-Id, Retry-After, X-RateLimit-Remaining", rec.Header().Get("Access-Control-Expose-Headers"))

	hdr["Origin"] = "https://evil.example.com"
	rec = f.do(t, http.MethodPost, "/v1/things/1", strings.NewReader("{}"), hdr)
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
}

func TestPublicRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rec := f.do(t, http.MethodGet, "/openapi.json", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"swagger":"2.0"}`, rec.Body.String())

	rec = f.do(t, http.MethodGet, "/health/live", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)

	rec = f.do(t, http.MethodGet, "/nowhere", nil, nil)
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Equal(t, "not_found", decodeError(t, rec).Code)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	h := NewHandler(Options{
		Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Health: health.New(nil, nil),
		Auth:        tokenAuth{v: tenancy.NewVerifier(testSecret)},
		Limiter:     &budget{left: map[uuid.UUID]int{}, size: 2},
		FrontendURL: testFrontend, BodyLimit: testLimit,
	}, http.NotFoundHandler())
	f.handler = h
	for want := 1; want >= 0; want-- {
		rec := f.do(t, http.MethodGet, "/v1/anything", nil, f.auth())
		require.Equal(t, http.StatusNotFound, rec.Code, "let through")
		require.Equal(t, strconv.Itoa(want), rec.Header().Get(HeaderRateLimitRemaining))
	}
	rec := f.do(t, http.MethodGet, "/v1/anything", nil, f.auth())
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "2", rec.Header().Get(HeaderRetryAfter), "whole seconds, rounded up")
	require.Equal(t, "0", rec.Header().Get(HeaderRateLimitRemaining))
	require.Equal(t, "resource_exhausted", decodeError(t, rec).Code)

	// Requests refused before authentication are not metered.
	rec = f.do(t, http.MethodGet, "/v1/anything", nil, nil)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Empty(t, rec.Header().Get(HeaderRateLimitRemaining))
}
