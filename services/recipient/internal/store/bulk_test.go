package store_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
	"github.com/heraldmail/herald/services/recipient/internal/store"
)

// bulkBundle is a store as the service's role plus a superuser pool on the same database.
type bulkBundle struct {
	store  *store.Store
	admin  *pgxpool.Pool
	tenant tenancy.Tenant
}

func setupBulk(t testing.TB) bulkBundle {
	t.Helper()
	url := pgtest.URL(t)
	pool := pgtest.Open(t, pgtest.URLAs(t, url, migrations.RoleRecipient))
	inserter, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	return bulkBundle{
		store:  store.New(pool, inserter),
		admin:  pgtest.Open(t, url),
		tenant: tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()},
	}
}

// seed inserts n recipients of tn as the superuser: every third one has plan "pro".
func seed(t testing.TB, admin *pgxpool.Pool, tn tenancy.Tenant, n int) {
	t.Helper()
	_, err := admin.Exec(context.Background(), `INSERT INTO recipient.recipients
		(company_id, workspace_id, domain_id, email, attributes, created_at)
		SELECT $1, $2, $3, 'r' || i || '@example.com',
			jsonb_build_object('plan', CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END, 'score', i),
			now() - interval '1 hour' + i * interval '1 millisecond'
		FROM generate_series(1, $4) AS i`, tn.CompanyID, tn.WorkspaceID, tn.DomainID, n)
	require.NoError(t, err)
}

// recordChanges makes every UPDATE and DELETE of a recipient leave its id in
// public.bulk_applied, and makes the batch statement that is the crashAt-th change of the
// test fail, once: a sequence is not rolled back, so the retry goes through.
func recordChanges(t *testing.T, admin *pgxpool.Pool, crashAt int) {
	t.Helper()
	_, err := admin.Exec(context.Background(), `
		CREATE TABLE public.bulk_applied (id uuid NOT NULL);
		CREATE SEQUENCE public.bulk_statements;
		CREATE FUNCTION public.record_bulk() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
		BEGIN
			INSERT INTO public.bulk_applied SELECT id FROM old_rows;
			IF nextval('public.bulk_statements') = `+strconv.Itoa(crashAt)+` THEN
				RAISE EXCEPTION 'simulated crash in the middle of a batch';
			END IF;
			RETURN NULL;
		END $$;
		CREATE TRIGGER record_bulk_update AFTER UPDATE ON recipient.recipients
			REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.record_bulk();
		CREATE TRIGGER record_bulk_delete AFTER DELETE ON recipient.recipients
			REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.record_bulk();`)
	require.NoError(t, err)
}

// TestStore_RunBulkBatch_exactlyOnce runs a bulk status change over 1,000 recipients in
// batches of 50 the way a crashing, retried worker would: a batch fails in the middle (its
// transaction rolls back), a response is lost after its batch committed (the caller runs the
// next call blind), and two attempts run at once. Every matching recipient is changed
// exactly once; nothing else is touched.
func TestStore_RunBulkBatch_exactlyOnce(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	ctx := context.Background()
	seed(t, b.admin, b.tenant, 1000)
	other := b.tenant
	other.DomainID = uuid.New()
	seed(t, b.admin, other, 30)

	op, err := b.store.CreateBulk(ctx, b.tenant, recipient.BulkOperation{
		Action: recipient.BulkUpdateStatus,
		Filter: recipient.Filter{Attributes: []recipient.Condition{{Key: "plan", Op: recipient.OpEq, Value: "pro"}}},
		Params: recipient.BulkParams{Status: recipient.StatusUnsubscribed, StatusReason: "bulk"},
	})
	require.NoError(t, err)
	require.Equal(t, recipient.BulkPending, op.State)

	// The job was enqueued with the operation, in its transaction.
	var jobsFor int
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM river.river_job
		WHERE kind = 'bulk_operation' AND queue = $1 AND args->>'operation_id' = $2`,
		jobs.QueueBulkOperations, op.ID.String()).Scan(&jobsFor))
	require.Equal(t, 1, jobsFor)

	// A recipient created after the operation is left alone, though it matches.
	late, err := b.store.Create(ctx, b.tenant, recipient.NewRecipient{Email: "late@example.com", Attributes: map[string]any{"plan": "pro"}})
	require.NoError(t, err)

	recordChanges(t, b.admin, 3)
	now := time.Now()
	const size = 50

	// Batches 1 and 2 commit; batch 3 fails in the middle and rolls back.
	for range 2 {
		_, n, err := b.store.RunBulkBatch(ctx, b.tenant, op.ID, size, now)
		require.NoError(t, err)
		require.Equal(t, int64(size), n)
	}
	_, _, err = b.store.RunBulkBatch(ctx, b.tenant, op.ID, size, now)
	require.ErrorContains(t, err, "simulated crash")

	mid, err := b.store.GetBulk(ctx, b.tenant, op.ID)
	require.NoError(t, err)
	require.Equal(t, recipient.BulkRunning, mid.State)
	require.Equal(t, int64(333), mid.Matched)
	require.Equal(t, int64(2*size), mid.Done)
	require.InDelta(t, 100*float64(2*size)/333, mid.Percent(), 0.001)

	// Two attempts at once (a retry while a stale attempt still runs) until the end.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			for {
				got, _, err := b.store.RunBulkBatch(ctx, b.tenant, op.ID, size, now)
				if err != nil {
					errs <- err
					return
				}
				if got.State.Finished() {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	done, err := b.store.GetBulk(ctx, b.tenant, op.ID)
	require.NoError(t, err)
	require.Equal(t, recipient.BulkSucceeded, done.State)
	require.Equal(t, int64(333), done.Done)
	require.InDelta(t, 100.0, done.Percent(), 0)
	require.False(t, done.FinishedAt.IsZero())

	// Once finished, more calls change nothing.
	again, n, err := b.store.RunBulkBatch(ctx, b.tenant, op.ID, size, now)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, done, again)

	var changed, distinct, pro int
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM public.bulk_applied`).Scan(&changed, &distinct))
	require.Equal(t, 333, changed, "every matching recipient changed exactly once")
	require.Equal(t, 333, distinct)
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM recipient.recipients
		WHERE domain_id = $1 AND attributes->>'plan' = 'pro' AND status = 'unsubscribed' AND status_reason = 'bulk'
		  AND id IN (SELECT id FROM public.bulk_applied)`, b.tenant.DomainID).Scan(&pro))
	require.Equal(t, 333, pro)
	var untouched int
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM recipient.recipients
		WHERE status <> 'subscribed' AND (domain_id <> $1 OR attributes->>'plan' <> 'pro' OR id = $2)`,
		b.tenant.DomainID, late.ID).Scan(&untouched))
	require.Zero(t, untouched, "no other recipient, no other domain, nothing created later")
}

func TestStore_RunBulkBatch_attributesAndDelete(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	ctx := context.Background()
	seed(t, b.admin, b.tenant, 120)
	now := time.Now()

	run := func(op recipient.BulkOperation) recipient.BulkOperation {
		t.Helper()
		op, err := b.store.CreateBulk(ctx, b.tenant, op)
		require.NoError(t, err)
		for {
			got, _, err := b.store.RunBulkBatch(ctx, b.tenant, op.ID, 7, now)
			require.NoError(t, err)
			if got.State.Finished() {
				return got
			}
		}
	}

	upd := run(recipient.BulkOperation{
		Action: recipient.BulkUpdateAttributes,
		Filter: recipient.Filter{Attributes: []recipient.Condition{{Key: "score", Op: recipient.OpGe, Value: 100.0}}},
		Params: recipient.BulkParams{Attributes: map[string]any{"plan": nil, "vip": true}},
	})
	require.Equal(t, int64(21), upd.Done)
	var vip, withPlan int
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE attributes->'vip' = 'true'),
		count(*) FILTER (WHERE attributes ? 'plan') FROM recipient.recipients WHERE domain_id = $1`, b.tenant.DomainID).Scan(&vip, &withPlan))
	require.Equal(t, 21, vip)
	require.Equal(t, 99, withPlan)

	del := run(recipient.BulkOperation{
		Action: recipient.BulkDelete,
		Filter: recipient.Filter{Attributes: []recipient.Condition{{Key: "plan", Op: recipient.OpEq, Value: "free"}}},
	})
	require.Equal(t, int64(66), del.Done)
	var left int
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM recipient.recipients WHERE domain_id = $1`, b.tenant.DomainID).Scan(&left))
	require.Equal(t, 54, left)

	// The counters followed every change.
	page, err := b.store.List(ctx, b.tenant, recipient.Query{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, int64(54), page.Total)
	require.True(t, page.TotalExact)

	// Another domain cannot see or run the operation.
	other := b.tenant
	other.DomainID = uuid.New()
	_, err = b.store.GetBulk(ctx, other, del.ID)
	require.ErrorIs(t, err, recipient.ErrOperationNotFound)
	_, _, err = b.store.RunBulkBatch(ctx, other, del.ID, 7, now)
	require.ErrorIs(t, err, recipient.ErrOperationNotFound)
}
