package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMapCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code   codes.Code
		status int
		name   string
		public bool
	}{
		{codes.InvalidArgument, http.StatusBadRequest, "invalid_argument", true},
		{codes.FailedPrecondition, http.StatusBadRequest, "failed_precondition", true},
		{codes.OutOfRange, http.StatusBadRequest, "out_of_range", true},
		{codes.Unauthenticated, http.StatusUnauthorized, "unauthenticated", true},
		{codes.PermissionDenied, http.StatusForbidden, "permission_denied", true},
		{codes.NotFound, http.StatusNotFound, "not_found", true},
		{codes.AlreadyExists, http.StatusConflict, "already_exists", true},
		{codes.Aborted, http.StatusConflict, "aborted", true},
		{codes.ResourceExhausted, http.StatusTooManyRequests, "resource_exhausted", true},
		{codes.Canceled, 499, "canceled", false},
		{codes.Unimplemented, http.StatusNotImplemented, "unimplemented", false},
		{codes.Unavailable, http.StatusServiceUnavailable, "unavailable", false},
		{codes.DeadlineExceeded, http.StatusGatewayTimeout, "deadline_exceeded", false},
		{codes.Internal, http.StatusInternalServerError, "internal", false},
		{codes.Unknown, http.StatusInternalServerError, "internal", false},
		{codes.DataLoss, http.StatusInternalServerError, "internal", false},
		{codes.Code(99), http.StatusInternalServerError, "internal", false},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			t.Parallel()
			m := MapCode(tt.code)
			require.Equal(t, tt.status, m.Status)
			require.Equal(t, tt.name, m.Code)
			require.Equal(t, tt.public, m.Public())
			if !tt.public {
				require.NotEmpty(t, m.Message)
			}
		})
	}
}

// serveError runs the gateway error handler for err inside a request that has an id.
func serveError(t *testing.T, err error, opts ...func(*requestState)) (*httptest.ResponseRecorder, Error, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	handle := errorHandler(zap.New(core), 1024)
	h := withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, o := range opts {
			o(stateFrom(r.Context()))
		}
		handle(r.Context(), nil, nil, w, r, err)
	}))
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/x", nil)
	req.Header.Set(HeaderRequestID, "req-1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body Error
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	return rec, body, logs
}

func TestErrorHandlerClientError(t *testing.T) {
	t.Parallel()
	rec, body, _ := serveError(t, status.Error(codes.NotFound, "recipient not found"))
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Equal(t, Error{Code: "not_found", Message: "recipient not found", Details: []any{}, RequestID: "req-1"}, body)
	require.Contains(t, rec.Body.String(), `"details":[]`)
}

func TestErrorHandlerFieldViolations(t *testing.T) {
	t.Parallel()
	st, err := status.New(codes.InvalidArgument, "email is not a valid address").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "email", Description: "must be an email address"}},
	})
	require.NoError(t, err)
	rec, body, _ := serveError(t, st.Err())
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, "invalid_argument", body.Code)
	require.Equal(t, "email is not a valid address", body.Message)
	require.Equal(t, []any{map[string]any{"field": "email", "description": "must be an email address"}}, body.Details)
}

func TestErrorHandlerErrorInfo(t *testing.T) {
	t.Parallel()
	st, err := status.New(codes.FailedPrecondition, "the plan allows at most 5 seats").WithDetails(&errdetails.ErrorInfo{
		Reason: "PLAN_LIMIT_EXCEEDED", Domain: "herald", Metadata: map[string]string{"limit": "seats", "max": "5"},
	})
	require.NoError(t, err)
	rec, body, _ := serveError(t, st.Err())
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, "plan_limit_exceeded", body.Code, "the reason names the code clients act on")
	require.Equal(t, []any{map[string]any{"limit": "seats", "max": float64(5)}}, body.Details)
	require.Contains(t, rec.Body.String(), `"max":5`, "numbers stay numbers")
}

func TestErrorHandlerRetryInfo(t *testing.T) {
	t.Parallel()
	st, err := status.New(codes.ResourceExhausted, "too many attempts").WithDetails(&errdetails.RetryInfo{
		RetryDelay: durationpb.New(1500 * time.Millisecond),
	})
	require.NoError(t, err)
	rec, body, _ := serveError(t, st.Err())
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "resource_exhausted", body.Code)
	require.Equal(t, "2", rec.Header().Get("Retry-After"), "seconds, rounded up")
}

func TestErrorHandlerHidesServerErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		status.Error(codes.Internal, `pq: relation "recipient.secret" does not exist`),
		status.Error(codes.Unavailable, "connection error: dial tcp 10.0.0.7:50052: connect: connection refused"),
		errors.New("plain error with internals"),
	} {
		rec, body, logs := serveError(t, err)
		require.GreaterOrEqual(t, rec.Code, 500)
		require.NotContains(t, rec.Body.String(), "secret")
		require.NotContains(t, rec.Body.String(), "10.0.0.7")
		require.NotContains(t, rec.Body.String(), "internals")
		require.Equal(t, "req-1", body.RequestID)
		// The real cause is in the logs, joined by the request id.
		entries := logs.FilterMessage("upstream call failed").All()
		require.Len(t, entries, 1)
		require.Equal(t, "req-1", entries[0].ContextMap()["request_id"])
	}
}

func TestErrorHandlerUnauthenticated(t *testing.T) {
	t.Parallel()
	rec, body, _ := serveError(t, status.Error(codes.Unauthenticated, "invalid bearer token"))
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Equal(t, "unauthenticated", body.Code)
	require.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
}

func TestErrorHandlerBodyTooLarge(t *testing.T) {
	t.Parallel()
	// The proxy reports an oversized body as a decoding error; the marker turns it into 413.
	rec, body, _ := serveError(t, status.Error(codes.InvalidArgument, "http: request body too large"),
		func(s *requestState) { s.tooLarge.Store(true) })
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	require.Equal(t, CodeRequestTooLarge, body.Code)
}

func TestErrorHandlerHTTPStatusError(t *testing.T) {
	t.Parallel()
	rec, body, _ := serveError(t, &runtime.HTTPStatusError{HTTPStatus: http.StatusBadRequest, Err: errors.New("malformed escape")})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, "invalid_argument", body.Code)
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	mux := NewAPIMux(zap.NewNop(), 1024)
	require.NoError(t, mux.HandlePath(http.MethodGet, "/v1/things/{id}", func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
		w.WriteHeader(http.StatusOK)
	}))
	h := withRequestID(mux)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/nothing", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/v1/things/1", http.StatusMethodNotAllowed, CodeMethodNotAllowed},
	}
	for _, tt := range tests {
		req := httptest.NewRequestWithContext(t.Context(), tt.method, tt.path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tt.status, rec.Code, tt.path)
		var body Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		require.Equal(t, tt.code, body.Code)
		require.NotEmpty(t, body.RequestID)
		require.Equal(t, rec.Header().Get(HeaderRequestID), body.RequestID)
	}
}
