package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error codes of the REST error shape that do not come from a gRPC code.
const (
	CodeMethodNotAllowed = "method_not_allowed"
	CodeRequestTooLarge  = "request_too_large"
	CodeOriginNotAllowed = "origin_not_allowed"
)

// Error is the body of every REST error response:
//
//	{"code":"not_found","message":"recipient not found","details":[],"request_id":"..."}
type Error struct {
	// Code is a stable snake_case name clients can switch on.
	Code string `json:"code"`
	// Message says what went wrong and, for errors the client caused, what to fix.
	Message string `json:"message"`
	// Details carries structured information such as the fields that failed validation;
	// always a list, possibly empty.
	Details []any `json:"details"`
	// RequestID identifies the request in the logs.
	RequestID string `json:"request_id"`
}

// FieldViolation is the detail entry of a field that failed validation.
type FieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

// Mapping is how one gRPC code is presented to REST clients.
type Mapping struct {
	// Status is the HTTP status code.
	Status int
	// Code is the snake_case error code.
	Code string
	// Message replaces the service's message when it is not empty: for server-side failures
	// the service's text may describe internals, so clients get a generic one.
	Message string
}

// Public reports whether the service's own message is shown to the client.
func (m Mapping) Public() bool { return m.Message == "" }

// MapCode returns how the gRPC code c is presented to REST clients. Errors the client can
// fix keep the service's message; server-side failures get a generic one.
func MapCode(c codes.Code) Mapping {
	switch c {
	case codes.InvalidArgument:
		return Mapping{Status: http.StatusBadRequest, Code: "invalid_argument"}
	case codes.FailedPrecondition:
		return Mapping{Status: http.StatusBadRequest, Code: "failed_precondition"}
	case codes.OutOfRange:
		return Mapping{Status: http.StatusBadRequest, Code: "out_of_range"}
	case codes.Unauthenticated:
		return Mapping{Status: http.StatusUnauthorized, Code: "unauthenticated"}
	case codes.PermissionDenied:
		return Mapping{Status: http.StatusForbidden, Code: "permission_denied"}
	case codes.NotFound:
		return Mapping{Status: http.StatusNotFound, Code: "not_found"}
	case codes.AlreadyExists:
		return Mapping{Status: http.StatusConflict, Code: "already_exists"}
	case codes.Aborted:
		return Mapping{Status: http.StatusConflict, Code: "aborted"}
	case codes.ResourceExhausted:
		return Mapping{Status: http.StatusTooManyRequests, Code: "resource_exhausted"}
	case codes.Canceled:
		// 499 is the de-facto status of a request the client gave up on.
		return Mapping{Status: 499, Code: "canceled", Message: "the request was canceled"}
	case codes.Unimplemented:
		return Mapping{Status: http.StatusNotImplemented, Code: "unimplemented", Message: "this operation is not implemented"}
	case codes.Unavailable:
		return Mapping{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the service is temporarily unavailable, retry later"}
	case codes.DeadlineExceeded:
		return Mapping{Status: http.StatusGatewayTimeout, Code: "deadline_exceeded", Message: "the request timed out"}
	default:
		// Internal, Unknown, DataLoss and anything unexpected.
		return Mapping{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
}

// codeForHTTPStatus names the error of a bare HTTP status (routing failures).
func codeForHTTPStatus(s int) string {
	switch s {
	case http.StatusBadRequest:
		return "invalid_argument"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return CodeRequestTooLarge
	default:
		if s >= 500 {
			return "internal"
		}
		return "invalid_argument"
	}
}

// WriteError writes the error shape with status and the request's id.
func WriteError(w http.ResponseWriter, r *http.Request, httpStatus int, code, message string, details []any) {
	if details == nil {
		details = []any{}
	}
	body, err := json.Marshal(Error{Code: code, Message: message, Details: details, RequestID: RequestID(r.Context())})
	if err != nil {
		// Nothing in Error can fail to marshal but a detail; drop them.
		body, _ = json.Marshal(Error{Code: code, Message: message, Details: []any{}, RequestID: RequestID(r.Context())})
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(append(body, '\n'))
}

// writeTooLarge answers a request whose body is over limit bytes.
func writeTooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	WriteError(w, r, http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
		"the request body is larger than "+strconv.FormatInt(limit, 10)+" bytes", nil)
}

// publicDetails keeps the details a client can act on: field violations, and the metadata of
// an ErrorInfo, whose reason then names the error code (PLAN_LIMIT_EXCEEDED becomes code
// "plan_limit_exceeded" with details [{"limit":"seats","max":5}]). code is the error code to
// answer with.
func publicDetails(st *status.Status, code string) (string, []any) {
	out := []any{}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				out = append(out, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		case *errdetails.ErrorInfo:
			if d.GetReason() != "" {
				code = strings.ToLower(d.GetReason())
			}
			if md := d.GetMetadata(); len(md) > 0 {
				detail := make(map[string]any, len(md))
				for k, v := range md {
					// Numbers travel as strings in ErrorInfo; clients get them as numbers.
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						detail[k] = n
					} else {
						detail[k] = v
					}
				}
				out = append(out, detail)
			}
		}
	}
	return code, out
}

// retryAfter returns the delay of a RetryInfo detail.
func retryAfter(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// WriteStatus returns a function that writes an error (a gRPC status, or any error, which is
// then internal) in the error shape, as the API's error handler does.
func WriteStatus(log *zap.Logger, bodyLimit int64) func(http.ResponseWriter, *http.Request, error) {
	h := errorHandler(log, bodyLimit)
	return func(w http.ResponseWriter, r *http.Request, err error) {
		h(r.Context(), nil, nil, w, r, err)
	}
}

// errorHandler is the grpc-gateway error handler: every error of a proxied call, a request
// decoding failure or a malformed path becomes the error shape.
func errorHandler(log *zap.Logger, bodyLimit int64) runtime.ErrorHandlerFunc {
	return func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		if bodyTooLarge(r.Context()) {
			writeTooLarge(w, r, bodyLimitOf(r.Context(), bodyLimit))
			return
		}
		var hs *runtime.HTTPStatusError
		if errors.As(err, &hs) {
			st := status.Convert(hs.Err)
			WriteError(w, r, hs.HTTPStatus, codeForHTTPStatus(hs.HTTPStatus), statusMessage(hs.HTTPStatus, st), nil)
			return
		}
		st := status.Convert(err)
		m := MapCode(st.Code())
		if !m.Public() {
			if m.Status >= http.StatusInternalServerError {
				log.Error("upstream call failed",
					zap.String("request_id", RequestID(r.Context())),
					zap.String("grpc_code", st.Code().String()),
					zap.String("error", st.Message()))
			}
			WriteError(w, r, m.Status, m.Code, m.Message, nil)
			return
		}
		if st.Code() == codes.Unauthenticated {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		}
		if d, ok := retryAfter(st); ok {
			w.Header().Set(HeaderRetryAfter, retryAfterSeconds(d))
		}
		code, details := publicDetails(st, m.Code)
		WriteError(w, r, m.Status, code, st.Message(), details)
	}
}

// statusMessage keeps the message of a client error, never of a server one.
func statusMessage(httpStatus int, st *status.Status) string {
	if httpStatus >= http.StatusInternalServerError || st.Message() == "" {
		return http.StatusText(httpStatus)
	}
	return st.Message()
}

// routingErrorHandler answers requests no route matches: 404 for an unknown path, 405 for a
// known path with another method.
func routingErrorHandler() runtime.RoutingErrorHandlerFunc {
	return func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
		switch httpStatus {
		case http.StatusNotFound:
			WriteError(w, r, http.StatusNotFound, "not_found", "no route matches "+r.Method+" "+r.URL.Path, nil)
		case http.StatusMethodNotAllowed:
			WriteError(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+r.Method+" is not allowed on this path", nil)
		case http.StatusBadRequest:
			WriteError(w, r, http.StatusBadRequest, "invalid_argument", "the request path is malformed", nil)
		default:
			WriteError(w, r, httpStatus, codeForHTTPStatus(httpStatus), http.StatusText(httpStatus), nil)
		}
	}
}

// writeUnauthenticated answers a /v1 request without a valid bearer token.
func writeUnauthenticated(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
	WriteError(w, r, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required in the Authorization header", nil)
}
