// Package rest is the gateway's public HTTP surface: the health endpoints, the OpenAPI
// document, and the /v1 REST API that grpc-gateway proxies to the internal gRPC services
// behind request ids, access logs, panic recovery, RED metrics, a body limit, CORS for the
// front end and bearer-token authentication. Every error leaves in one JSON shape (Error).
package rest

import (
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
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
// Register the services' handlers on it, then pass it to NewHandler.
func NewAPIMux(log *zap.Logger, bodyLimit int64) *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithErrorHandler(errorHandler(log, bodyLimit)),
		runtime.WithRoutingErrorHandler(routingErrorHandler()),
		runtime.WithMiddlewares(recordRoute),
		runtime.WithMetadata(requestIDMetadata),
		// Clients choose the method; a header must not change it behind the route table.
		runtime.WithDisableHTTPMethodOverride(),
	)
}

// Options are what NewHandler wires in.
type Options struct {
	Log      *zap.Logger
	Registry prometheus.Registerer
	Health   *health.Handler
	Verifier *tenancy.Verifier
	// FrontendURL is the only origin browsers may call the API from.
	FrontendURL string
	// BodyLimit is the largest request body accepted, in bytes.
	BodyLimit int64
	// OpenAPI is the document served at /openapi.json.
	OpenAPI []byte
}

// NewHandler returns the handler of the public port. /health, /health/live, /health/ready
// and /openapi.json are public; /v1/ goes through request id, access log, recovery, metrics,
// body limit, CORS and authentication to api.
func NewHandler(o Options, api http.Handler) http.Handler {
	red := metrics.NewHTTPServer(o.Registry)

	v1 := withTimeout(RequestTimeout, api)
	v1 = tenancy.Middleware(o.Verifier, nil, writeUnauthenticated, v1)
	v1 = withCORS(o.FrontendURL, v1)
	v1 = withBodyLimit(o.BodyLimit, v1)
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
	mux.Handle("/", withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, http.StatusNotFound, "not_found", "no route matches "+r.Method+" "+r.URL.Path, nil)
	})))
	return mux
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
