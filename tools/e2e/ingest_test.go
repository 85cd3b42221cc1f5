package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations/pgtest"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
)

// eventsTable is where events-ingest stores events.
const eventsTable = "events.email_events"

// ingestChunks returns n chunks of size events each; every tenth chunk repeats an event of
// the chunk before, so the stream holds fewer distinct events than it sends. It returns the
// number of distinct events too.
func ingestChunks(n, size int) ([][]*eventsv1.Event, int) {
	at := timestamppb.New(time.Now().Add(-time.Minute))
	chunks := make([][]*eventsv1.Event, n)
	distinct := 0
	for i := range chunks {
		c := make([]*eventsv1.Event, size)
		for j := range c {
			c[j] = &eventsv1.Event{Id: uuid.NewString(), Type: eventsv1.EventType_EVENT_TYPE_OPEN, OccurTime: at, UserAgent: "e2e"}
		}
		distinct += size
		if i > 0 && i%10 == 0 {
			c[0] = chunks[i-1][1]
			distinct--
		}
		chunks[i] = c
	}
	return chunks, distinct
}

// streamChunks sends chunks (seq = index + 1) whose seq is not in skip on one stream of
// IngestEventStream and returns the seqs acknowledged on it. afterAcks, when set, runs then
// once after that many acknowledgements. The error is the status that ended the stream (nil
// when every chunk sent was acknowledged).
func streamChunks(ctx context.Context, addr, ws, dom string, chunks [][]*eventsv1.Event, skip map[uint64]bool, afterAcks int, then func()) (map[uint64]bool, error) {
	acked := map[uint64]bool{}
	cc, err := rpc.Dial(addr)
	if err != nil {
		return acked, err
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := eventsv1.NewEventsIngestServiceClient(cc).IngestEventStream(ctx)
	if err != nil {
		return acked, err
	}
	sent := make(chan error, 1)
	go func() {
		for i, c := range chunks {
			seq := uint64(i + 1)
			if skip[seq] {
				continue
			}
			if err := stream.Send(&eventsv1.IngestEventStreamRequest{Seq: seq, WorkspaceId: ws, DomainId: dom, Events: c}); err != nil {
				// The stream ended; Recv reports why.
				sent <- nil
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	for {
		ack, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return acked, <-sent
		}
		if err != nil {
			cancel()
			return acked, errors.Join(err, <-sent)
		}
		acked[ack.GetSeq()] = true
		if len(acked) == afterAcks && then != nil {
			then()
		}
	}
}

// TestIngestStreamSurvivesSIGKILL kills events-ingest (SIGKILL, no drain) while a client
// streams, starts it again, and lets the client resend exactly the chunks it holds no
// acknowledgement for: every distinct event is stored once, none is lost.
func TestIngestStreamSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	s := shared(t)
	dbURL := pgtest.URL(t)
	d := watch.deps(dbURL, s.deps.redisAddr, s.deps.sentryDSN)
	// Small batches, so that the kill falls between commits.
	d.env = map[string]string{"INGEST_BATCH_SIZE": "500", "INGEST_FLUSH_INTERVAL": "5ms"}
	db := pgtest.Open(t, dbURL)

	company, ws, dom := uuid.New(), uuid.NewString(), uuid.NewString()
	tok, err := tenancy.NewSigner(d.jwtSecret).Sign("e2e-ingest", company, tenancy.KindUser, time.Hour)
	require.NoError(t, err)
	ctx := tenancy.WithToken(t.Context(), tok)

	chunks, distinct := ingestChunks(200, 500)
	first := startOwn(t, "events-ingest", d)
	addr := "127.0.0.1:" + strconv.Itoa(first.ports.grpc)
	acked, err := streamChunks(ctx, addr, ws, dom, chunks, nil, 20, first.kill)
	require.Error(t, err, "the stream outlived the process")
	require.True(t, first.exited())
	require.GreaterOrEqual(t, len(acked), 20)
	require.Less(t, len(acked), len(chunks), "every chunk was acknowledged before the kill: nothing to retry")
	stored := count(t, db, `SELECT count(*) FROM `+eventsTable+` WHERE company_id = $1`, company)
	t.Logf("killed after %d of %d chunks acknowledged; %d of %d distinct events stored", len(acked), len(chunks), stored, distinct)

	// Every acknowledged event survived the kill.
	for seq := range acked {
		ids := make([]string, 0, len(chunks[seq-1]))
		for _, e := range chunks[seq-1] {
			ids = append(ids, e.GetId())
		}
		require.Equal(t, len(chunks[seq-1]), countDistinct(t, db, ids), "chunk %d was acknowledged but is not stored", seq)
	}

	// The client resends what it holds no acknowledgement for, and one acknowledged chunk
	// besides (as a client that lost its last acknowledgement would): it counts once.
	skip := maps.Clone(acked)
	for seq := range acked {
		delete(skip, seq)
		break
	}
	second := startOwn(t, "events-ingest", d)
	addr = "127.0.0.1:" + strconv.Itoa(second.ports.grpc)
	again, err := streamChunks(ctx, addr, ws, dom, chunks, skip, 0, nil)
	require.NoError(t, err)
	require.Len(t, again, len(chunks)-len(skip))
	require.Equal(t, distinct, count(t, db, `SELECT count(*) FROM `+eventsTable+` WHERE company_id = $1`, company))
}

// TestIngestFloodGets429 floods a gateway whose events-ingest has a tiny buffer: some
// requests are answered 429 with Retry-After, none hangs or fails otherwise, and every
// acknowledged event is stored while no turned-away one is.
func TestIngestFloodGets429(t *testing.T) {
	t.Parallel()
	s := shared(t)
	tn := newTenant(t, s)

	d := s.deps
	d.grpcAddrs = maps.Clone(s.deps.grpcAddrs)
	// The smallest buffer (one full message): ten requests fill it, and it stays full until
	// their batch commits, so a flood overflows it.
	d.env = map[string]string{
		"INGEST_BUFFER_EVENTS": "1000", "INGEST_BATCH_SIZE": "1000",
		"INGEST_FLUSH_INTERVAL": "1s", "INGEST_RETRY_AFTER": "2s",
	}
	ingest := startOwn(t, "events-ingest", d)
	d.grpcAddrs["events-ingest"] = "127.0.0.1:" + strconv.Itoa(ingest.ports.grpc)
	d.env = nil
	gw := startOwn(t, "gateway", d)
	base := "http://127.0.0.1:" + strconv.Itoa(gw.ports.http)
	client := newRecordingClient(30 * time.Second)
	t.Cleanup(client.CloseIdleConnections)

	type outcome struct {
		code       int
		retryAfter string
		ids        []string
		err        error
	}
	const callers, calls = 40, 5
	results := make(chan outcome, callers*calls)
	var wg sync.WaitGroup
	at := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)
	for range callers {
		wg.Go(func() {
			for range calls {
				var o outcome
				evs := make([]map[string]any, 100)
				for i := range evs {
					id := uuid.NewString()
					o.ids = append(o.ids, id)
					evs[i] = map[string]any{"id": id, "type": "EVENT_TYPE_CLICK", "occur_time": at, "url": "https://example.com/"}
				}
				body, _ := json.Marshal(map[string]any{"events": evs})
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+tn.path("/events:batch"), bytes.NewReader(body))
				if err == nil {
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+tn.token)
					var resp *http.Response
					resp, err = client.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
						o.code, o.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
					}
				}
				cancel()
				o.err = err
				results <- o
			}
		})
	}
	wg.Wait()
	close(results)

	var acked, rejected []string
	for o := range results {
		require.NoError(t, o.err)
		switch o.code {
		case http.StatusOK:
			acked = append(acked, o.ids...)
		case http.StatusTooManyRequests:
			require.Equal(t, "2", o.retryAfter)
			rejected = append(rejected, o.ids...)
		default:
			t.Fatalf("unexpected status %d", o.code)
		}
	}
	require.NotEmpty(t, rejected, "the flood never met a full buffer")
	require.NotEmpty(t, acked)
	db := pgtest.Open(t, s.deps.databaseURL)
	require.Equal(t, len(acked), countDistinct(t, db, acked))
	require.Zero(t, countDistinct(t, db, rejected))
}

func count(t *testing.T, db *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// countDistinct is the number of ids stored.
func countDistinct(t *testing.T, db *pgxpool.Pool, ids []string) int {
	t.Helper()
	return count(t, db, `SELECT count(DISTINCT id) FROM `+eventsTable+` WHERE id = ANY($1::uuid[])`, ids)
}
