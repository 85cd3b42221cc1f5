package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
	"github.com/heraldmail/herald/services/recipient/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type bundle struct {
	pool   *pgxpool.Pool
	tenant tenancy.Tenant
}

func setup(t *testing.T) (*store.Store, bundle) {
	t.Helper()
	pool := pgtest.PoolAs(t, migrations.RoleRecipient)
	inserter, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	return store.New(pool, inserter), bundle{
		pool:   pool,
		tenant: tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()},
	}
}

// insertOpts describes a row to insert; zero fields get defaults.
type insertOpts struct {
	Email      string
	Attributes map[string]any
}

func insert(t *testing.T, s *store.Store, tn tenancy.Tenant, o insertOpts) recipient.Recipient {
	t.Helper()
	if o.Email == "" {
		o.Email = "s-" + uuid.NewString()[:8] + "@example.com"
	}
	if o.Attributes == nil {
		o.Attributes = map[string]any{}
	}
	r, err := s.Create(context.Background(), tn, recipient.NewRecipient{Email: o.Email, Attributes: o.Attributes})
	require.NoError(t, err)
	return r
}

func TestStore_CreateGet(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	ctx := context.Background()
	attrs := map[string]any{"plan": "pro", "seats": 3.0, "nested": map[string]any{"ok": true, "none": nil}}
	r := insert(t, s, b.tenant, insertOpts{Email: "ops@example.com", Attributes: attrs})
	require.Equal(t, b.tenant, r.Tenant)
	require.Equal(t, recipient.StatusSubscribed, r.Status)
	require.Equal(t, attrs, r.Attributes)
	require.True(t, r.CreatedAt.Equal(r.UpdatedAt))

	got, err := s.Get(ctx, b.tenant, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got)

	_, err = s.Create(ctx, b.tenant, recipient.NewRecipient{Email: "ops@example.com", Attributes: map[string]any{}})
	require.ErrorIs(t, err, recipient.ErrAlreadyExists)

	_, err = s.Get(ctx, b.tenant, uuid.New())
	require.ErrorIs(t, err, recipient.ErrNotFound)
}

func TestStore_tenantFilter(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	ctx := context.Background()
	r := insert(t, s, b.tenant, insertOpts{})

	variants := map[string]func(*tenancy.Tenant){
		"company":   func(tn *tenancy.Tenant) { tn.CompanyID = uuid.New() },
		"workspace": func(tn *tenancy.Tenant) { tn.WorkspaceID = uuid.New() },
		"domain":    func(tn *tenancy.Tenant) { tn.DomainID = uuid.New() },
	}
	for name, change := range variants {
		tn := b.tenant
		change(&tn)
		_, err := s.Get(ctx, tn, r.ID)
		require.ErrorIs(t, err, recipient.ErrNotFound, "another %s", name)
		_, err = s.Update(ctx, tn, r.ID, func(cur recipient.Recipient) (recipient.Recipient, bool, error) {
			t.Errorf("apply called for another %s", name)
			return cur, false, nil
		})
		require.ErrorIs(t, err, recipient.ErrNotFound, "another %s", name)
	}

	_, err := s.Get(ctx, tenancy.Tenant{}, r.ID)
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
}

func TestStore_Update(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	ctx := context.Background()
	at := time.Date(2031, 2, 3, 4, 5, 6, 7000, time.UTC)

	t.Run("writes what apply returns", func(t *testing.T) {
		t.Parallel()
		r := insert(t, s, b.tenant, insertOpts{})
		event := uuid.New()
		got, err := s.Update(ctx, b.tenant, r.ID, func(cur recipient.Recipient) (recipient.Recipient, bool, error) {
			require.Equal(t, r, cur)
			cur.Status = recipient.StatusComplained
			cur.StatusReason = "spam report"
			cur.StatusChangedAt = at
			cur.LastEventID = event
			cur.UpdatedAt = at
			// Fields outside the status are not written.
			cur.Email = "changed@example.com"
			return cur, true, nil
		})
		require.NoError(t, err)
		require.Equal(t, recipient.StatusComplained, got.Status)
		require.Equal(t, "spam report", got.StatusReason)
		require.True(t, at.Equal(got.StatusChangedAt))
		require.True(t, at.Equal(got.UpdatedAt))
		require.Equal(t, event, got.LastEventID)
		require.Equal(t, r.Email, got.Email)

		again, err := s.Get(ctx, b.tenant, r.ID)
		require.NoError(t, err)
		require.Equal(t, got, again)
	})

	t.Run("no change writes nothing", func(t *testing.T) {
		t.Parallel()
		r := insert(t, s, b.tenant, insertOpts{})
		got, err := s.Update(ctx, b.tenant, r.ID, func(cur recipient.Recipient) (recipient.Recipient, bool, error) {
			cur.Status = recipient.StatusBounced
			return cur, false, nil
		})
		require.NoError(t, err)
		require.Equal(t, r, got)
		stored, err := s.Get(ctx, b.tenant, r.ID)
		require.NoError(t, err)
		require.Equal(t, r, stored)
	})

	t.Run("apply's error rolls back", func(t *testing.T) {
		t.Parallel()
		r := insert(t, s, b.tenant, insertOpts{})
		boom := errors.New("boom")
		_, err := s.Update(ctx, b.tenant, r.ID, func(cur recipient.Recipient) (recipient.Recipient, bool, error) {
			return cur, false, boom
		})
		require.ErrorIs(t, err, boom)
	})

	t.Run("the row is locked: concurrent replays of one event apply once", func(t *testing.T) {
		t.Parallel()
		r := insert(t, s, b.tenant, insertOpts{})
		ch := recipient.StatusChange{Status: recipient.StatusUnsubscribed, Reason: "link", EventID: uuid.New()}
		var applied atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				_, err := s.Update(ctx, b.tenant, r.ID, func(cur recipient.Recipient) (recipient.Recipient, bool, error) {
					next, changed := recipient.Apply(cur, ch, at)
					if changed {
						applied.Add(1)
					}
					return next, changed, nil
				})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int32(1), applied.Load())
	})
}

func TestStore_constraintsBackstop(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	// The business rules reject NUL before the store; the store still reports it as invalid
	// rather than as an internal error.
	_, err := s.Create(context.Background(), b.tenant, recipient.NewRecipient{Email: "nul@example.com", Attributes: map[string]any{"a": "x\x00"}})
	require.ErrorIs(t, err, recipient.ErrInvalid)
}
