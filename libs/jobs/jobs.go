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
	"github.com/riverqueue/river/rivertype"
)

// Schema holds River's tables.
const Schema = "river"

// Executor is the process that runs every job: the worker. The service tokens a job calls
// other services with name it ("service:worker").
const Executor = "worker"

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

// BulkOperationArgs asks the worker to run, or resume, a bulk operation of the recipient
// service: it applies the operation's batches one after the other through the recipient
// service, which commits each batch's position with its changes, so a job that is interrupted
// or retried resumes after the last committed batch. There is one job per operation.
type BulkOperationArgs struct {
	CompanyID   uuid.UUID `json:"company_id"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
	DomainID    uuid.UUID `json:"domain_id"`
	OperationID uuid.UUID `json:"operation_id"`
	// BatchSize is the number of recipients per batch; 0 means the recipient service's default.
	BatchSize int `json:"batch_size"`
}

// Kind implements river.JobArgs.
func (BulkOperationArgs) Kind() string { return "bulk_operation" }

// InsertOpts implements river.JobArgsWithInsertOpts: bulk operations run on their own queue,
// one job per operation.
func (BulkOperationArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueBulkOperations,
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

// ImportArgs asks the worker to run, or resume, the CSV import ImportID of a domain (see
// docs/imports.md). Its progress is committed batch by batch on the recipient service, so an
// interrupted job resumes after the last batch that committed. One job per import.
type ImportArgs struct {
	CompanyID   uuid.UUID `json:"company_id"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
	DomainID    uuid.UUID `json:"domain_id"`
	ImportID    uuid.UUID `json:"import_id"`
}

// Kind implements river.JobArgs.
func (ImportArgs) Kind() string { return "import" }

// InsertOpts implements river.JobArgsWithInsertOpts: imports run on the import queue, one job
// per import.
func (ImportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueImport,
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

// periodicUnique keeps one job of a periodic maintenance kind waiting or running at a time;
// a completed one does not count, so the next period inserts again.
func periodicUnique() river.UniqueOpts {
	return river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}
}

// EventPartitionsArgs asks the worker to create the weekly partitions of
// events.engagement_events ahead of time (a periodic job; idempotent).
type EventPartitionsArgs struct{}

// Kind implements river.JobArgs.
func (EventPartitionsArgs) Kind() string { return "event_partitions" }

// InsertOpts implements river.JobArgsWithInsertOpts: the maintenance queue, one job at a time.
func (EventPartitionsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: periodicUnique()}
}

// EventRollupArgs asks the worker to recount the recent days of the daily rollup of events
// (events.email_events_daily) from the events (a periodic job; idempotent).
type EventRollupArgs struct{}

// Kind implements river.JobArgs.
func (EventRollupArgs) Kind() string { return "event_rollup" }

// InsertOpts implements river.JobArgsWithInsertOpts: the maintenance queue, one job at a time.
func (EventRollupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: periodicUnique()}
}

// EventRetentionArgs asks the worker to drop the partitions of events.engagement_events that
// are past the retention period (a periodic job; idempotent).
type EventRetentionArgs struct{}

// Kind implements river.JobArgs.
func (EventRetentionArgs) Kind() string { return "event_retention" }

// InsertOpts implements river.JobArgsWithInsertOpts: the maintenance queue, one job at a time.
func (EventRetentionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: periodicUnique()}
}
