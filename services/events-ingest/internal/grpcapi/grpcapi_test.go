package grpcapi_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/heraldmail/herald/services/events-ingest/internal/grpcapi"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const secret = "test-secret-test-secret-test-secret-0123"

// eventsTable is where the store writes.
const eventsTable = "events.email_events"

type bundle struct {
	// admin is a superuser pool on the service's database, for checks that must see past
	// row-level security.
	admin  *pgxpool.Pool
	signer *tenancy.Signer
	reg    *prometheus.Registry
}

// opts change what setup builds.
type opts struct {
	// batcher configures the write buffer (a short flush interval unless set).
	batcher events.BatcherConfig
	// wrap, when set, wraps the real store.
	wrap func(events.Store) events.Store
}

func setup(t *testing.T) (eventsv1.EventsIngestServiceClient, bundle) {
	t.Helper()
	return setupWith(t, opts{})
}

func setupWith(t *testing.T, o opts) (eventsv1.EventsIngestServiceClient, bundle) {
	t.Helper()
	// The service connects as its own role, as in production, so row-level security applies.
	dbURL := pgtest.URL(t)
	admin := pgtest.Open(t, dbURL)
	pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleEvents))
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	log := zaptest.NewLogger(t)
	var st events.Store = store.New(pool, ins)
	if o.wrap != nil {
		st = o.wrap(st)
	}
	if o.batcher.FlushInterval == 0 {
		o.batcher.FlushInterval = 2 * time.Millisecond
	}
	reg := metrics.NewRegistry()
	batcher, err := events.NewBatcher(st, o.batcher, reg)
	require.NoError(t, err)
	svc := events.NewService(batcher, time.Now)
	srv, hs := rpc.NewServer(rpc.ServerOptions{Log: log, Registry: reg, Verifier: tenancy.NewVerifier(secret)})
	grpcapi.Register(srv, grpcapi.New(svc, log))
	hs.SetServing(grpcapi.ServiceName)

	cc := serve(t, srv, func() { require.NoError(t, batcher.Close(context.Background())) })
	return eventsv1.NewEventsIngestServiceClient(cc), bundle{admin: admin, signer: tenancy.NewSigner(secret), reg: reg}
}

// serve serves srv on a free port until the test ends, then stops it and runs after, and
// returns a client connection to it.
func serve(t *testing.T, srv *grpc.Server, after func()) *grpc.ClientConn {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		require.NoError(t, <-served)
		if after != nil {
			after()
		}
	})
	cc, err := rpc.Dial(ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// as returns a context whose calls carry a user token of company.
func (b bundle) as(t *testing.T, company uuid.UUID) context.Context {
	t.Helper()
	tok, err := b.signer.Sign(uuid.NewString(), company, tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	return tenancy.WithToken(t.Context(), tok)
}

func (b bundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.admin.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func newEvent(typ eventsv1.EventType) *eventsv1.Event {
	return &eventsv1.Event{
		Id:          uuid.NewString(),
		Type:        typ,
		CampaignId:  uuid.NewString(),
		RecipientId: uuid.NewString(),
		OccurTime:   timestamppb.New(time.Now().Add(-time.Minute)),
		BounceClass: "hard",
	}
}

func newEvents(n int) []*eventsv1.Event {
	out := make([]*eventsv1.Event, n)
	for i := range out {
		out[i] = newEvent(eventsv1.EventType_EVENT_TYPE_OPEN)
	}
	return out
}

func requireStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status: %v", err)
	require.Equal(t, code, st.Code(), st.Message())
	require.Contains(t, st.Message(), msg)
}

func TestIngestEvents(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	company, ws, dom := uuid.New(), uuid.NewString(), uuid.NewString()
	ctx := b.as(t, company)
	batch := append(newEvents(3), newEvent(eventsv1.EventType_EVENT_TYPE_BOUNCE))
	req := &eventsv1.IngestEventsRequest{WorkspaceId: ws, DomainId: dom, Events: batch}

	res, err := client.IngestEvents(ctx, req)
	require.NoError(t, err)
	require.Equal(t, int32(4), res.GetAccepted())
	require.Equal(t, int32(0), res.GetDuplicates())
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE company_id = $1 AND workspace_id = $2 AND domain_id = $3`, company, ws, dom))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE kind = 'recipient_status'
		AND args->>'event_id' = $1 AND args->>'company_id' = $2 AND args->>'reason' = 'bounce: hard'`, batch[3].GetId(), company.String()))

	res, err = client.IngestEvents(ctx, req)
	require.NoError(t, err)
	require.Equal(t, int32(0), res.GetAccepted())
	require.Equal(t, int32(4), res.GetDuplicates())
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM `+eventsTable))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job`))
}

func TestIngestEvents_validation(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	ctx := b.as(t, uuid.New())
	ws, dom := uuid.NewString(), uuid.NewString()
	cases := []struct {
		name   string
		mutate func(*eventsv1.Event)
		msg    string
	}{
		{"id", func(e *eventsv1.Event) { e.Id = "1" }, "events[1].id: must be a UUID"},
		{"type", func(e *eventsv1.Event) { e.Type = eventsv1.EventType_EVENT_TYPE_UNSPECIFIED }, "events[1].type: must be set"},
		{"unknown type", func(e *eventsv1.Event) { e.Type = 42 }, "events[1].type: must be set"},
		{"occur_time unset", func(e *eventsv1.Event) { e.OccurTime = nil }, "events[1].occur_time: must be set"},
		{"occur_time future", func(e *eventsv1.Event) { e.OccurTime = timestamppb.New(time.Now().Add(2 * time.Hour)) }, "events[1].occur_time: must not be more than 1h in the future"},
		{"campaign_id", func(e *eventsv1.Event) { e.CampaignId = "c" }, "events[1].campaign_id: must be a UUID"},
		{"recipient_id", func(e *eventsv1.Event) { e.RecipientId = "r" }, "events[1].recipient_id: must be a UUID"},
		{"bounce without recipient", func(e *eventsv1.Event) {
			e.Type = eventsv1.EventType_EVENT_TYPE_BOUNCE
			e.RecipientId = ""
		}, "events[1].recipient_id: must be set for bounce events"},
	}
	for _, tc := range cases {
		batch := newEvents(2)
		tc.mutate(batch[1])
		_, err := client.IngestEvents(ctx, &eventsv1.IngestEventsRequest{WorkspaceId: ws, DomainId: dom, Events: batch})
		requireStatus(t, err, codes.InvalidArgument, tc.msg)
	}

	_, err := client.IngestEvents(ctx, &eventsv1.IngestEventsRequest{WorkspaceId: ws, DomainId: dom, Events: newEvents(events.MaxBatch + 1)})
	requireStatus(t, err, codes.InvalidArgument, "at most 1000 events per batch")

	_, err = client.IngestEvents(ctx, &eventsv1.IngestEventsRequest{WorkspaceId: "ws", DomainId: dom, Events: newEvents(1)})
	requireStatus(t, err, codes.InvalidArgument, "workspace_id")
	_, err = client.IngestEvents(ctx, &eventsv1.IngestEventsRequest{WorkspaceId: ws, DomainId: "", Events: newEvents(1)})
	requireStatus(t, err, codes.InvalidArgument, "domain_id")

	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM `+eventsTable))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river.river_job`))
}

func TestIngestEvents_unauthenticated(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	req := &eventsv1.IngestEventsRequest{WorkspaceId: uuid.NewString(), DomainId: uuid.NewString(), Events: newEvents(1)}

	_, err := client.IngestEvents(t.Context(), req)
	requireStatus(t, err, codes.Unauthenticated, "")

	forged, err := tenancy.NewSigner(strings.Repeat("x", 32)).Sign("u", uuid.New(), tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	_, err = client.IngestEvents(tenancy.WithToken(t.Context(), forged), req)
	requireStatus(t, err, codes.Unauthenticated, "")
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM `+eventsTable))
}

func TestIngestEvents_tenantIsolation(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	companyA, companyB := uuid.New(), uuid.New()
	ws, dom := uuid.NewString(), uuid.NewString()

	// Both companies name the same workspace and domain ids: the company still comes from the
	// token, so their rows stay apart.
	evA := newEvent(eventsv1.EventType_EVENT_TYPE_CLICK)
	_, err := client.IngestEvents(b.as(t, companyA), &eventsv1.IngestEventsRequest{WorkspaceId: ws, DomainId: dom, Events: []*eventsv1.Event{evA}})
	require.NoError(t, err)
	evB := newEvent(eventsv1.EventType_EVENT_TYPE_UNSUBSCRIBE)
	_, err = client.IngestEvents(b.as(t, companyB), &eventsv1.IngestEventsRequest{WorkspaceId: ws, DomainId: dom, Events: []*eventsv1.Event{evB}})
	require.NoError(t, err)

	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE id = $1 AND company_id = $2`, evA.GetId(), companyA))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE id = $1 AND company_id = $2`, evB.GetId(), companyB))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE args->>'company_id' = $1 AND args->>'event_id' = $2`, companyB.String(), evB.GetId()))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job`))
}

func TestStreamEvents(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	company, ws, dom := uuid.New(), uuid.NewString(), uuid.NewString()
	stream, err := client.StreamEvents(b.as(t, company))
	require.NoError(t, err)

	first := newEvents(700)
	first[0] = newEvent(eventsv1.EventType_EVENT_TYPE_COMPLAINT)
	second := append(newEvents(500), first[1]) // one event sent twice
	third := newEvents(5)
	for _, batch := range [][]*eventsv1.Event{first, second, third} {
		require.NoError(t, stream.Send(&eventsv1.StreamEventsRequest{WorkspaceId: ws, DomainId: dom, Events: batch}))
	}
	res, err := stream.CloseAndRecv()
	require.NoError(t, err)
	require.Equal(t, int32(1205), res.GetAccepted())
	require.Equal(t, int32(1), res.GetDuplicates())
	require.Equal(t, 1205, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE company_id = $1`, company))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE args->>'status' = 'complained'`))

	// Streaming the same events again stores nothing new.
	stream, err = client.StreamEvents(b.as(t, company))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&eventsv1.StreamEventsRequest{WorkspaceId: ws, DomainId: dom, Events: first}))
	res, err = stream.CloseAndRecv()
	require.NoError(t, err)
	require.Equal(t, int32(0), res.GetAccepted())
	require.Equal(t, int32(700), res.GetDuplicates())
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job`))
}

func TestStreamEvents_invalidMessage(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	ws, dom := uuid.NewString(), uuid.NewString()
	stream, err := client.StreamEvents(b.as(t, uuid.New()))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&eventsv1.StreamEventsRequest{WorkspaceId: ws, DomainId: dom, Events: newEvents(3)}))
	bad := newEvents(3)
	bad[2].Id = "not-a-uuid"
	// The server may fail the stream before it reads the second message; Send then reports
	// io.EOF and CloseAndRecv the status.
	_ = stream.Send(&eventsv1.StreamEventsRequest{WorkspaceId: ws, DomainId: dom, Events: bad})
	_, err = stream.CloseAndRecv()
	requireStatus(t, err, codes.InvalidArgument, "message 1: events[2].id: must be a UUID")
	// Nothing of the invalid message is stored (the message before it may be).
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE id = ANY($1::uuid[])`, []string{bad[0].GetId(), bad[1].GetId()}))
}

func TestStreamEvents_unauthenticated(t *testing.T) {
	t.Parallel()
	client, _ := setup(t)
	stream, err := client.StreamEvents(t.Context())
	require.NoError(t, err)
	_ = stream.Send(&eventsv1.StreamEventsRequest{WorkspaceId: uuid.NewString(), DomainId: uuid.NewString(), Events: newEvents(1)})
	_, err = stream.CloseAndRecv()
	requireStatus(t, err, codes.Unauthenticated, "")
}

// A token narrowed to one workspace and domain (what the gateway forwards after authorizing a
// route, or the worker mints for a job) ingests into that partition only: another domain or
// workspace of the same company is not found, and nothing is written there.
func TestNarrowedToken(t *testing.T) {
	t.Parallel()
	client, b := setup(t)
	company, ws, dom := uuid.New(), uuid.New(), uuid.New()
	tok, err := b.signer.SignScoped(uuid.NewString(), company, tenancy.KindUser,
		tenancy.Scoped{WorkspaceID: ws, DomainID: dom, Role: "editor"}, time.Minute)
	require.NoError(t, err)
	ctx := tenancy.WithToken(t.Context(), tok)

	res, err := client.IngestEvents(ctx, &eventsv1.IngestEventsRequest{WorkspaceId: ws.String(), DomainId: dom.String(), Events: newEvents(2)})
	require.NoError(t, err)
	require.Equal(t, int32(2), res.GetAccepted())
	stream, err := client.StreamEvents(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&eventsv1.StreamEventsRequest{WorkspaceId: ws.String(), DomainId: dom.String(), Events: newEvents(3)}))
	sres, err := stream.CloseAndRecv()
	require.NoError(t, err)
	require.Equal(t, int32(3), sres.GetAccepted())

	routes := map[string][2]string{
		"another domain":    {ws.String(), uuid.NewString()},
		"another workspace": {uuid.NewString(), dom.String()},
	}
	for name, route := range routes {
		t.Run(name, func(t *testing.T) {
			_, err := client.IngestEvents(ctx, &eventsv1.IngestEventsRequest{WorkspaceId: route[0], DomainId: route[1],
				Events: []*eventsv1.Event{newEvent(eventsv1.EventType_EVENT_TYPE_BOUNCE)}})
			requireStatus(t, err, codes.NotFound, "domain not found")

			stream, err := client.StreamEvents(ctx)
			require.NoError(t, err)
			// The server may fail the stream before it reads the message; Send then reports
			// io.EOF and CloseAndRecv the status.
			_ = stream.Send(&eventsv1.StreamEventsRequest{WorkspaceId: route[0], DomainId: route[1],
				Events: []*eventsv1.Event{newEvent(eventsv1.EventType_EVENT_TYPE_COMPLAINT)}})
			_, err = stream.CloseAndRecv()
			requireStatus(t, err, codes.NotFound, "domain not found")

			require.Equal(t, 0, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE workspace_id = $1 AND domain_id = $2`, route[0], route[1]))
			require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river.river_job WHERE args->>'workspace_id' = $1 AND args->>'domain_id' = $2`, route[0], route[1]))
		})
	}
	// Only the in-scope events were stored, and no job was enqueued for the refused bounce and
	// complaint.
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM `+eventsTable))
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM `+eventsTable+` WHERE company_id = $1 AND workspace_id = $2 AND domain_id = $3`, company, ws, dom))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river.river_job`))
}
