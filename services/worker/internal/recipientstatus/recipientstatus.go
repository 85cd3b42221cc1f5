// Package recipientstatus runs the recipient_status jobs enqueued with engagement events
// (bounces, complaints, unsubscribes): it asks the recipient service, with a service token
// narrowed to the partition (company, workspace, domain) the event belongs to, to move the
// recipient to its new status.
package recipientstatus

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

// JobTimeout bounds one attempt; the recipient service answers in milliseconds, so an attempt
// that takes longer is stuck and better retried.
const JobTimeout = 30 * time.Second

var statuses = map[string]recipientv1.RecipientStatus{
	"unsubscribed": recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED,
	"bounced":      recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED,
	"complained":   recipientv1.RecipientStatus_RECIPIENT_STATUS_COMPLAINED,
}

// Worker executes jobs.RecipientStatusArgs.
type Worker struct {
	river.WorkerDefaults[jobs.RecipientStatusArgs]
	client recipientv1.RecipientServiceClient
	signer *tenancy.Signer
	log    *zap.Logger
}

// NewWorker returns a worker that calls client with service tokens minted by signer.
func NewWorker(client recipientv1.RecipientServiceClient, signer *tenancy.Signer, log *zap.Logger) *Worker {
	return &Worker{client: client, signer: signer, log: log}
}

// Timeout implements river.Worker.
func (w *Worker) Timeout(*river.Job[jobs.RecipientStatusArgs]) time.Duration { return JobTimeout }

// Work implements river.Worker. Answers that no retry can change end the job: NotFound (the
// recipient was erased meanwhile) completes it, InvalidArgument cancels it. Any other failure is
// returned so that River retries the job.
func (w *Worker) Work(ctx context.Context, job *river.Job[jobs.RecipientStatusArgs]) error {
	a := job.Args
	st, ok := statuses[a.Status]
	if !ok {
		return river.JobCancel(fmt.Errorf("unknown recipient status %q", a.Status))
	}
	for _, id := range []struct {
		name  string
		value uuid.UUID
	}{{"company_id", a.CompanyID}, {"workspace_id", a.WorkspaceID}, {"domain_id", a.DomainID}, {"recipient_id", a.RecipientID}} {
		if id.value == uuid.Nil {
			return river.JobCancel(fmt.Errorf("recipient status job without %s", id.name))
		}
	}

	// The token reaches the job's own partition only, so a job whose arguments were tampered
	// with cannot touch another workspace or domain of the company.
	tok, err := w.signer.ServiceTokenFor(jobs.Executor, tenancy.Tenant{CompanyID: a.CompanyID, WorkspaceID: a.WorkspaceID, DomainID: a.DomainID})
	if err != nil {
		return fmt.Errorf("mint service token: %w", err)
	}
	req := &recipientv1.UpdateRecipientStatusRequest{
		WorkspaceId: a.WorkspaceID.String(),
		DomainId:    a.DomainID.String(),
		RecipientId: a.RecipientID.String(),
		Status:      st,
		Reason:      a.Reason,
	}
	if a.EventID != uuid.Nil {
		req.EventId = a.EventID.String()
	}
	_, err = w.client.UpdateRecipientStatus(tenancy.WithToken(ctx, tok), req)
	switch status.Code(err) {
	case codes.OK:
		return nil
	case codes.NotFound:
		w.log.Info("recipient not found; status change dropped",
			zap.Int64("job_id", job.ID),
			zap.Stringer("company_id", a.CompanyID),
			zap.Stringer("domain_id", a.DomainID),
			zap.Stringer("recipient_id", a.RecipientID),
			zap.Stringer("event_id", a.EventID))
		return nil
	case codes.InvalidArgument:
		return river.JobCancel(fmt.Errorf("update recipient status: %w", err))
	}
	// When the job's own context ended (shutdown or timeout), say so in a way River
	// recognises, so a shutdown is recorded as such and the job simply runs again.
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("update recipient status: %w", errors.Join(cerr, err))
	}
	return fmt.Errorf("update recipient status: %w", err)
}
