// Package jobs holds the River job contracts shared by the services that enqueue jobs and the
// worker that runs them: queue names, argument types and the insert-only client services use
// to enqueue inside their own transactions.
package jobs

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Schema holds River's tables.
const Schema = "river"

// Queues.
const (
	QueueImport         = "import"
	QueueBulkOperations = "bulk-operations"
	QueueEmailSend      = "email-send"
	QueueNotifications  = "notifications"
	QueueMaintenance    = "maintenance"
)

// Queues lists every queue with the number of jobs a worker runs at once on it.
var Queues = map[string]int{
	QueueImport:         2,
	QueueBulkOperations: 2,
	QueueEmailSend:      20,
	QueueNotifications:  10,
	QueueMaintenance:    1,
}

// RecipientStatusArgs asks for a recipient's status to change because of an engagement event
// (bounce, complaint, unsubscribe). The event id makes it idempotent.
type RecipientStatusArgs struct {
	CompanyID   uuid.UUID `json:"company_id"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
	DomainID    uuid.UUID `json:"domain_id"`
	RecipientID uuid.UUID `json:"recipient_id"`
	EventID     uuid.UUID `json:"event_id"`
	// Status is one of unsubscribed, bounced, complained.
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// Kind implements river.JobArgs.
func (RecipientStatusArgs) Kind() string { return "recipient_status" }

// InsertOpts implements river.JobArgsWithInsertOpts: one job per event, however often the
// event is retried.
func (RecipientStatusArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueNotifications,
		UniqueOpts: river.UniqueOpts{ByArgs: true},
	}
}

// BackfillArgs asks the worker to run, or resume, the backfill registered under Name (see
// libs/backfill): batches of BatchSize rows, each in its own short transaction, with Pause
// between batches. Its progress is kept in maintenance.backfills, so a job that is
// interrupted resumes from the last batch that committed. There is at most one job per
// backfill, whatever its settings.
type BackfillArgs struct {
	// Name is the backfill's registered name (lower-case letters, digits and '_').
	Name string `json:"name" river:"unique"`
	// BatchSize is the number of rows per batch; 0 means the default of libs/backfill.
	BatchSize int `json:"batch_size"`
	// Pause is the wait between two batches, which keeps the load on the database and on
	// replication low; 0 runs the batches back to back.
	Pause time.Duration `json:"pause"`
}

// Kind implements river.JobArgs.
func (BackfillArgs) Kind() string { return "backfill" }

// InsertOpts implements river.JobArgsWithInsertOpts: backfills run on the maintenance queue,
// one job per backfill name.
func (BackfillArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueMaintenance,
		UniqueOpts: river.UniqueOpts{ByArgs: true},
	}
}

// Inserter is an insert-only River client: services enqueue with it inside their own
// transactions; only the worker runs jobs.
type Inserter = river.Client[pgx.Tx]

// NewInserter returns an insert-only client on pool.
func NewInserter(pool *pgxpool.Pool) (*Inserter, error) {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: Schema})
	if err != nil {
		return nil, fmt.Errorf("create river inserter: %w", err)
	}
	return c, nil
}
