package rest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestPublicMux: the routes of Options.Public need no credential and go through request
// id, access log, metrics (labelled with the pattern, never the raw path), the body limit
// and the client address; other paths outside /v1 stay 404 in the error shape.
func TestPublicMux(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.DebugLevel)
	reg := prometheus.NewRegistry()
	public := http.NewServeMux()
	public.HandleFunc("POST /track/thing/{token}", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			WriteError(w, r, http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "too large", nil)
			return
		}
		w.Header().Set("X-Seen-Request-Id", RequestID(r.Context()))
		w.Header().Set("X-Seen-Client", r.Header.Get("X-Client"))
		_, _ = w.Write(b)
	})
	h := NewHandler(Options{
		Log:         zap.New(core),
		Registry:    reg,
		Health:      health.New(nil, nil),
		Auth:        tokenAuth{v: tenancy.NewVerifier(testSecret)},
		FrontendURL: testFrontend,
		BodyLimit:   testLimit,
		OpenAPI:     []byte(`{"swagger":"2.0"}`),
		ClientIP: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Set("X-Client", "resolved")
				next.ServeHTTP(w, r)
			})
		},
		Public: public,
	}, http.NotFoundHandler())
	do := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := do(http.MethodPost, "/track/thing/secret-token-value", "hello")
	require.Equal(t, http.StatusOK, rec.Code, "no credential needed")
	require.Equal(t, "hello", rec.Body.String())
	require.NotEmpty(t, rec.Header().Get(HeaderRequestID))
	require.Equal(t, rec.Header().Get(HeaderRequestID), rec.Header().Get("X-Seen-Request-Id"))
	require.Equal(t, "resolved", rec.Header().Get("X-Seen-Client"))

	rec = do(http.MethodPost, "/track/thing/x", strings.Repeat("x", testLimit+1))
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "the default body limit applies")

	for _, path := range []string{"/track/other/x", "/track/thing", "/nothing"} {
		rec = do(http.MethodPost, path, "")
		require.Equal(t, http.StatusNotFound, rec.Code, path)
		var e Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		require.Equal(t, "not_found", e.Code)
	}
	rec = do(http.MethodGet, "/track/thing/x", "")
	require.Equal(t, http.StatusNotFound, rec.Code, "another method is no route")

	routes := map[string]bool{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
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
	require.Equal(t, map[string]bool{"/track/thing/{token}": true}, routes, "labelled with the pattern only")
	logged := 0
	for _, e := range logs.FilterMessage("http request").All() {
		logged++
		require.Equal(t, "/track/thing/{token}", e.ContextMap()["route"])
		b, err := json.Marshal(e.ContextMap())
		require.NoError(t, err)
		require.NotContains(t, string(b), "secret-token-value", "tokens never reach the logs")
	}
	require.Equal(t, 2, logged)
}
