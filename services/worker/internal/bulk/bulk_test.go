package bulk_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations/pgtest"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldmail/herald/services/worker/internal/bulk"
	"github.com/heraldmail/herald/services/worker/internal/runner"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const secret = "test-secret-test-secret-test-secret-0123"

// fake is the recipient service's side of a bulk operation, kept in memory: like the real
// one, it commits a batch and its position together, so a call whose answer is lost leaves
// the batch applied and the next call goes on after it.
type fake struct {
	recipientv1.UnimplementedRecipientServiceServer
	mu      sync.Mutex
	tenant  tenancy.Tenant
	opID    uuid.UUID
	items   int
	cursor  int
	applied []int
	calls   int
	// loseAnswer lists the calls (1-based) whose batch is committed but whose answer is
	// replaced by an error, as when the worker dies before it reads it.
	loseAnswer map[int]bool
	sizes      []int32
	principals []tenancy.Principal
}

func (f *fake) RunBulkOperationBatch(ctx context.Context, req *recipientv1.RunBulkOperationBatchRequest) (*recipientv1.RunBulkOperationBatchResponse, error) {
	p, _ := tenancy.PrincipalFrom(ctx)
	t, err := tenancy.Scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil || t != f.tenant || req.GetOperationId() != f.opID.String() {
		return nil, status.Error(codes.NotFound, "bulk operation not found")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.sizes = append(f.sizes, req.GetBatchSize())
	f.principals = append(f.principals, p)
	size := int(req.GetBatchSize())
	n := 0
	for ; n < size && f.cursor < f.items; n++ {
		f.applied[f.cursor]++
		f.cursor++
	}
	state := recipientv1.BulkOperationState_BULK_OPERATION_STATE_RUNNING
	if n < size {
		state = recipientv1.BulkOperationState_BULK_OPERATION_STATE_SUCCEEDED
	}
	if f.loseAnswer[f.calls] {
		return nil, status.Error(codes.Unavailable, "connection reset")
	}
	return &recipientv1.RunBulkOperationBatchResponse{
		Applied:   int64(n),
		Operation: &recipientv1.BulkOperation{Id: f.opID.String(), State: state, Matched: int64(f.items), Done: int64(f.cursor)},
	}, nil
}

type bundle struct {
	pool     *pgxpool.Pool
	inserter *jobs.Inserter
}

func setup(t *testing.T, f *fake, opts bulk.Options) bundle {
	t.Helper()
	pool := pgtest.Pool(t)
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))

	srv, hs := rpc.NewServer(rpc.ServerOptions{Log: zap.NewNop(), Registry: metrics.NewRegistry(), Verifier: tenancy.NewVerifier(secret)})
	recipientv1.RegisterRecipientServiceServer(srv, f)
	hs.SetServing(recipientv1.RecipientService_ServiceDesc.ServiceName)
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		require.NoError(t, <-served)
	})
	cc, err := rpc.Dial(ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })

	workers := river.NewWorkers()
	river.AddWorker(workers, bulk.NewWorker(recipientv1.NewRecipientServiceClient(cc), tenancy.NewSigner(secret), log, opts))
	client, err := runner.NewClient(pool, workers, log)
	require.NoError(t, err)
	comp := runner.Component(client, log)
	done := make(chan error, 1)
	go func() { done <- comp.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, comp.Shutdown(ctx))
		require.NoError(t, <-done)
	})
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	return bundle{pool: pool, inserter: ins}
}

func newFake(items int) *fake {
	return &fake{
		tenant:  tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()},
		opID:    uuid.New(),
		items:   items,
		applied: make([]int, items),
	}
}

func (f *fake) args(batch int) jobs.BulkOperationArgs {
	return jobs.BulkOperationArgs{CompanyID: f.tenant.CompanyID, WorkspaceID: f.tenant.WorkspaceID, DomainID: f.tenant.DomainID, OperationID: f.opID, BatchSize: batch}
}

func waitState(t *testing.T, pool *pgxpool.Pool, id int64, want string) (attempt int) {
	t.Helper()
	var state string
	require.Eventually(t, func() bool {
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT state, attempt FROM river.river_job WHERE id = $1`, id).Scan(&state, &attempt))
		return state == want
	}, 30*time.Second, 20*time.Millisecond, "job %d never reached %s (last %s)", id, want, state)
	return attempt
}

// A job whose attempt fails after a batch committed is retried by River and goes on after
// that batch: every recipient is changed exactly once.
func TestWork_retryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	f := newFake(1000)
	f.loseAnswer = map[int]bool{4: true}
	b := setup(t, f, bulk.Options{})
	res, err := b.inserter.Insert(context.Background(), f.args(64), nil)
	require.NoError(t, err)

	attempt := waitState(t, b.pool, res.Job.ID, "completed")
	require.Equal(t, 2, attempt)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.applied {
		require.Equal(t, 1, n, "item %d", i)
	}
	require.Equal(t, 1000/64+1, f.calls, "one call per batch, none repeated")
	for _, s := range f.sizes {
		require.Equal(t, int32(64), s)
	}
	for _, p := range f.principals {
		require.Equal(t, tenancy.KindService, p.Kind)
		require.Equal(t, "service:worker", p.Subject)
		require.Equal(t, f.tenant.WorkspaceID, p.WorkspaceID, "token narrowed to the partition")
		require.Equal(t, f.tenant.DomainID, p.DomainID)
	}
}

// An attempt whose time slice is over hands over to the next attempt (snooze) between two
// batches; the operation still ends with every recipient changed once.
func TestWork_timeSlices(t *testing.T) {
	t.Parallel()
	f := newFake(30)
	b := setup(t, f, bulk.Options{AttemptDuration: time.Nanosecond, BatchSize: 10})
	res, err := b.inserter.Insert(context.Background(), f.args(0), nil)
	require.NoError(t, err)
	waitState(t, b.pool, res.Job.ID, "completed")
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.applied {
		require.Equal(t, 1, n, "item %d", i)
	}
	require.Equal(t, 4, f.calls)
}

// A job for an operation the recipient service does not know (another partition, or gone)
// completes without retrying; one without ids is cancelled.
func TestWork_notFoundAndInvalid(t *testing.T) {
	t.Parallel()
	f := newFake(5)
	b := setup(t, f, bulk.Options{})
	stray := f.args(0)
	stray.OperationID = uuid.New()
	res, err := b.inserter.Insert(context.Background(), stray, nil)
	require.NoError(t, err)
	require.Equal(t, 1, waitState(t, b.pool, res.Job.ID, "completed"))

	bad := f.args(0)
	bad.DomainID = uuid.Nil
	res, err = b.inserter.Insert(context.Background(), bad, nil)
	require.NoError(t, err)
	waitState(t, b.pool, res.Job.ID, "cancelled")
}
