package rest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// bulkLimit is the limit of the bulk route in TestRouteBodyLimits, above testLimit.
const bulkLimit = 4 * testLimit

// setupRouteLimits builds the public handler with two echoing routes: /v1/things/{id} under
// the default limit and /v1/things/{id}:bulk with a limit of its own.
func setupRouteLimits(t *testing.T) (http.Handler, string) {
	t.Helper()
	log := zap.NewNop()
	api := NewAPIMux(log, testLimit)
	echo := func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			runtime.HTTPError(r.Context(), api, &runtime.JSONPb{}, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
			return
		}
		_, _ = w.Write(b)
	}
	require.NoError(t, api.HandlePath(http.MethodPost, "/v1/things/{id}", echo))
	require.NoError(t, api.HandlePath(http.MethodPost, "/v1/things/{id}:bulk", echo))
	h := NewHandler(Options{
		Log:         log,
		Registry:    prometheus.NewRegistry(),
		Health:      health.New(nil, nil),
		Auth:        tokenAuth{v: tenancy.NewVerifier(testSecret)},
		FrontendURL: testFrontend,
		BodyLimit:   testLimit,
		RouteBodyLimits: map[string]int64{
			"POST /v1/things/{id}:bulk": bulkLimit,
			"not a route":               1,
		},
	}, api)
	tok, err := tenancy.NewSigner(testSecret).Sign("user-1", uuid.New(), tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	return h, tok
}

func TestRouteBodyLimits(t *testing.T) {
	t.Parallel()
	h, tok := setupRouteLimits(t)
	send := func(path, body string, knownLength bool) *httptest.ResponseRecorder {
		var rd io.Reader = strings.NewReader(body)
		if !knownLength {
			rd = io.MultiReader(rd)
		}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, rd)
		if !knownLength {
			req.ContentLength = -1
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	overDefault := strings.Repeat("x", 2*testLimit)
	for _, known := range []bool{true, false} {
		// Over the default but under the route's own limit: the bulk route takes it, the
		// other route refuses it.
		rec := send("/v1/things/1:bulk", overDefault, known)
		require.Equal(t, http.StatusOK, rec.Code, "known length %v: %s", known, rec.Body)
		require.Equal(t, overDefault, rec.Body.String())

		rec = send("/v1/things/1", overDefault, known)
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "known length %v", known)
		e := decodeError(t, rec)
		require.Equal(t, CodeRequestTooLarge, e.Code)
		require.Equal(t, "the request body is larger than 64 bytes", e.Message)

		// Over the route's own limit.
		rec = send("/v1/things/1:bulk", strings.Repeat("x", bulkLimit+1), known)
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "known length %v", known)
		e = decodeError(t, rec)
		require.Equal(t, CodeRequestTooLarge, e.Code)
		require.Equal(t, "the request body is larger than 256 bytes", e.Message)
	}
	// At the route's limit it passes.
	rec := send("/v1/things/1:bulk", strings.Repeat("x", bulkLimit), true)
	require.Equal(t, http.StatusOK, rec.Code)
}

func TestBodyLimitsMatchTemplates(t *testing.T) {
	t.Parallel()
	bl := newBodyLimits(10, map[string]int64{
		"POST /v1/workspaces/{workspace_id}/domains/{domain_id}/events:batch":       100,
		"POST /v1/workspaces/{workspace_id}/recipients/{recipient_id}:updateStatus": 200,
		"PUT /v1/files/{name}.csv":     300,
		"POST without-a-leading-slash": 400,
		"POST /v1/negative":            -1,
	})
	tests := []struct {
		method, path string
		want         int64
	}{
		{http.MethodPost, "/v1/workspaces/w1/domains/d1/events:batch", 100},
		{http.MethodPut, "/v1/workspaces/w1/domains/d1/events:batch", 10},
		{http.MethodPost, "/v1/workspaces/w1/domains/d1/events:batch/", 10},
		{http.MethodPost, "/v1/workspaces/w1/domains/d1/events", 10},
		{http.MethodPost, "/v1/workspaces/w1/domains//events:batch", 10},
		{http.MethodPost, "/v1/workspaces/w1/domains/d1/x/events:batch", 10},
		{http.MethodPost, "/v1/workspaces/w1/recipients/r1:updateStatus", 200},
		{http.MethodPost, "/v1/workspaces/w1/recipients/:updateStatus", 10},
		{http.MethodPost, "/v1/workspaces/w1/recipients/r1", 10},
		{http.MethodPut, "/v1/files/report.csv", 300},
		{http.MethodPut, "/v1/files/.csv", 10},
		{http.MethodPost, "without-a-leading-slash", 10},
		{http.MethodPost, "/v1/negative", 10},
	}
	for _, tt := range tests {
		r := httptest.NewRequestWithContext(t.Context(), tt.method, "http://gateway/", nil)
		r.URL.Path = tt.path
		require.Equal(t, tt.want, bl.of(r), "%s %s", tt.method, tt.path)
	}
}
