package grpcapi_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// gatedStore holds every write until release is closed.
type gatedStore struct {
	events.Store
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func newGate() *gatedStore {
	return &gatedStore{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedStore) wrap(s events.Store) events.Store {
	g.Store = s
	return g
}

func (g *gatedStore) Insert(ctx context.Context, t tenancy.Tenant, evs []events.Event) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	return g.Store.Insert(ctx, t, evs)
}

func (b bundle) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	d, ok := delayOf(err)
	require.True(t, ok, "no RetryInfo in %v", err)
	return d
}

func delayOf(err error) (time.Duration, bool) {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

func chunk(seq uint64, ws, dom string, evs []*eventsv1.Event) *eventsv1.IngestEventStreamRequest {
	return &eventsv1.IngestEventStreamRequest{Seq: seq, WorkspaceId: ws, DomainId: dom, Events: evs}
}

func TestIngestEventStream_acknowledgesEveryChunkInOrder(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	company, ws, dom := uuid.New(), uuid.NewString(), uuid.NewString()
	stream, err := client.IngestEventStream(b.as(t, company))
	require.NoError(t, err)

	first := newEvents(700)
	first[0] = newEvent(eventsv1.EventType_EVENT_TYPE_COMPLAINT)
	second := newEvents(500)
	second = append(second, second[7]) // one event sent twice
	third := newEvents(5)
	chunks := [][]*eventsv1.Event{first, second, third}
	for i, evs := range chunks {
		require.NoError(t, stream.Send(chunk(uint64(10*(i+1)), ws, dom, evs)))
	}
	require.NoError(t, stream.CloseSend())
	want := []*eventsv1.IngestEventStreamResponse{
		{Seq: 10, Accepted: 700}, {Seq: 20, Accepted: 500, Duplicates: 1}, {Seq: 30, Accepted: 5},
	}
	for _, w := range want {
		ack, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, w.GetSeq(), ack.GetSeq())
		require.Equal(t, w.GetAccepted(), ack.GetAccepted(), ack.GetSeq())
		require.Equal(t, w.GetDuplicates(), ack.GetDuplicates(), ack.GetSeq())
	}
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, 1205, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE company_id = $1`, company))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE args->>'status' = 'complained'`))

	// A client that lost the stream after the first acknowledgement resends the rest: they
	// count once.
	stream, err = client.IngestEventStream(b.as(t, company))
	require.NoError(t, err)
	require.NoError(t, stream.Send(chunk(1, ws, dom, second)))
	require.NoError(t, stream.Send(chunk(2, ws, dom, third)))
	require.NoError(t, stream.CloseSend())
	for _, n := range []int32{501, 5} {
		ack, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, int32(0), ack.GetAccepted())
		require.Equal(t, n, ack.GetDuplicates())
	}
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, 1205, b.count(t, `SELECT count(*) FROM `+eventsTable))
}

func TestIngestEventStream_invalidChunkEndsTheStreamAfterTheAcknowledgements(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	ws, dom := uuid.NewString(), uuid.NewString()
	stream, err := client.IngestEventStream(b.as(t, uuid.New()))
	require.NoError(t, err)
	require.NoError(t, stream.Send(chunk(1, ws, dom, newEvents(3))))
	bad := newEvents(3)
	bad[2].Id = "not-a-uuid"
	_ = stream.Send(chunk(2, ws, dom, bad))

	ack, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, uint64(1), ack.GetSeq())
	require.Equal(t, int32(3), ack.GetAccepted())
	_, err = stream.Recv()
	requireStatus(t, err, codes.InvalidArgument, "message 2: events[2].id: must be a UUID")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM `+eventsTable))
}

func TestIngestEventStream_seqMustGrow(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	ws, dom := uuid.NewString(), uuid.NewString()
	for name, seqs := range map[string][]uint64{"zero": {0}, "repeated": {5, 5}, "decreasing": {5, 4}} {
		t.Run(name, func(t *testing.T) {
			stream, err := client.IngestEventStream(b.as(t, uuid.New()))
			require.NoError(t, err)
			for _, seq := range seqs {
				_ = stream.Send(chunk(seq, ws, dom, newEvents(1)))
			}
			var last error
			for {
				_, err := stream.Recv()
				if err != nil {
					last = err
					break
				}
			}
			requireStatus(t, last, codes.InvalidArgument, "seq: must be greater than the previous chunk's")
		})
	}
}

func TestIngestEventStream_unauthenticated(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	stream, err := client.IngestEventStream(t.Context())
	require.NoError(t, err)
	_ = stream.Send(chunk(1, uuid.NewString(), uuid.NewString(), newEvents(1)))
	_, err = stream.Recv()
	requireStatus(t, err, codes.Unauthenticated, "")
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM `+eventsTable))
}

func TestIngestEventStream_fullBuffer(t *testing.T) {
	t.Parallel()
	gate := newGate()
	client, b := setupWith(t, opts{
		batcher: events.BatcherConfig{BatchSize: 10, Capacity: 10, RetryAfter: 2 * time.Second},
		wrap:    gate.wrap,
	})
	ws, dom := uuid.NewString(), uuid.NewString()
	stream, err := client.IngestEventStream(b.as(t, uuid.New()))
	require.NoError(t, err)
	held := newEvents(10)
	require.NoError(t, stream.Send(chunk(1, ws, dom, held)))
	<-gate.entered
	turnedAway := newEvents(1)
	_ = stream.Send(chunk(2, ws, dom, turnedAway))
	require.Eventually(t, func() bool { return b.metric(t, "herald_ingest_rejected_events_total") == 1 },
		10*time.Second, 5*time.Millisecond)
	close(gate.release)

	// The held chunk is acknowledged once stored, then the stream ends with the retry delay.
	ack, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, uint64(1), ack.GetSeq())
	require.Equal(t, int32(10), ack.GetAccepted())
	_, err = stream.Recv()
	requireStatus(t, err, codes.ResourceExhausted, "ingest buffer is full")
	require.Equal(t, 2*time.Second, retryDelay(t, err))
	require.Equal(t, 10, b.count(t, `SELECT count(*) FROM `+eventsTable))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE id = $1`, turnedAway[0].GetId()))
}

// Many callers flood a tiny buffer: some are turned away with RESOURCE_EXHAUSTED and a retry
// delay, none hangs, and every acknowledged event is stored.
func TestIngestEvents_floodIsTurnedAwayNotQueued(t *testing.T) {
	t.Parallel()
	gate := newGate()
	client, b := setupWith(t, opts{
		batcher: events.BatcherConfig{BatchSize: 20, Capacity: 60, Writers: 2},
		wrap:    gate.wrap,
	})
	ctx := b.as(t, uuid.New())
	ws, dom := uuid.NewString(), uuid.NewString()
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		acked              int
		rejected, attempts int
		other              []error
	)
	const callers, calls = 30, 10
	for range callers {
		wg.Go(func() {
			for range calls {
				callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
				res, err := client.IngestEvents(callCtx, &eventsv1.IngestEventsRequest{WorkspaceId: ws, DomainId: dom, Events: newEvents(10)})
				cancel()
				mu.Lock()
				attempts++
				switch {
				case err == nil:
					acked += int(res.GetAccepted())
				case status.Code(err) == codes.ResourceExhausted:
					rejected++
					if d, ok := delayOf(err); !ok || d <= 0 {
						other = append(other, errors.New("no retry delay"))
					}
				default:
					other = append(other, err)
				}
				mu.Unlock()
			}
		})
	}
	// The first write is held until callers were turned away, so the flood meets a full buffer.
	<-gate.entered
	require.Eventually(t, func() bool { return b.metric(t, "herald_ingest_rejected_events_total") > 0 },
		20*time.Second, 5*time.Millisecond)
	close(gate.release)
	wg.Wait()

	require.Empty(t, other)
	require.Equal(t, callers*calls, attempts)
	require.Positive(t, rejected)
	require.Positive(t, acked)
	require.Equal(t, acked, b.count(t, `SELECT count(*) FROM `+eventsTable))
}
