// Package jobstats serves a read-only summary of River's jobs on the worker's internal admin
// listener: how many jobs each queue holds in each state.
package jobstats

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldmail/herald/libs/jobs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// Path is where Register serves the summary.
const Path = "/jobs/stats"

// QueryTimeout bounds the count query; river_job can be large.
const QueryTimeout = 5 * time.Second

// Stats is the JSON body of GET /jobs/stats.
type Stats struct {
	// Queues maps a queue name to its job counts by state (available, scheduled, running,
	// retryable, completed, cancelled, discarded, pending). Every queue of jobs.Queues is
	// present, empty or not.
	Queues map[string]map[string]int64 `json:"queues"`
	// Totals are the counts by state over every queue.
	Totals map[string]int64 `json:"totals"`
}

// Handler serves Stats of the river_job table in schema.
type Handler struct {
	pool  *pgxpool.Pool
	query string
	log   *zap.Logger
}

// New returns a handler counting the jobs in schema's river_job.
func New(pool *pgxpool.Pool, schema string, log *zap.Logger) *Handler {
	table := pgx.Identifier{schema, "river_job"}.Sanitize()
	return &Handler{
		pool:  pool,
		query: `SELECT queue, state::text, count(*) FROM ` + table + ` GROUP BY queue, state`,
		log:   log,
	}
}

// Register adds GET Path to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET "+Path, h)
}

// Count returns the current counts.
func (h *Handler) Count(ctx context.Context) (Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	s := Stats{Queues: map[string]map[string]int64{}, Totals: map[string]int64{}}
	for name := range jobs.Queues {
		s.Queues[name] = map[string]int64{}
	}
	rows, err := h.pool.Query(ctx, h.query)
	if err != nil {
		return Stats{}, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			queue, state string
			n            int64
		)
		if err := rows.Scan(&queue, &state, &n); err != nil {
			return Stats{}, fmt.Errorf("count jobs: %w", err)
		}
		if s.Queues[queue] == nil {
			s.Queues[queue] = map[string]int64{}
		}
		s.Queues[queue][state] = n
		s.Totals[state] += n
	}
	if err := rows.Err(); err != nil {
		return Stats{}, fmt.Errorf("count jobs: %w", err)
	}
	return s, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	s, err := h.Count(r.Context())
	if err != nil {
		h.log.Warn("job stats", zap.Error(err))
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "job counts unavailable"})
		return
	}
	_ = json.NewEncoder(w).Encode(s)
}
