// Package backfill runs batched, resumable, throttled data backfills as River jobs
// (jobs.BackfillArgs on the maintenance queue), the middle step of an expand/contract change:
// after the expand migration added a column and the code writes it, a backfill fills it in
// for the rows written before.
//
// A backfill implements Backfill: one batch of at most limit rows after a cursor, inside a
// transaction the Worker opens. The Worker records the new cursor and the counts in
// maintenance.backfills in that same transaction, so a batch and its progress commit
// together: after a crash or a shutdown the backfill resumes from the last batch that
// committed, and no row is changed twice. Each batch is its own short transaction (with lock
// and statement timeouts), never the migration's; between batches the Worker waits the job's
// pause, and after a time slice it yields the queue (the job snoozes) so that other
// maintenance jobs run too.
package backfill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/libs/jobs"
)

// Table holds the progress of every backfill (created by the migrations, schema maintenance).
const Table = "maintenance.backfills"

// Limits and defaults of a backfill job.
const (
	// DefaultBatchSize is the batch size of a job that sets none.
	DefaultBatchSize = 1000
	// MaxBatchSize bounds the batch size: larger batches hold their row locks too long.
	MaxBatchSize = 10000
	// DefaultSlice is how long one run of the job goes on before it yields the queue.
	DefaultSlice = time.Minute
	// DefaultLockTimeout is the lock_timeout of every batch transaction.
	DefaultLockTimeout = 5 * time.Second
	// DefaultStatementTimeout is the statement_timeout of every batch transaction.
	DefaultStatementTimeout = 30 * time.Second
	// UnknownGrace is how long a job naming a backfill this worker does not know is snoozed
	// rather than cancelled: during a rolling deploy an older worker may fetch the job of a
	// backfill that only the new release has.
	UnknownGrace = time.Hour
	// UnknownSnooze is the wait before such a job is tried again.
	UnknownSnooze = time.Minute
)

// Cursor is a backfill's position, opaque to the Worker: typically the key of the last row a
// batch handled. It is empty before the first batch.
type Cursor string

// Backfill is one data backfill.
type Backfill interface {
	// Batch handles at most limit rows after the cursor after, inside tx, and returns the
	// cursor of the last row it handled, the number of rows it changed and whether no row is
	// left. It must not commit or roll back tx. A batch that reports neither progress (a new
	// cursor) nor done is an error, so a backfill cannot loop forever.
	Batch(ctx context.Context, tx pgx.Tx, after Cursor, limit int) (next Cursor, n int, done bool, err error)
}

// Progress is the recorded state of one backfill.
type Progress struct {
	Name       string     `json:"name"`
	Cursor     Cursor     `json:"cursor"`
	RowsDone   int64      `json:"rows_done"`
	Batches    int64      `json:"batches"`
	Done       bool       `json:"done"`
	StartedAt  time.Time  `json:"started_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

const progressColumns = `name, last_cursor, rows_done, batches, done, started_at, updated_at, finished_at`

func scanProgress(row pgx.Row) (Progress, error) {
	var (
		p      Progress
		cursor string
	)
	if err := row.Scan(&p.Name, &cursor, &p.RowsDone, &p.Batches, &p.Done, &p.StartedAt, &p.UpdatedAt, &p.FinishedAt); err != nil {
		return Progress{}, err
	}
	p.Cursor = Cursor(cursor)
	return p, nil
}

// Querier is what List and Get need: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNotFound means no backfill of that name has started.
var ErrNotFound = errors.New("backfill not found")

// List returns the progress of every backfill that has started, oldest first.
func List(ctx context.Context, q Querier) ([]Progress, error) {
	rows, err := q.Query(ctx, `SELECT `+progressColumns+` FROM `+Table+` ORDER BY started_at, name`)
	if err != nil {
		return nil, fmt.Errorf("list backfills: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Progress, error) { return scanProgress(row) })
	if err != nil {
		return nil, fmt.Errorf("list backfills: %w", err)
	}
	return out, nil
}

// Get returns the progress of the backfill name, or ErrNotFound.
func Get(ctx context.Context, q Querier, name string) (Progress, error) {
	p, err := scanProgress(q.QueryRow(ctx, `SELECT `+progressColumns+` FROM `+Table+` WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Progress{}, fmt.Errorf("backfill %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Progress{}, fmt.Errorf("backfill %s: %w", name, err)
	}
	return p, nil
}

// ValidName reports whether name may name a backfill: lower-case letters, digits and '_',
// starting with a letter, at most 100 bytes, as the table's CHECK constraint has it.
func ValidName(name string) bool {
	if name == "" || len(name) > 100 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Options tune a Worker; the zero value gives the defaults above.
type Options struct {
	// Slice is how long one run of a job goes on before it snoozes for its pause and lets
	// other maintenance jobs run.
	Slice time.Duration
	// LockTimeout and StatementTimeout are set (SET LOCAL) in every batch transaction.
	LockTimeout      time.Duration
	StatementTimeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Worker runs jobs.BackfillArgs for the backfills it was given.
type Worker struct {
	river.WorkerDefaults[jobs.BackfillArgs]
	pool      *pgxpool.Pool
	backfills map[string]Backfill
	log       *zap.Logger
	opts      Options
}

// NewWorker returns a worker that runs the backfills (by name) on pool. It fails on a name
// that ValidName refuses.
func NewWorker(pool *pgxpool.Pool, backfills map[string]Backfill, log *zap.Logger, opts Options) (*Worker, error) {
	for name := range backfills {
		if !ValidName(name) {
			return nil, fmt.Errorf("backfill name %q: use lower-case letters, digits and '_', starting with a letter, at most 100", name)
		}
	}
	if opts.Slice <= 0 {
		opts.Slice = DefaultSlice
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = DefaultStatementTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Worker{pool: pool, backfills: backfills, log: log, opts: opts}, nil
}

// Timeout implements river.Worker: one run lasts a slice, plus a pause and a last batch.
func (w *Worker) Timeout(job *river.Job[jobs.BackfillArgs]) time.Duration {
	return w.opts.Slice + max(job.Args.Pause, 0) + 2*w.opts.StatementTimeout + 10*time.Second
}

// Work implements river.Worker. It runs batches until the backfill is done (the job
// completes) or the slice is over (the job snoozes for the pause and resumes from the
// recorded cursor). Interrupted between or inside batches by a shutdown or the job's timeout,
// it snoozes too, so the job resumes at once on the next start without using up an attempt;
// the interrupted batch rolled back with its transaction. A failing batch is an error, and
// River retries the job with backoff.
func (w *Worker) Work(ctx context.Context, job *river.Job[jobs.BackfillArgs]) error {
	a := job.Args
	log := w.log.With(zap.String("backfill", a.Name), zap.Int64("job_id", job.ID))
	b, ok := w.backfills[a.Name]
	if !ok {
		if w.opts.Now().Sub(job.CreatedAt) < UnknownGrace {
			log.Warn("backfill unknown to this worker; snoozed for a worker that knows it")
			return river.JobSnooze(UnknownSnooze)
		}
		return river.JobCancel(fmt.Errorf("backfill %q is not registered in this worker", a.Name))
	}
	size := a.BatchSize
	if size == 0 {
		size = DefaultBatchSize
	}
	if size < 0 || size > MaxBatchSize {
		return river.JobCancel(fmt.Errorf("backfill %s: batch size %d is not within 1-%d", a.Name, size, MaxBatchSize))
	}
	if a.Pause < 0 {
		return river.JobCancel(fmt.Errorf("backfill %s: negative pause %s", a.Name, a.Pause))
	}

	if _, err := w.pool.Exec(ctx, `INSERT INTO `+Table+` (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, a.Name); err != nil {
		return w.interrupted(ctx, fmt.Errorf("backfill %s: record start: %w", a.Name, err))
	}

	end := w.opts.Now().Add(w.opts.Slice)
	for {
		p, err := w.batch(ctx, a.Name, b, size)
		if err != nil {
			return w.interrupted(ctx, fmt.Errorf("backfill %s: %w", a.Name, err))
		}
		if p.Done {
			log.Info("backfill done", zap.Int64("rows_done", p.RowsDone), zap.Int64("batches", p.Batches))
			return nil
		}
		if !w.opts.Now().Before(end) {
			log.Info("backfill yields the queue",
				zap.Int64("rows_done", p.RowsDone), zap.Int64("batches", p.Batches),
				zap.String("cursor", string(p.Cursor)), zap.Duration("resumes_in", a.Pause))
			return river.JobSnooze(a.Pause)
		}
		if a.Pause > 0 {
			t := time.NewTimer(a.Pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return w.interrupted(ctx, ctx.Err())
			case <-t.C:
			}
		}
	}
}

// interrupted turns err into the job's result: a snooze when the job's context ended
// (shutdown or timeout: the recorded progress is intact, resume at once), err otherwise.
// River reports a job cancelled through its API as cancelled whatever this returns.
func (w *Worker) interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		w.log.Info("backfill interrupted; it resumes from its last batch", zap.Error(err))
		return river.JobSnooze(0)
	}
	return err
}

// batch runs one batch of b and records its progress, in one transaction.
func (w *Worker) batch(ctx context.Context, name string, b Backfill, size int) (Progress, error) {
	var p Progress
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`,
			fmt.Sprintf("%dms", w.opts.LockTimeout.Milliseconds()), fmt.Sprintf("%dms", w.opts.StatementTimeout.Milliseconds())); err != nil {
			return fmt.Errorf("set timeouts: %w", err)
		}
		// The row lock keeps a second run of the same backfill (a job rescued while the
		// first still runs) from reading the cursor before this batch commits.
		var err error
		p, err = scanProgress(tx.QueryRow(ctx, `SELECT `+progressColumns+` FROM `+Table+` WHERE name = $1 FOR UPDATE`, name))
		if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if p.Done {
			return nil
		}
		next, n, done, err := b.Batch(ctx, tx, p.Cursor, size)
		if err != nil {
			return fmt.Errorf("batch after cursor %q: %w", p.Cursor, err)
		}
		if n < 0 {
			return fmt.Errorf("batch after cursor %q: negative row count %d", p.Cursor, n)
		}
		if !done && next == p.Cursor {
			return fmt.Errorf("batch after cursor %q: neither moved the cursor nor finished", p.Cursor)
		}
		p, err = scanProgress(tx.QueryRow(ctx, `UPDATE `+Table+`
			SET last_cursor = $2, rows_done = rows_done + $3, batches = batches + 1, done = $4,
				updated_at = now(), finished_at = CASE WHEN $4 THEN now() END
			WHERE name = $1
			RETURNING `+progressColumns, name, string(next), n, done))
		if err != nil {
			return fmt.Errorf("record progress: %w", err)
		}
		return nil
	})
	return p, err
}
