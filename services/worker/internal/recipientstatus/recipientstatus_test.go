package recipientstatus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations/pgtest"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/heraldmail/herald/services/worker/internal/recipientstatus"
	"github.com/heraldmail/herald/services/worker/internal/recipienttest"
	"github.com/heraldmail/herald/services/worker/internal/runner"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const secret = "test-secret-test-secret-test-secret-0123"

type bundle struct {
	pool     *pgxpool.Pool
	inserter *jobs.Inserter
	fake     *recipienttest.Server
}

// setup starts a worker process in miniature: River running the recipient status worker
// against a fake recipient service that answers with respond.
func setup(t *testing.T, respond recipienttest.Respond) bundle {
	t.Helper()
	pool := pgtest.Pool(t)
	fake := recipienttest.Start(t, secret, respond)
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))

	cc, err := rpc.Dial(fake.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })

	workers := river.NewWorkers()
	river.AddWorker(workers, recipientstatus.NewWorker(recipientv1.NewRecipientServiceClient(cc), tenancy.NewSigner(secret), log))
	client, err := runner.NewClient(pool, workers, log)
	require.NoError(t, err)
	comp := runner.Component(client, log)
	served := make(chan error, 1)
	go func() { served <- comp.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, comp.Shutdown(ctx))
		require.NoError(t, <-served)
	})

	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	return bundle{pool: pool, inserter: ins, fake: fake}
}

func newArgs(status string) jobs.RecipientStatusArgs {
	return jobs.RecipientStatusArgs{
		CompanyID:   uuid.New(),
		WorkspaceID: uuid.New(),
		DomainID:    uuid.New(),
		RecipientID: uuid.New(),
		EventID:     uuid.New(),
		Status:      status,
		Reason:      "bounce: hard",
	}
}

func (b bundle) insert(t *testing.T, args jobs.RecipientStatusArgs) int64 {
	t.Helper()
	res, err := b.inserter.Insert(context.Background(), args, nil)
	require.NoError(t, err)
	return res.Job.ID
}

type jobState struct {
	State   string
	Attempt int
	Errors  int
}

func (b bundle) job(t *testing.T, id int64) jobState {
	t.Helper()
	var s jobState
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT state, attempt, coalesce(array_length(errors, 1), 0) FROM river.river_job WHERE id = $1`, id).
		Scan(&s.State, &s.Attempt, &s.Errors))
	return s
}

// waitState polls the job until it reaches state, failing after a deadline.
func (b bundle) waitState(t *testing.T, id int64, state string) jobState {
	t.Helper()
	var last jobState
	require.Eventually(t, func() bool {
		last = b.job(t, id)
		return last.State == state
	}, 20*time.Second, 20*time.Millisecond, "job %d never reached %s", id, state)
	return last
}

func receive(t *testing.T, calls <-chan recipienttest.Call) recipienttest.Call {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no call reached the recipient service")
		return recipienttest.Call{}
	}
}

// A job enqueued in the same transaction as a write runs once that transaction commits, and
// never when it rolls back.
func TestWork_transactionalEnqueue(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	args := newArgs("bounced")
	tenant := tenancy.Tenant{CompanyID: args.CompanyID, WorkspaceID: args.WorkspaceID, DomainID: args.DomainID}

	write := func(args jobs.RecipientStatusArgs, fail error) (int64, error) {
		var id int64
		err := tenancy.InTx(ctx, b.pool, tenant, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO events.email_events (id, company_id, workspace_id, domain_id, type, recipient_id, occurred_at)
				VALUES ($1, $2, $3, $4, 'bounce', $5, now())`, args.EventID, args.CompanyID, args.WorkspaceID, args.DomainID, args.RecipientID); err != nil {
				return err
			}
			res, err := b.inserter.InsertTx(ctx, tx, args, nil)
			if err != nil {
				return err
			}
			id = res.Job.ID
			return fail
		})
		return id, err
	}

	rolledBack := newArgs("complained")
	rolledBack.CompanyID, rolledBack.WorkspaceID, rolledBack.DomainID = args.CompanyID, args.WorkspaceID, args.DomainID
	errAbort := errors.New("abort")
	_, err := write(rolledBack, errAbort)
	require.ErrorIs(t, err, errAbort)

	id, err := write(args, nil)
	require.NoError(t, err)

	c := receive(t, b.fake.Calls)
	require.Equal(t, tenancy.KindService, c.Principal.Kind)
	require.Equal(t, "service:worker", c.Principal.Subject)
	require.Equal(t, args.CompanyID, c.Principal.CompanyID)
	// The token is narrowed to the job's partition: it reaches no other workspace or domain.
	require.Equal(t, args.WorkspaceID, c.Principal.WorkspaceID)
	require.Equal(t, args.DomainID, c.Principal.DomainID)
	require.Empty(t, c.Principal.Role)
	pctx := tenancy.WithPrincipal(ctx, c.Principal)
	_, err = tenancy.Scope(pctx, args.WorkspaceID.String(), uuid.NewString())
	require.ErrorIs(t, err, tenancy.ErrOutOfScope)
	_, err = tenancy.Scope(pctx, uuid.NewString(), args.DomainID.String())
	require.ErrorIs(t, err, tenancy.ErrOutOfScope)
	require.Equal(t, args.WorkspaceID.String(), c.Request.GetWorkspaceId())
	require.Equal(t, args.DomainID.String(), c.Request.GetDomainId())
	require.Equal(t, args.RecipientID.String(), c.Request.GetRecipientId())
	require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED, c.Request.GetStatus())
	require.Equal(t, "bounce: hard", c.Request.GetReason())
	require.Equal(t, args.EventID.String(), c.Request.GetEventId())

	s := b.waitState(t, id, "completed")
	require.Equal(t, jobState{State: "completed", Attempt: 1}, s)

	var jobsLeft int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM river.river_job`).Scan(&jobsLeft))
	require.Equal(t, 1, jobsLeft, "the rolled-back job never existed")
	select {
	case c := <-b.fake.Calls:
		t.Fatalf("unexpected call for %s", c.Request.GetEventId())
	default:
	}
}

func TestWork_statuses(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	want := map[string]recipientv1.RecipientStatus{
		"unsubscribed": recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED,
		"complained":   recipientv1.RecipientStatus_RECIPIENT_STATUS_COMPLAINED,
	}
	for st, code := range want {
		args := newArgs(st)
		id := b.insert(t, args)
		c := receive(t, b.fake.Calls)
		require.Equal(t, code, c.Request.GetStatus())
		require.Equal(t, tenancy.Tenant{CompanyID: args.CompanyID, WorkspaceID: args.WorkspaceID, DomainID: args.DomainID},
			tenancy.Tenant{CompanyID: c.Principal.CompanyID, WorkspaceID: c.Principal.WorkspaceID, DomainID: c.Principal.DomainID},
			"the token is narrowed to the job's partition")
		b.waitState(t, id, "completed")
	}
}

// Answers no retry can change end the job; anything else is retried.
func TestWork_errors(t *testing.T) {
	t.Parallel()
	var unavailableOnce atomic.Bool
	b := setup(t, func(c recipienttest.Call) error {
		switch c.Request.GetReason() {
		case "erased":
			return status.Error(codes.NotFound, "recipient not found")
		case "invalid":
			return status.Error(codes.InvalidArgument, "status: not allowed")
		case "flaky":
			if unavailableOnce.CompareAndSwap(false, true) {
				return status.Error(codes.Unavailable, "try again")
			}
		}
		return nil
	})

	with := func(reason string) jobs.RecipientStatusArgs {
		a := newArgs("unsubscribed")
		a.Reason = reason
		return a
	}

	t.Run("not found completes", func(t *testing.T) {
		id := b.insert(t, with("erased"))
		s := b.waitState(t, id, "completed")
		require.Equal(t, jobState{State: "completed", Attempt: 1}, s)
	})
	t.Run("invalid argument cancels", func(t *testing.T) {
		id := b.insert(t, with("invalid"))
		s := b.waitState(t, id, "cancelled")
		require.Equal(t, jobState{State: "cancelled", Attempt: 1, Errors: 1}, s)
	})
	t.Run("unknown status cancels without a call", func(t *testing.T) {
		a := newArgs("deleted")
		id := b.insert(t, a)
		s := b.waitState(t, id, "cancelled")
		require.Equal(t, 1, s.Errors)
	})
	t.Run("missing recipient cancels without a call", func(t *testing.T) {
		a := newArgs("bounced")
		a.RecipientID = uuid.Nil
		id := b.insert(t, a)
		b.waitState(t, id, "cancelled")
	})
	t.Run("unavailable is retried", func(t *testing.T) {
		id := b.insert(t, with("flaky"))
		s := b.waitState(t, id, "completed")
		require.Equal(t, jobState{State: "completed", Attempt: 2, Errors: 1}, s)
	})

	// Only the jobs with a valid status and recipient reached the service: erased, invalid,
	// and flaky twice.
	require.Len(t, b.fake.Calls, 4)
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	w := recipientstatus.NewWorker(nil, tenancy.NewSigner(secret), zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	require.Equal(t, 30*time.Second, w.Timeout(&river.Job[jobs.RecipientStatusArgs]{}))
}
