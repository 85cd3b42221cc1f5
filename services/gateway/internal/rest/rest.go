// Package rest is the gateway's public HTTP surface: the health endpoints, the OpenAPI
// document, and the /v1 REST API that grpc-gateway serves (the identity service in process,
// the others proxied to the internal gRPC services) behind request ids, access logs, panic
// recovery, RED metrics, body limits (a default, and per route where a route needs its own),
// CORS for the front end, bearer-credential authentication and a per-company rate limit.
// Every error leaves in one JSON shape (Error).
package rest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Time limits of the public server. RequestTimeout bounds the calls to the services;
// WriteTimeout leaves room to write the answer after it.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	RequestTimeout    = 30 * time.Second
	WriteTimeout      = RequestTimeout + 5*time.Second
	IdleTimeout       = 2 * time.Minute
	// MaxHeaderBytes is far above any legitimate header set (a bearer token is well under 2 KiB).
	MaxHeaderBytes = 64 << 10
)

// NewAPIMux returns the grpc-gateway mux of the /v1 API: snake_case JSON (proto field names),
// unset fields omitted, unknown request fields rejected, and every error in the error shape.
// mws run after the route matched, in order (authorization goes there). Register the
// services' handlers on it, then pass it to NewHandler.
func NewAPIMux(log *zap.Logger, bodyLimit int64, mws ...runtime.Middleware) *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonPb{&runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithErrorHandler(errorHandler(log, bodyLimit)),
		runtime.WithRoutingErrorHandler(routingErrorHandler()),
		runtime.WithMiddlewares(append([]runtime.Middleware{recordRoute}, mws...)...),
		runtime.WithMetadata(requestIDMetadata),
		// Clients choose the method; a header must not change it behind the route table.
		runtime.WithDisableHTTPMethodOverride(),
	)
}

// jsonPb is runtime.JSONPb with a decoder that parses a request body into a message once.
// JSONPb's own decoder first reads the body's JSON value with encoding/json into a
// json.RawMessage and then has protojson parse that again: on batches of events that first
// pass was a third of the gateway's CPU time. The body is read whole either way (bounded by
// the route's body limit). Unlike JSONPb's, this decoder refuses anything after the message
// (JSONPb ignored it); an empty body is io.EOF, as JSONPb's, which the handlers read as an
// empty message. Targets that are not messages (a field of a message) go to JSONPb's decoder.
type jsonPb struct{ *runtime.JSONPb }

// NewDecoder implements runtime.Marshaler.
func (m jsonPb) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return m.JSONPb.NewDecoder(r).Decode(v)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF
		}
		return m.UnmarshalOptions.Unmarshal(data, msg)
	})
}

// Authenticator checks the credentials of /v1 requests.
type Authenticator interface {
	// Public reports whether the request's route needs no credentials.
	Public(r *http.Request) bool
	// Authenticate checks a bearer credential and returns ctx carrying the caller; the error
	// is a gRPC status (Unauthenticated for a bad credential).
	Authenticate(ctx context.Context, bearer string) (context.Context, error)
}

// RateDecision is a rate limiter's answer for one request.
type RateDecision struct {
	// Applies is false for requests the limiter does not meter (no caller yet).
	Applies bool
	// Allowed is false when the caller's budget is spent.
	Allowed bool
	// Remaining is what is left of the budget.
	Remaining int
	// RetryAfter is when the next request would be allowed.
	RetryAfter time.Duration
}

// Limiter meters authenticated requests.
type Limiter interface {
	Allow(r *http.Request) RateDecision
}

// Options are what NewHandler wires in.
type Options struct {
	Log      *zap.Logger
	Registry prometheus.Registerer
	Health   *health.Handler
	// Auth authenticates every /v1 request whose route is not public.
	Auth Authenticator
	// Limiter meters authenticated requests; nil means no limit.
	Limiter Limiter
	// ClientIP puts the client's address in the request context; nil means none.
	ClientIP func(http.Handler) http.Handler
	// FrontendURL is the only origin browsers may call the API from.
	FrontendURL string
	// BodyLimit is the largest request body accepted, in bytes, on every route that
	// RouteBodyLimits does not name.
	BodyLimit int64
	// RouteBodyLimits gives routes a body limit of their own: "METHOD /path/template", as the
	// contracts' google.api.http bindings write it, → the largest body accepted, in bytes.
	RouteBodyLimits map[string]int64
	// OpenAPI is the document served at /openapi.json.
	OpenAPI []byte
	// StreamRoutes are the routes whose handlers stream the request or response body (the
	// import upload and the rejected rows' download): "METHOD /path/template" → the largest
	// body accepted, in bytes. They get that body limit and StreamTimeout instead of
	// RequestTimeout and the server's read and write timeouts.
	StreamRoutes map[string]int64
	// Public serves plain HTTP routes outside /v1 that take no bearer credential (the
	// tracking links and the mail provider's webhook); nil means none. Its patterns go
	// through request id, access log, recovery, metrics (labelled with the pattern), the
	// default body limit, the client address and the request timeout; the handlers
	// authenticate what they serve themselves.
	Public *http.ServeMux
}

// NewHandler returns the handler of the public port. /health, /health/live, /health/ready
// and /openapi.json are public; /v1/ goes through request id, access log, recovery, metrics,
// body limit, CORS, client address, authentication and the rate limit to api (where
// authorization runs once the route matched); the routes of o.Public go through the same
// chain less CORS, authentication and the rate limit.
func NewHandler(o Options, api http.Handler) http.Handler {
	red := metrics.NewHTTPServer(o.Registry)

	v1 := withTimeouts(RequestTimeout, newBodyLimits(0, o.StreamRoutes), api)
	if o.Limiter != nil {
		v1 = withRateLimit(o.Limiter, v1)
	}
	v1 = withAuthentication(o.Log, o.BodyLimit, o.Auth, v1)
	if o.ClientIP != nil {
		v1 = o.ClientIP(v1)
	}
	v1 = withCORS(o.FrontendURL, v1)
	v1 = withBodyLimit(newBodyLimits(o.BodyLimit, withStreamLimits(o.RouteBodyLimits, o.StreamRoutes)), v1)
	v1 = red.Middleware(func(r *http.Request) string { return route(r.Context()) }, v1)
	v1 = withRecovery(o.Log, v1)
	v1 = withAccessLog(o.Log, v1)
	v1 = withRequestID(v1)

	mux := http.NewServeMux()
	o.Health.Register(mux)
	spec := o.OpenAPI
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(spec)
	})
	mux.Handle("/v1/", v1)
	var notFound http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, http.StatusNotFound, "not_found", "no route matches "+r.Method+" "+r.URL.Path, nil)
	})
	if o.Public != nil {
		notFound = withPublic(o, red, notFound)
	}
	mux.Handle("/", withRequestID(notFound))
	return mux
}

// withPublic serves the routes of o.Public through the public middlewares, and any other
// request with notFound.
func withPublic(o Options, red *metrics.HTTPServer, notFound http.Handler) http.Handler {
	h := withTimeout(RequestTimeout, o.Public)
	if o.ClientIP != nil {
		h = o.ClientIP(h)
	}
	h = withBodyLimit(newBodyLimits(o.BodyLimit, nil), h)
	h = red.Middleware(func(r *http.Request) string { return route(r.Context()) }, h)
	h = withRecovery(o.Log, h)
	h = withAccessLog(o.Log, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := o.Public.Handler(r)
		if pattern == "" {
			notFound.ServeHTTP(w, r)
			return
		}
		if st := stateFrom(r.Context()); st != nil {
			// "GET /track/open/{token}" → "/track/open/{token}": the method is a label of its own.
			if i := strings.IndexByte(pattern, ' '); i >= 0 {
				pattern = pattern[i+1:]
			}
			st.route.Store(&pattern)
		}
		h.ServeHTTP(w, r)
	})
}

// NewServer wraps the public handler in an http.Server with the public time limits.
func NewServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}
