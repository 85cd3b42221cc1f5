// Package bulk runs the bulk_operation jobs the recipient service enqueues with each bulk
// operation: it asks the recipient service, with a service token narrowed to the operation's
// partition (company, workspace, domain), to apply the operation's batches one after the other
// until none is left. The recipient service commits each batch's position with its changes, so
// the job holds no state of its own: an attempt that is interrupted, retried or runs twice
// resumes after the last committed batch, and no recipient is changed twice.
package bulk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/riverqueue/river"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of Options.
const (
	// DefaultAttemptDuration is how long one attempt works before it hands over to the next
	// (snoozes), so that the job's River timeout stays short and the job of a worker that died
	// is rescued soon.
	DefaultAttemptDuration = time.Minute
	// AttemptGrace is added to the attempt duration for the job's River timeout: the batch in
	// flight when the attempt's time is up still completes.
	AttemptGrace = 30 * time.Second
)

// Options tune the worker.
type Options struct {
	// BatchSize is the number of recipients per batch; 0 leaves it to the recipient service
	// (or to the job's own BatchSize).
	BatchSize int
	// AttemptDuration is how long one attempt works; 0 means DefaultAttemptDuration.
	AttemptDuration time.Duration
}

// Worker executes jobs.BulkOperationArgs.
type Worker struct {
	river.WorkerDefaults[jobs.BulkOperationArgs]
	client recipientv1.RecipientServiceClient
	signer *tenancy.Signer
	log    *zap.Logger
	opts   Options
}

// NewWorker returns a worker that calls client with service tokens minted by signer.
func NewWorker(client recipientv1.RecipientServiceClient, signer *tenancy.Signer, log *zap.Logger, opts Options) *Worker {
	if opts.AttemptDuration <= 0 {
		opts.AttemptDuration = DefaultAttemptDuration
	}
	return &Worker{client: client, signer: signer, log: log, opts: opts}
}

// Timeout implements river.Worker: one attempt's time slice and the grace for its last batch.
func (w *Worker) Timeout(*river.Job[jobs.BulkOperationArgs]) time.Duration {
	return w.opts.AttemptDuration + AttemptGrace
}

// errSliceOver ends an attempt whose time is up; the job goes on in the next attempt.
var errSliceOver = errors.New("attempt time slice over")

// Work implements river.Worker. Answers no retry can change end the job: NotFound (the
// operation does not exist in the partition) completes it, InvalidArgument and
// PermissionDenied cancel it. Any other failure is returned so that River retries the job,
// which resumes after the last committed batch.
func (w *Worker) Work(ctx context.Context, job *river.Job[jobs.BulkOperationArgs]) error {
	a := job.Args
	for _, id := range []struct {
		name  string
		value uuid.UUID
	}{{"company_id", a.CompanyID}, {"workspace_id", a.WorkspaceID}, {"domain_id", a.DomainID}, {"operation_id", a.OperationID}} {
		if id.value == uuid.Nil {
			return river.JobCancel(fmt.Errorf("bulk operation job without %s", id.name))
		}
	}
	err := w.run(ctx, a, time.Now().Add(w.opts.AttemptDuration))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errSliceOver):
		return river.JobSnooze(0)
	case status.Code(err) == codes.NotFound:
		w.log.Info("bulk operation not found; job dropped", zap.Int64("job_id", job.ID),
			zap.Stringer("domain_id", a.DomainID), zap.Stringer("operation_id", a.OperationID))
		return nil
	case status.Code(err) == codes.InvalidArgument, status.Code(err) == codes.PermissionDenied:
		return river.JobCancel(err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return errors.Join(cerr, err)
	}
	return err
}

// run applies batches until the operation ends or the attempt's time is up.
func (w *Worker) run(ctx context.Context, a jobs.BulkOperationArgs, until time.Time) error {
	t := tenancy.Tenant{CompanyID: a.CompanyID, WorkspaceID: a.WorkspaceID, DomainID: a.DomainID}
	size := a.BatchSize
	if size == 0 {
		size = w.opts.BatchSize
	}
	for {
		// A fresh token per batch: an operation outlives one token. It reaches the job's own
		// partition only, so a job whose arguments were tampered with cannot touch another
		// workspace or domain of the company.
		tok, err := w.signer.ServiceTokenFor(jobs.Executor, t)
		if err != nil {
			return fmt.Errorf("mint service token: %w", err)
		}
		res, err := w.client.RunBulkOperationBatch(tenancy.WithToken(ctx, tok), &recipientv1.RunBulkOperationBatchRequest{
			WorkspaceId: a.WorkspaceID.String(),
			DomainId:    a.DomainID.String(),
			OperationId: a.OperationID.String(),
			BatchSize:   int32(min(size, 1<<30)), //nolint:gosec // bounded above
		})
		if err != nil {
			return fmt.Errorf("run bulk operation batch: %w", err)
		}
		switch res.GetOperation().GetState() {
		case recipientv1.BulkOperationState_BULK_OPERATION_STATE_SUCCEEDED,
			recipientv1.BulkOperationState_BULK_OPERATION_STATE_FAILED:
			w.log.Info("bulk operation finished",
				zap.Stringer("domain_id", a.DomainID), zap.Stringer("operation_id", a.OperationID),
				zap.String("state", res.GetOperation().GetState().String()),
				zap.Int64("matched", res.GetOperation().GetMatched()), zap.Int64("done", res.GetOperation().GetDone()))
			return nil
		}
		if time.Now().After(until) {
			return errSliceOver
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
