package events_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/stretchr/testify/require"
)

// eventsTable is where the store writes.
const eventsTable = "events.email_events"

func newEvents(t *testing.T, n int) []events.Event {
	t.Helper()
	evs, err := events.Validate(inputs(n), now, -1)
	require.NoError(t, err)
	return evs
}

// gatedStore holds every write until the test lets it through, so that a test sees the state
// between a submission and its commit.
type gatedStore struct {
	events.Store
	entered chan int
	release chan struct{}
}

func newGatedStore(s events.Store) *gatedStore {
	return &gatedStore{Store: s, entered: make(chan int, 100), release: make(chan struct{})}
}

func (g *gatedStore) Insert(ctx context.Context, t tenancy.Tenant, evs []events.Event) (int, error) {
	g.entered <- len(evs)
	<-g.release
	return g.Store.Insert(ctx, t, evs)
}

func isDone(p *events.Pending) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

func waitDone(t *testing.T, p *events.Pending) events.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.Wait(ctx)
	require.NoError(t, err)
	return r
}

func TestBatcher_sizeTriggersWrite(t *testing.T) {
	t.Parallel()
	// The time trigger is out of reach: only full batches are written until Close.
	b, bb := setupBatcher(t, events.BatcherConfig{BatchSize: 100, FlushInterval: time.Hour})
	first, err := b.Submit(bb.tenant, newEvents(t, 150))
	require.NoError(t, err)
	second, err := b.Submit(bb.tenant, newEvents(t, 80))
	require.NoError(t, err)

	// 150+80 events: two full batches (100, 100) are written, 30 wait.
	require.Equal(t, events.Result{Accepted: 150}, waitDone(t, first))
	require.Eventually(t, func() bool { return len(bb.store.sizes()) == 2 }, 10*time.Second, 5*time.Millisecond)
	require.False(t, isDone(second), "30 of its events are still waiting for their batch")
	require.Equal(t, []int{100, 100}, bb.store.sizes())

	require.NoError(t, b.Close(context.Background()))
	require.Equal(t, events.Result{Accepted: 80}, waitDone(t, second))
	require.Equal(t, []int{100, 100, 30}, bb.store.sizes())
	require.Equal(t, 230, count(t, bb.pool, `SELECT count(*) FROM `+eventsTable))
}

func TestBatcher_timeTriggersWrite(t *testing.T) {
	t.Parallel()
	b, bb := setupBatcher(t, events.BatcherConfig{BatchSize: 1000, FlushInterval: 20 * time.Millisecond})
	p, err := b.Submit(bb.tenant, newEvents(t, 5))
	require.NoError(t, err)
	require.Equal(t, events.Result{Accepted: 5}, waitDone(t, p))
	require.Equal(t, []int{5}, bb.store.sizes())
}

func TestBatcher_batchesCallersOfOneTenantTogether(t *testing.T) {
	t.Parallel()
	b, bb := setupBatcher(t, events.BatcherConfig{BatchSize: 1000, FlushInterval: time.Hour})
	other := newTenant()
	shared := newEvents(t, 1)
	var pend []*events.Pending
	for _, submit := range []struct {
		tenant tenancy.Tenant
		evs    []events.Event
	}{
		{bb.tenant, append(newEvents(t, 3), shared...)},
		{bb.tenant, append(newEvents(t, 2), shared...)}, // the same event from two callers
		{other, newEvents(t, 4)},
	} {
		p, err := b.Submit(submit.tenant, submit.evs)
		require.NoError(t, err)
		pend = append(pend, p)
	}
	require.NoError(t, b.Close(context.Background()))
	require.Equal(t, events.Result{Accepted: 4}, waitDone(t, pend[0]))
	require.Equal(t, events.Result{Accepted: 2, Duplicates: 1}, waitDone(t, pend[1]))
	require.Equal(t, events.Result{Accepted: 4}, waitDone(t, pend[2]))
	// One transaction per tenant, the repeated id written once.
	require.ElementsMatch(t, []int{6, 4}, bb.store.sizes())
	require.Equal(t, 10, count(t, bb.pool, `SELECT count(*) FROM `+eventsTable))
}

func TestBatcher_answersOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	bb := setupStore(t)
	gate := newGatedStore(bb.store)
	b, err := events.NewBatcher(gate, events.BatcherConfig{BatchSize: 10, FlushInterval: time.Hour}, nil)
	require.NoError(t, err)

	p, err := b.Submit(bb.tenant, newEvents(t, 10))
	require.NoError(t, err)
	require.Equal(t, 10, <-gate.entered)
	require.False(t, isDone(p), "answered before the write")
	require.Equal(t, 0, count(t, bb.pool, `SELECT count(*) FROM `+eventsTable))

	close(gate.release)
	require.Equal(t, events.Result{Accepted: 10}, waitDone(t, p))
	// Answered means committed: another connection sees every row.
	require.Equal(t, 10, count(t, bb.pool, `SELECT count(*) FROM `+eventsTable))
	require.NoError(t, b.Close(context.Background()))
}

func TestBatcher_failedWriteFailsExactlyItsCallers(t *testing.T) {
	t.Parallel()
	b, bb := setupBatcher(t, events.BatcherConfig{BatchSize: 1000, FlushInterval: time.Hour})
	// The store refuses a tenant without a domain: a real failing transaction.
	broken := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New()}
	failA, err := b.Submit(broken, newEvents(t, 3))
	require.NoError(t, err)
	failB, err := b.Submit(broken, newEvents(t, 2))
	require.NoError(t, err)
	ok, err := b.Submit(bb.tenant, newEvents(t, 4))
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))

	for _, p := range []*events.Pending{failA, failB} {
		<-p.Done()
		res, err := p.Result()
		require.ErrorIs(t, err, events.ErrNotStored)
		require.Zero(t, res)
	}
	require.Equal(t, events.Result{Accepted: 4}, waitDone(t, ok))
	require.Equal(t, 4, count(t, bb.pool, `SELECT count(*) FROM `+eventsTable))
	require.InDelta(t, 1, metric(t, bb, "herald_ingest_failed_batches_total"), 0)
}

func TestBatcher_fullBufferTurnsCallersAway(t *testing.T) {
	t.Parallel()
	bb := setupStore(t)
	gate := newGatedStore(bb.store)
	b, err := events.NewBatcher(gate, events.BatcherConfig{
		BatchSize: 5, FlushInterval: time.Hour, Capacity: 10, RetryAfter: 3 * time.Second,
	}, bb.reg)
	require.NoError(t, err)

	held, err := b.Submit(bb.tenant, newEvents(t, 10)) // two batches, both held by the gate
	require.NoError(t, err)
	<-gate.entered

	_, err = b.Submit(bb.tenant, newEvents(t, 1))
	var full *events.BufferFullError
	require.True(t, errors.As(err, &full), "%v", err)
	require.ErrorIs(t, err, events.ErrBufferFull)
	require.Equal(t, 3*time.Second, full.RetryAfter)
	require.InDelta(t, 1, metric(t, bb, "herald_ingest_rejected_events_total"), 0)
	require.InDelta(t, 10, metric(t, bb, "herald_ingest_buffer_events"), 0)

	close(gate.release)
	require.Equal(t, events.Result{Accepted: 10}, waitDone(t, held))
	// The room is back once the writes committed.
	again, err := b.Submit(bb.tenant, newEvents(t, 10))
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))
	require.Equal(t, events.Result{Accepted: 10}, waitDone(t, again))
	require.Equal(t, 20, count(t, bb.pool, `SELECT count(*) FROM `+eventsTable))
	require.InDelta(t, 0, metric(t, bb, "herald_ingest_buffer_events"), 0)
}

func TestBatcher_closeWritesEverythingAndAnswersEveryone(t *testing.T) {
	t.Parallel()
	b, bb := setupBatcher(t, events.BatcherConfig{BatchSize: 50, FlushInterval: time.Hour, Writers: 2})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		pend []*events.Pending
	)
	for range 20 {
		wg.Go(func() {
			p, err := b.Submit(bb.tenant, newEvents(t, 7))
			if err == nil {
				mu.Lock()
				pend = append(pend, p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, pend, 20)
	require.NoError(t, b.Close(context.Background()))
	for _, p := range pend {
		require.True(t, isDone(p), "a caller is still waiting after Close")
		require.Equal(t, events.Result{Accepted: 7}, waitDone(t, p))
	}
	require.Equal(t, 140, count(t, bb.pool, `SELECT count(*) FROM `+eventsTable))

	_, err := b.Submit(bb.tenant, newEvents(t, 1))
	require.ErrorIs(t, err, events.ErrShuttingDown)
}

func TestBatcher_retryCountsOnce(t *testing.T) {
	t.Parallel()
	b, bb := setupBatcher(t, events.BatcherConfig{BatchSize: 100, FlushInterval: time.Millisecond})
	evs := newEvents(t, 30)
	p, err := b.Submit(bb.tenant, evs)
	require.NoError(t, err)
	require.Equal(t, events.Result{Accepted: 30}, waitDone(t, p))
	p, err = b.Submit(bb.tenant, evs)
	require.NoError(t, err)
	require.Equal(t, events.Result{Duplicates: 30}, waitDone(t, p))
	require.Equal(t, 30, count(t, bb.pool, `SELECT count(*) FROM `+eventsTable))
}

func TestNewBatcher_rejectsBatchLargerThanCapacity(t *testing.T) {
	t.Parallel()
	_, err := events.NewBatcher(nil, events.BatcherConfig{BatchSize: 10, Capacity: 5}, nil)
	require.Error(t, err)
}

// metric is the value of the batcher's metric name (a gauge or counter without labels).
func metric(t *testing.T, bb bundle, name string) float64 {
	t.Helper()
	mfs, err := bb.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// idStore adds the real store's InsertIDs (events.IDStore) to the recording store, so that
// the test can check both the batches written and the counts each caller gets. The real
// store's InsertIDs itself is tested in internal/store.
type idStore struct {
	*recordingStore
}

func (s idStore) InsertIDs(ctx context.Context, t tenancy.Tenant, evs []events.Event) ([]uuid.UUID, error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(evs))
	s.mu.Unlock()
	return s.Store.(events.IDStore).InsertIDs(ctx, t, evs)
}

func TestBatcher_countsEachCallersOwnDuplicates(t *testing.T) {
	t.Parallel()
	bb := setupStore(t)
	b, err := events.NewBatcher(idStore{recordingStore: bb.store},
		events.BatcherConfig{BatchSize: 1000, FlushInterval: time.Hour}, nil)
	require.NoError(t, err)
	old := newEvents(t, 1)
	p, err := b.Submit(bb.tenant, old)
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))
	require.Equal(t, events.Result{Accepted: 1}, waitDone(t, p))

	// Two callers share a batch; only the first resends an event stored before.
	b, err = events.NewBatcher(idStore{recordingStore: bb.store},
		events.BatcherConfig{BatchSize: 1000, FlushInterval: time.Hour}, nil)
	require.NoError(t, err)
	first, err := b.Submit(bb.tenant, append(slices.Clone(old), newEvents(t, 1)...))
	require.NoError(t, err)
	second, err := b.Submit(bb.tenant, newEvents(t, 2))
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))
	require.Equal(t, events.Result{Accepted: 1, Duplicates: 1}, waitDone(t, first))
	require.Equal(t, events.Result{Accepted: 2}, waitDone(t, second))
	require.Equal(t, []int{1, 4}, bb.store.sizes())
}
