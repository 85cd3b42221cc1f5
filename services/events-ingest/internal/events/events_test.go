package events_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// recordingStore is the real store, recording the size of every transaction it writes.
type recordingStore struct {
	events.Store
	mu      sync.Mutex
	batches []int
}

func (r *recordingStore) Insert(ctx context.Context, t tenancy.Tenant, evs []events.Event) (int, error) {
	r.mu.Lock()
	r.batches = append(r.batches, len(evs))
	r.mu.Unlock()
	return r.Store.Insert(ctx, t, evs)
}

type bundle struct {
	pool   *pgxpool.Pool
	store  *recordingStore
	tenant tenancy.Tenant
	reg    *prometheus.Registry
}

func (r *recordingStore) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func setup(t *testing.T) (*events.Service, bundle) {
	t.Helper()
	b, bb := setupBatcher(t, events.BatcherConfig{})
	return events.NewService(b, func() time.Time { return now }), bb
}

// setupStore returns the real store on a database of the test's own.
func setupStore(t *testing.T) bundle {
	t.Helper()
	pool := pgtest.Pool(t)
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	rs := &recordingStore{Store: store.New(pool, ins)}
	return bundle{pool: pool, store: rs, tenant: newTenant(), reg: prometheus.NewRegistry()}
}

// setupBatcher returns a batcher with cfg on the real store, closed at the end of the test.
func setupBatcher(t *testing.T, cfg events.BatcherConfig) (*events.Batcher, bundle) {
	t.Helper()
	bb := setupStore(t)
	b, err := events.NewBatcher(bb.store, cfg, bb.reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	return b, bb
}

func newTenant() tenancy.Tenant {
	return tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
}

func newInput(typ events.Type) events.Input {
	return events.Input{
		ID:          uuid.NewString(),
		Type:        typ,
		CampaignID:  uuid.NewString(),
		RecipientID: uuid.NewString(),
		OccurredAt:  now.Add(-time.Minute),
	}
}

func inputs(n int) []events.Input {
	out := make([]events.Input, n)
	for i := range out {
		out[i] = newInput(events.TypeDelivered)
	}
	return out
}

func count(t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), query).Scan(&n))
	return n
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*events.Input)
		field  string
		reason string
	}{
		{"id missing", func(in *events.Input) { in.ID = "" }, "id", "must be a UUID"},
		{"id not a uuid", func(in *events.Input) { in.ID = "evt-1" }, "id", "must be a UUID"},
		{"id nil uuid", func(in *events.Input) { in.ID = uuid.Nil.String() }, "id", "must be a UUID"},
		{"type unset", func(in *events.Input) { in.Type = "" }, "type", "must be set"},
		{"type unknown", func(in *events.Input) { in.Type = "forward" }, "type", "must be set"},
		{"occur_time unset", func(in *events.Input) { in.OccurredAt = time.Time{} }, "occur_time", "must be set"},
		{"occur_time far future", func(in *events.Input) { in.OccurredAt = now.Add(time.Hour + time.Second) }, "occur_time", "1h in the future"},
		{"campaign_id not a uuid", func(in *events.Input) { in.CampaignID = "x" }, "campaign_id", "must be a UUID"},
		{"recipient_id not a uuid", func(in *events.Input) { in.RecipientID = "x" }, "recipient_id", "must be a UUID"},
		{"bounce without recipient", func(in *events.Input) { in.Type = events.TypeBounce; in.RecipientID = "" }, "recipient_id", "must be set for bounce"},
		{"complaint without recipient", func(in *events.Input) { in.Type = events.TypeComplaint; in.RecipientID = "" }, "recipient_id", "must be set for complaint"},
		{"unsubscribe without recipient", func(in *events.Input) { in.Type = events.TypeUnsubscribe; in.RecipientID = "" }, "recipient_id", "must be set for unsubscribe"},
		{"user agent too long", func(in *events.Input) { in.UserAgent = strings.Repeat("a", events.MaxUserAgentLen+1) }, "user_agent", "at most"},
		{"url with NUL", func(in *events.Input) { in.URL = "https://a\x00" }, "url", "NUL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			batch := inputs(3)
			tc.mutate(&batch[2])
			_, err := events.Validate(batch, now, -1)
			require.ErrorIs(t, err, events.ErrInvalid)
			var verr *events.ValidationError
			require.ErrorAs(t, err, &verr)
			require.Equal(t, 2, verr.Index)
			require.Equal(t, tc.field, verr.Field)
			require.Contains(t, verr.Reason, tc.reason)
			require.True(t, strings.HasPrefix(err.Error(), "events[2]."+tc.field+": "), err.Error())
		})
	}

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		in := newInput(events.TypeClick)
		in.CampaignID = ""
		in.OccurredAt = now.Add(time.Hour) // exactly at the limit
		in.URL = "https://example.com"
		evs, err := events.Validate([]events.Input{in}, now, -1)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Equal(t, uuid.MustParse(in.ID), evs[0].ID)
		require.False(t, evs[0].CampaignID.Valid)
		require.True(t, evs[0].RecipientID.Valid)
		require.Equal(t, in.URL, evs[0].URL)
	})

	t.Run("batch size", func(t *testing.T) {
		t.Parallel()
		_, err := events.Validate(inputs(events.MaxBatch+1), now, -1)
		require.ErrorIs(t, err, events.ErrInvalid)
		require.EqualError(t, err, "events: at most 1000 events per batch, got 1001: split the batch")

		_, err = events.Validate(nil, now, -1)
		require.ErrorIs(t, err, events.ErrInvalid)

		_, err = events.Validate(inputs(events.MaxBatch), now, -1)
		require.NoError(t, err)
	})

	t.Run("stream message named", func(t *testing.T) {
		t.Parallel()
		batch := inputs(1)
		batch[0].ID = "nope"
		_, err := events.Validate(batch, now, 4)
		require.EqualError(t, err, "message 4: events[0].id: must be a UUID")
	})
}

func TestStatusChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ            events.Type
		class          string
		status, reason string
		ok             bool
	}{
		{events.TypeBounce, "hard", "bounced", "bounce: hard", true},
		{events.TypeBounce, "", "bounced", "bounce", true},
		{events.TypeComplaint, "", "complained", "complaint", true},
		{events.TypeUnsubscribe, "", "unsubscribed", "unsubscribe", true},
		{events.TypeOpen, "", "", "", false},
		{events.TypeSent, "", "", "", false},
	} {
		status, reason, ok := events.StatusChange(tc.typ, tc.class)
		require.Equal(t, tc.ok, ok, tc.typ)
		require.Equal(t, tc.status, status, tc.typ)
		require.Equal(t, tc.reason, reason, tc.typ)
	}
}

func TestIngest(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	batch := inputs(5)
	batch[1].Type = events.TypeBounce
	batch[4] = batch[0] // the same event twice in one batch

	res, err := svc.Ingest(ctx, b.tenant, batch)
	require.NoError(t, err)
	require.Equal(t, events.Result{Accepted: 4, Duplicates: 1}, res)
	require.Equal(t, 4, count(t, b.pool, `SELECT count(*) FROM `+eventsTable))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM river.river_job WHERE kind = 'recipient_status'`))

	res, err = svc.Ingest(ctx, b.tenant, batch)
	require.NoError(t, err)
	require.Equal(t, events.Result{Accepted: 0, Duplicates: 5}, res)
	require.Equal(t, 4, count(t, b.pool, `SELECT count(*) FROM `+eventsTable))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM river.river_job`))
}

func TestIngest_invalidWritesNothing(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	batch := inputs(3)
	batch[0].Type = events.TypeBounce
	batch[2].OccurredAt = time.Time{}
	_, err := svc.Ingest(context.Background(), b.tenant, batch)
	require.ErrorIs(t, err, events.ErrInvalid)
	require.Equal(t, 0, count(t, b.pool, `SELECT count(*) FROM `+eventsTable))
	require.Equal(t, 0, count(t, b.pool, `SELECT count(*) FROM river.river_job`))
	require.Empty(t, b.store.sizes())
}
