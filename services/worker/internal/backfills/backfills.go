// Package backfills holds the worker's backfills (libs/backfill) and their admin routes on the
// worker's internal admin listener: GET /backfills shows the progress of every backfill, and
// POST /backfills/{name} starts (or resumes) one.
//
// A backfill is started by a person, once the release whose code writes the new column runs
// everywhere: started earlier, the previous release could still write rows behind its cursor.
package backfills

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/libs/backfill"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/services/worker/internal/eventbackfill"
)

// Path is where the admin routes live.
const Path = "/backfills"

// QueryTimeout bounds the queries of GET Path.
const QueryTimeout = 5 * time.Second

// Registered returns the backfills this worker runs, by name (see backfill.ValidName). Add a
// backfill here in the release that starts writing the column it fills (the expand step of
// docs/migrations.md), and remove it in the contract step, once it is done everywhere. pool is
// the worker's, for the backfills that need work outside their batch's transaction.
func Registered(pool *pgxpool.Pool) map[string]backfill.Backfill {
	return map[string]backfill.Backfill{
		// Legacy events into the time-partitioned table (flag events_partitioned_storage).
		eventbackfill.Name: eventbackfill.New(pool, time.Now),
	}
}

// Inserter enqueues jobs: the worker's River client.
type Inserter interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Handler serves the admin routes.
type Handler struct {
	pool       *pgxpool.Pool
	ins        Inserter
	registered []string
	log        *zap.Logger
}

// NewHandler returns the admin routes of the backfills registered in this worker; pool reads
// their progress and jobs, ins enqueues them.
func NewHandler(pool *pgxpool.Pool, ins Inserter, registered map[string]backfill.Backfill, log *zap.Logger) *Handler {
	names := make([]string, 0, len(registered))
	for name := range registered {
		names = append(names, name)
	}
	slices.Sort(names)
	return &Handler{pool: pool, ins: ins, registered: names, log: log}
}

// Register adds GET Path and POST Path/{name} to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Path, h.list)
	mux.HandleFunc("POST "+Path+"/{name}", h.start)
}

// Report is the JSON body of GET Path.
type Report struct {
	// Backfills lists every backfill that is registered in this worker, has progress
	// recorded or has a job, by name.
	Backfills []Status `json:"backfills"`
}

// Status is what is known of one backfill.
type Status struct {
	Name string `json:"name"`
	// Registered is true when this worker runs the backfill.
	Registered bool `json:"registered"`
	// Progress is the recorded progress (rows done, last cursor, updated_at); nil before the
	// first run.
	Progress *backfill.Progress `json:"progress"`
	// Job is the backfill's latest River job; nil when it never had one (or River's cleaner
	// removed it after it finished).
	Job *Job `json:"job"`
}

// Job is the state of a backfill's River job.
type Job struct {
	ID          int64     `json:"id"`
	State       string    `json:"state"`
	Attempt     int       `json:"attempt"`
	ScheduledAt time.Time `json:"scheduled_at"`
	// Snoozes counts the times the job yielded the queue or was interrupted and resumed.
	Snoozes int64 `json:"snoozes"`
}

// Report reads the state of every backfill.
func (h *Handler) Report(ctx context.Context) (Report, error) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	byName := map[string]*Status{}
	status := func(name string) *Status {
		if byName[name] == nil {
			byName[name] = &Status{Name: name}
		}
		return byName[name]
	}
	for _, name := range h.registered {
		status(name).Registered = true
	}

	progress, err := backfill.List(ctx, h.pool)
	if err != nil {
		return Report{}, err
	}
	for i := range progress {
		status(progress[i].Name).Progress = &progress[i]
	}

	rows, err := h.pool.Query(ctx, `
		SELECT DISTINCT ON (args->>'name') args->>'name', id, state::text, attempt, scheduled_at,
			coalesce((metadata->>'snoozes')::bigint, 0)
		FROM `+pgx.Identifier{jobs.Schema, "river_job"}.Sanitize()+`
		WHERE kind = $1
		ORDER BY args->>'name', id DESC`, jobs.BackfillArgs{}.Kind())
	if err != nil {
		return Report{}, fmt.Errorf("read backfill jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name string
			j    Job
		)
		if err := rows.Scan(&name, &j.ID, &j.State, &j.Attempt, &j.ScheduledAt, &j.Snoozes); err != nil {
			return Report{}, fmt.Errorf("read backfill jobs: %w", err)
		}
		status(name).Job = &j
	}
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("read backfill jobs: %w", err)
	}

	r := Report{Backfills: make([]Status, 0, len(byName))}
	for _, s := range byName {
		r.Backfills = append(r.Backfills, *s)
	}
	slices.SortFunc(r.Backfills, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return r, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	rep, err := h.Report(r.Context())
	if err != nil {
		h.log.Warn("backfill report", zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "backfill progress unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// StartRequest is the optional JSON body of POST Path/{name}.
type StartRequest struct {
	// BatchSize is the number of rows per batch, 1 to backfill.MaxBatchSize; 0 for the default.
	BatchSize int `json:"batch_size"`
	// Pause is the wait between batches, a Go duration ("250ms", "2s"); empty for none.
	Pause string `json:"pause"`
}

// StartResponse is the JSON answer of POST Path/{name}.
type StartResponse struct {
	JobID int64 `json:"job_id"`
	// Duplicate is true when the backfill already had a job: that job goes on, with the
	// settings it was started with.
	Duplicate bool `json:"duplicate"`
}

func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !slices.Contains(h.registered, name) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no backfill %q is registered in this worker", name)})
		return
	}
	var req StartRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<12)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `the body must be JSON: {"batch_size": 500, "pause": "250ms"}`})
		return
	}
	args := jobs.BackfillArgs{Name: name, BatchSize: req.BatchSize}
	if args.BatchSize < 0 || args.BatchSize > backfill.MaxBatchSize {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("batch_size must be within 1-%d, or 0 for the default", backfill.MaxBatchSize)})
		return
	}
	if req.Pause != "" {
		d, err := time.ParseDuration(req.Pause)
		if err != nil || d < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `pause must be a duration such as "250ms" or "2s"`})
			return
		}
		args.Pause = d
	}
	res, err := h.ins.Insert(r.Context(), args, nil)
	if err != nil {
		h.log.Warn("start backfill", zap.String("backfill", name), zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the backfill job could not be enqueued"})
		return
	}
	h.log.Info("backfill started", zap.String("backfill", name), zap.Int64("job_id", res.Job.ID),
		zap.Bool("duplicate", res.UniqueSkippedAsDuplicate), zap.Int("batch_size", args.BatchSize), zap.Duration("pause", args.Pause))
	code := http.StatusAccepted
	if res.UniqueSkippedAsDuplicate {
		code = http.StatusOK
	}
	writeJSON(w, code, StartResponse{JobID: res.Job.ID, Duplicate: res.UniqueSkippedAsDuplicate})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
