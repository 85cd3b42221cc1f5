// Package health serves /health, /health/live and /health/ready with one response shape:
//
//	{"status":"ok"|"error","info":{...},"error":{...},"details":{...}}
//
// where each dependency entry has "status" ("up"/"down"), "responseTime" in milliseconds and
// any details its check reports. Liveness never touches a dependency; readiness turns 503 as
// soon as the process starts draining.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// CheckFunc probes one dependency. It returns details to report (may be nil) and an error
// when the dependency is down. It must honour ctx.
type CheckFunc func(ctx context.Context) (map[string]any, error)

// Check is a named probe with its own time limit.
type Check struct {
	Name    string
	Timeout time.Duration
	Run     CheckFunc
}

// Handler evaluates checks and serves the health endpoints.
type Handler struct {
	full     []Check
	ready    []Check
	draining atomic.Bool
	now      func() time.Time
}

// New returns a handler. full checks answer /health, ready checks /health/ready.
func New(full, ready []Check) *Handler {
	return &Handler{full: full, ready: ready, now: time.Now}
}

// SetDraining turns readiness to 503: the process is shutting down and should receive no new
// traffic, though it keeps serving what it gets.
func (h *Handler) SetDraining() { h.draining.Store(true) }

// Draining reports whether SetDraining was called.
func (h *Handler) Draining() bool { return h.draining.Load() }

// Report is the JSON body of every health endpoint.
type Report struct {
	Status  string                    `json:"status"`
	Info    map[string]map[string]any `json:"info"`
	Error   map[string]map[string]any `json:"error"`
	Details map[string]map[string]any `json:"details"`
}

// OK reports whether every check was up.
func (r Report) OK() bool { return r.Status == "ok" }

// Evaluate runs checks concurrently, each within its own timeout.
func (h *Handler) Evaluate(ctx context.Context, checks []Check) Report {
	rep := Report{
		Status:  "ok",
		Info:    map[string]map[string]any{},
		Error:   map[string]map[string]any{},
		Details: map[string]map[string]any{},
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entry := h.run(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			rep.Details[c.Name] = entry
			if entry["status"] == "up" {
				rep.Info[c.Name] = entry
			} else {
				rep.Error[c.Name] = entry
				rep.Status = "error"
			}
		}()
	}
	wg.Wait()
	return rep
}

func (h *Handler) run(ctx context.Context, c Check) map[string]any {
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := h.now()
	type result struct {
		details map[string]any
		err     error
	}
	done := make(chan result, 1)
	go func() {
		d, err := c.Run(cctx)
		done <- result{d, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-cctx.Done():
		res = result{err: cctx.Err()}
	}
	entry := map[string]any{}
	for k, v := range res.details {
		entry[k] = v
	}
	entry["responseTime"] = h.now().Sub(start).Milliseconds()
	if res.err != nil {
		entry["status"] = "down"
		if errors.Is(res.err, context.DeadlineExceeded) {
			entry["message"] = "timed out after " + c.Timeout.String()
		} else {
			entry["message"] = res.err.Error()
		}
	} else {
		entry["status"] = "up"
	}
	return entry
}

// Register adds the three endpoints to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", h.serveFull)
	mux.HandleFunc("GET /health/live", h.serveLive)
	mux.HandleFunc("GET /health/ready", h.serveReady)
}

func (h *Handler) serveFull(w http.ResponseWriter, r *http.Request) {
	write(w, h.Evaluate(r.Context(), h.full))
}

func (h *Handler) serveLive(w http.ResponseWriter, _ *http.Request) {
	write(w, Report{
		Status:  "ok",
		Info:    map[string]map[string]any{"process": {"status": "up"}},
		Error:   map[string]map[string]any{},
		Details: map[string]map[string]any{"process": {"status": "up"}},
	})
}

func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request) {
	rep := h.Evaluate(r.Context(), h.ready)
	if h.Draining() {
		entry := map[string]any{"status": "down", "message": "shutting down"}
		rep.Status = "error"
		rep.Error["shutdown"] = entry
		rep.Details["shutdown"] = entry
	}
	write(w, rep)
}

func write(w http.ResponseWriter, rep Report) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if rep.OK() {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}
