// Package admin builds the internal admin listener every process has: health endpoints,
// Prometheus metrics and pprof. It is never exposed publicly.
package admin

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/heraldmail/herald/libs/health"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Mux returns the admin routes: /health, /health/live, /health/ready, /metrics and
// /debug/pprof/*. Callers may add more routes (the worker adds its job UI).
func Mux(reg *prometheus.Registry, h *health.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	h.Register(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Server wraps the admin mux in an http.Server with sane timeouts. The write timeout leaves
// room for a 30-second CPU profile.
func Server(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      65 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}
