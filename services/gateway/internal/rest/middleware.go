package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds a client-supplied request id.
const maxRequestIDLen = 64

// routeUnmatched labels requests answered before a route matched (a missing token, an unknown
// path), so metrics never carry raw paths.
const routeUnmatched = "unmatched"

// requestState is what the middlewares of one request share. The handlers of a request run on
// one goroutine, but the body may be read by another (a proxied stream), hence the atomics.
type requestState struct {
	id       string
	route    atomic.Pointer[string]
	tooLarge atomic.Bool
	// bodyLimit is the body limit of the request's route, once the limit middleware ran.
	bodyLimit atomic.Int64
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	s, _ := ctx.Value(stateKey{}).(*requestState)
	return s
}

// RequestID returns the id of the request ctx belongs to, or "" outside a request.
func RequestID(ctx context.Context) string {
	if s := stateFrom(ctx); s != nil {
		return s.id
	}
	return ""
}

// route returns the matched route pattern of the request ctx belongs to.
func route(ctx context.Context) string {
	if s := stateFrom(ctx); s != nil {
		if p := s.route.Load(); p != nil {
			return *p
		}
	}
	return routeUnmatched
}

func bodyTooLarge(ctx context.Context) bool {
	s := stateFrom(ctx)
	return s != nil && s.tooLarge.Load()
}

// bodyLimitOf returns the body limit applied to the request ctx belongs to, or def when the
// limit middleware has not run.
func bodyLimitOf(ctx context.Context, def int64) int64 {
	if s := stateFrom(ctx); s != nil {
		if l := s.bodyLimit.Load(); l > 0 {
			return l
		}
	}
	return def
}

// validRequestID accepts ids a client may choose: 1 to 64 characters of [A-Za-z0-9-_].
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withRequestID gives every request an id (the client's when it is sane), echoes it in the
// response and makes it available to the handlers and logs.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(HeaderRequestID, id)
		st := &requestState{id: id}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	})
}

// recorder remembers the status a handler wrote.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (rw *recorder) WriteHeader(code int) {
	if !rw.wroteHeader {
		rw.status = code
		rw.wroteHeader = true
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.status = http.StatusOK
		rw.wroteHeader = true
	}
	return rw.ResponseWriter.Write(b)
}

// Flush lets streamed responses through.
func (rw *recorder) Flush() {
	if f, ok := rw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// withAccessLog logs one line per request: method, route pattern, status, duration and request
// id. Headers (the Authorization header above all) and bodies are never logged.
func withAccessLog(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			log.Info("http request",
				zap.String("method", r.Method),
				zap.String("route", route(r.Context())),
				zap.Int("status", rec.status),
				zap.Duration("duration", time.Since(start)),
				zap.String("request_id", RequestID(r.Context())))
		}()
		next.ServeHTTP(rec, r)
	})
}

// withRecovery turns a panic into a logged error and a 500 in the error shape.
func withRecovery(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			// net/http's own signal to abort a response is passed on, not reported.
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			log.Error("panic serving request",
				zap.String("request_id", RequestID(r.Context())),
				zap.String("route", route(r.Context())),
				zap.Any("panic", v),
				zap.ByteString("stack", debug.Stack()))
			if !rec.wroteHeader {
				WriteError(rec, r, http.StatusInternalServerError, "internal", "internal error", nil)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// limitedBody marks the request when its body goes over the limit, so the error handler can
// answer 413 rather than the decoding error the proxy reports.
type limitedBody struct {
	io.ReadCloser
	st *requestState
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if err != nil && errors.As(err, &mbe) && b.st != nil {
		b.st.tooLarge.Store(true)
	}
	return n, err
}

// bodyLimits are the request body limits of the API: def on every route, except the routes
// with a limit of their own.
type bodyLimits struct {
	def    int64
	routes []routeLimit
}

// routeLimit is the body limit of one route.
type routeLimit struct {
	method string
	// segments of the path template; a segment holding a {variable} matches any non-empty
	// text between the segment's literal prefix and suffix ("{recipient_id}:updateStatus").
	segments []string
	limit    int64
}

// newBodyLimits reads the per-route table: "METHOD /path/template" → limit. A key that is not
// of that form names no route and is ignored (the gateway's tests check every key against the
// route table).
func newBodyLimits(def int64, routes map[string]int64) bodyLimits {
	bl := bodyLimits{def: def}
	for key, limit := range routes {
		method, path, ok := strings.Cut(key, " ")
		if !ok || !strings.HasPrefix(path, "/") || limit <= 0 {
			continue
		}
		bl.routes = append(bl.routes, routeLimit{method: method, segments: strings.Split(path[1:], "/"), limit: limit})
	}
	return bl
}

// of returns the limit of the request's route. It runs before the API's router, so it matches
// the path against the templates itself; a path written in a way the template does not match
// gets the default, never a larger limit than its route's.
func (bl bodyLimits) of(r *http.Request) int64 {
	if len(bl.routes) == 0 || !strings.HasPrefix(r.URL.Path, "/") {
		return bl.def
	}
	segs := strings.Split(r.URL.Path[1:], "/")
	for _, rl := range bl.routes {
		if rl.method == r.Method && matchSegments(rl.segments, segs) {
			return rl.limit
		}
	}
	return bl.def
}

// matchSegments reports whether the path segments segs match the template segments tmpl.
func matchSegments(tmpl, segs []string) bool {
	if len(tmpl) != len(segs) {
		return false
	}
	for i, t := range tmpl {
		open, closing := strings.IndexByte(t, '{'), strings.IndexByte(t, '}')
		if open < 0 || closing < open {
			if t != segs[i] {
				return false
			}
			continue
		}
		prefix, suffix, s := t[:open], t[closing+1:], segs[i]
		if len(s) <= len(prefix)+len(suffix) || !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, suffix) {
			return false
		}
	}
	return true
}

// withBodyLimit caps request bodies at the limit of their route: a declared length over it is
// refused at once, and a body that turns out longer fails on read.
func withBodyLimit(limits bodyLimits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := limits.of(r)
		st := stateFrom(r.Context())
		if st != nil {
			st.bodyLimit.Store(limit)
		}
		if r.ContentLength > limit {
			writeTooLarge(w, r, limit)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit), st: st}
		}
		next.ServeHTTP(w, r)
	})
}

// CORS settings of the public API.
const (
	corsMethods = "GET, POST, PUT, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, " + HeaderRequestID
)

// corsExposed are the response headers a browser lets the front end read.
const corsExposed = HeaderRequestID + ", " + HeaderRetryAfter + ", " + HeaderRateLimitRemaining

// corsMaxAge is how long a browser may cache a preflight answer.
const corsMaxAge = 10 * time.Minute

// withCORS lets the front end at origin (and no other) call the API from a browser, and
// answers its preflight requests, which carry no token.
func withCORS(origin string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		got := r.Header.Get("Origin")
		if got == "" {
			next.ServeHTTP(w, r)
			return
		}
		allowed := got == origin
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !allowed {
				WriteError(w, r, http.StatusForbidden, CodeOriginNotAllowed, "cross-origin requests are allowed only from the Herald front end", nil)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(corsMaxAge.Seconds())))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", corsExposed)
		}
		next.ServeHTTP(w, r)
	})
}

// withTimeout bounds the work of one request, so a slow service turns into a 504 rather than
// a connection held open.
func withTimeout(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// recordRoute is the proxy middleware that records the matched route pattern, with its
// variables but never their values, for logs and metrics.
func recordRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := runtime.HTTPPattern(r.Context()); ok {
			if st := stateFrom(r.Context()); st != nil {
				pat := strings.ReplaceAll(p.String(), "=*}", "}")
				st.route.Store(&pat)
			}
		}
		next(w, r, params)
	}
}

// requestIDMetadata passes the request id to the services, so their logs can be joined with
// the gateway's.
func requestIDMetadata(ctx context.Context, _ *http.Request) metadata.MD {
	if id := RequestID(ctx); id != "" {
		return metadata.Pairs("x-request-id", id)
	}
	return nil
}
