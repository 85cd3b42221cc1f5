package grpcapi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/heraldmail/herald/services/events-ingest/internal/directory"
	"github.com/heraldmail/herald/services/events-ingest/internal/grpcapi"
	"github.com/heraldmail/herald/services/events-ingest/internal/stats"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeDirectory stands in for the campaign and recipient services (the service's outgoing
// seam): it knows the ids it was given, per domain, and records what it was asked.
type fakeDirectory struct {
	mu    sync.Mutex
	known map[uuid.UUID]uuid.UUID // object id -> domain id
	down  bool
	asked int
}

func (f *fakeDirectory) look(what string, t tenancy.Tenant, id uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	if f.down {
		return fmt.Errorf("look up the %s: %w", what, directory.ErrUnavailable)
	}
	if f.known[id] != t.DomainID {
		return fmt.Errorf("%s %w", what, directory.ErrNotFound)
	}
	return nil
}

func (f *fakeDirectory) Campaign(_ context.Context, t tenancy.Tenant, id uuid.UUID) error {
	return f.look("campaign", t, id)
}

func (f *fakeDirectory) Recipient(_ context.Context, t tenancy.Tenant, id uuid.UUID) error {
	return f.look("recipient", t, id)
}

// setupStats serves the statistics service as events-ingest's role on a database of its own,
// with the clock at now.
func setupStats(t *testing.T, dir *fakeDirectory, now time.Time) (eventsv1.EventStatsServiceClient, bundle) {
	t.Helper()
	dbURL := pgtest.URL(t)
	pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleEvents))
	log := zaptest.NewLogger(t)
	srv, hs := rpc.NewServer(rpc.ServerOptions{Log: log, Registry: metrics.NewRegistry(), Verifier: tenancy.NewVerifier(secret)})
	grpcapi.RegisterStats(srv, grpcapi.NewStats(stats.New(pool, nil), dir, func() time.Time { return now }, log))
	hs.SetServing(grpcapi.StatsServiceName)
	cc := serve(t, srv, nil)
	return eventsv1.NewEventStatsServiceClient(cc), bundle{admin: pgtest.Open(t, dbURL), signer: tenancy.NewSigner(secret)}
}

func requireCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, code, st.Code(), "%v", err)
	if msg != "" {
		require.Equal(t, msg, st.Message())
	}
}

func TestGetCampaignStats(t *testing.T) {
	t.Parallel()
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	campaign, elsewhere := uuid.New(), uuid.New()
	dir := &fakeDirectory{known: map[uuid.UUID]uuid.UUID{campaign: tn.DomainID, elsewhere: uuid.New()}}
	client, b := setupStats(t, dir, time.Now())
	ctx := b.as(t, tn.CompanyID)
	// The rollup last counted the campaign after its uniques: the refresh time is the rollup's.
	refreshed := time.Date(2031, time.January, 14, 3, 15, 0, 0, time.UTC)
	_, err := b.admin.Exec(ctx, `INSERT INTO events.email_events_daily
		(company_id, workspace_id, domain_id, campaign_id, day, total, sent, delivered, opens, opens_machine, clicks, bounces, refreshed_at)
		VALUES ($1, $2, $3, $4, '2031-01-13', 225, 100, 90, 30, 10, 4, 1, $5)`, tn.CompanyID, tn.WorkspaceID, tn.DomainID, campaign, refreshed)
	require.NoError(t, err)
	_, err = b.admin.Exec(ctx, `INSERT INTO events.campaign_engagement_uniques
		(company_id, workspace_id, domain_id, campaign_id, unique_opens, unique_human_opens, unique_clicks, unique_human_clicks, refreshed_at)
		VALUES ($1, $2, $3, $4, 18, 9, 3, 3, $5)`, tn.CompanyID, tn.WorkspaceID, tn.DomainID, campaign, refreshed.Add(-15*time.Minute))
	require.NoError(t, err)

	req := &eventsv1.GetCampaignStatsRequest{WorkspaceId: tn.WorkspaceID.String(), DomainId: tn.DomainID.String(), CampaignId: campaign.String()}
	res, err := client.GetCampaignStats(ctx, req)
	require.NoError(t, err)
	st := res.GetStats()
	require.Equal(t, campaign.String(), st.GetCampaignId())
	require.Equal(t, []int64{100, 90, 1}, []int64{st.GetSent(), st.GetDelivered(), st.GetBounces()})
	require.Equal(t, []int64{30, 20, 18, 9}, []int64{st.GetOpens().GetTotal(), st.GetOpens().GetHuman(), st.GetOpens().GetUnique(), st.GetOpens().GetUniqueHuman()})
	require.Equal(t, []int64{4, 4, 3, 3}, []int64{st.GetClicks().GetTotal(), st.GetClicks().GetHuman(), st.GetClicks().GetUnique(), st.GetClicks().GetUniqueHuman()})
	require.InDelta(t, 0.9, st.GetRates().GetDeliveryRate(), 1e-9)
	require.InDelta(t, 0.2, st.GetRates().GetOpenRate(), 1e-9)
	require.InDelta(t, 0.1, st.GetRates().GetHumanOpenRate(), 1e-9)
	require.InDelta(t, 1.0/6, st.GetRates().GetClickToOpenRate(), 1e-9)
	require.NotNil(t, st.GetRefreshTime())
	require.Equal(t, refreshed, st.GetRefreshTime().AsTime())

	// A campaign of another domain and a made-up one: the same NOT_FOUND.
	for _, id := range []uuid.UUID{elsewhere, uuid.New()} {
		_, err = client.GetCampaignStats(ctx, &eventsv1.GetCampaignStatsRequest{WorkspaceId: tn.WorkspaceID.String(), DomainId: tn.DomainID.String(), CampaignId: id.String()})
		requireCode(t, err, codes.NotFound, "campaign not found")
	}
	_, err = client.GetCampaignStats(ctx, &eventsv1.GetCampaignStatsRequest{WorkspaceId: tn.WorkspaceID.String(), DomainId: tn.DomainID.String(), CampaignId: "spring"})
	requireCode(t, err, codes.InvalidArgument, "campaign_id: must be a UUID")
	_, err = client.GetCampaignStats(t.Context(), req)
	requireCode(t, err, codes.Unauthenticated, "")

	// The campaign service does not answer: UNAVAILABLE, nothing of the cause.
	dir.mu.Lock()
	dir.down = true
	dir.mu.Unlock()
	_, err = client.GetCampaignStats(ctx, req)
	requireCode(t, err, codes.Unavailable, "the owning service did not answer: retry later")
}

// cancelledCampaigns stands in for the campaign service's client of a caller that gave up:
// the call ends with the status gRPC gives a cancelled call.
type cancelledCampaigns struct {
	campaignv1.CampaignServiceClient
}

func (cancelledCampaigns) GetCampaign(context.Context, *campaignv1.GetCampaignRequest, ...grpc.CallOption) (*campaignv1.GetCampaignResponse, error) {
	return nil, status.Error(codes.Canceled, "context canceled")
}

// A caller that gives up while the campaign is looked up is answered CANCELED, not as a
// failure of the service. The handler is called directly: over a connection the client's own
// cancellation would hide the server's answer.
func TestGetCampaignStats_callerGivesUp(t *testing.T) {
	t.Parallel()
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	srv := grpcapi.NewStats(stats.New(nil, nil), directory.New(cancelledCampaigns{}, nil), time.Now, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(tenancy.WithPrincipal(t.Context(), tenancy.Principal{Subject: "user", CompanyID: tn.CompanyID}))
	cancel()
	_, err := srv.GetCampaignStats(ctx, &eventsv1.GetCampaignStatsRequest{
		WorkspaceId: tn.WorkspaceID.String(), DomainId: tn.DomainID.String(), CampaignId: uuid.NewString(),
	})
	requireCode(t, err, codes.Canceled, "request cancelled")
}

func TestListDailyStats(t *testing.T) {
	t.Parallel()
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	now := time.Date(2031, time.January, 20, 15, 0, 0, 0, time.UTC)
	client, b := setupStats(t, &fakeDirectory{}, now)
	ctx := b.as(t, tn.CompanyID)
	_, err := b.admin.Exec(ctx, `INSERT INTO events.email_events_daily
		(company_id, workspace_id, domain_id, campaign_id, day, total, sent, opens, opens_machine, unsubscribes)
		VALUES ($1, $2, $3, NULL, '2031-01-19', 13, 10, 2, 1, 1)`, tn.CompanyID, tn.WorkspaceID, tn.DomainID)
	require.NoError(t, err)
	base := func() *eventsv1.ListDailyStatsRequest {
		return &eventsv1.ListDailyStatsRequest{WorkspaceId: tn.WorkspaceID.String(), DomainId: tn.DomainID.String()}
	}

	// By default the 30 days up to today (the service's clock).
	res, err := client.ListDailyStats(ctx, base())
	require.NoError(t, err)
	require.Len(t, res.GetDays(), grpcapi.DefaultDays)
	require.Equal(t, "2030-12-22", res.GetDays()[0].GetDate())
	require.Equal(t, "2031-01-20", res.GetDays()[29].GetDate())
	day := res.GetDays()[28]
	require.Equal(t, "2031-01-19", day.GetDate())
	require.Equal(t, []int64{13, 10, 2, 1, 1}, []int64{day.GetTotal(), day.GetSent(), day.GetOpens(), day.GetHumanOpens(), day.GetUnsubscribes()})

	req := base()
	req.StartDate, req.EndDate = "2031-01-19", "2031-01-19"
	res, err = client.ListDailyStats(ctx, req)
	require.NoError(t, err)
	require.Len(t, res.GetDays(), 1)

	for _, bad := range []struct{ start, end, msg string }{
		{"19/01/2031", "", "start_date: must be a date YYYY-MM-DD"},
		{"", "tomorrow", "end_date: must be a date YYYY-MM-DD"},
		{"2031-01-20", "2031-01-19", "daily series: to (2031-01-19) is before from (2031-01-20)"},
		{"2029-01-01", "2031-01-19", "daily series: at most 366 days at once"},
	} {
		req := base()
		req.StartDate, req.EndDate = bad.start, bad.end
		_, err := client.ListDailyStats(ctx, req)
		requireCode(t, err, codes.InvalidArgument, bad.msg)
	}
}

func TestListRecipientEvents(t *testing.T) {
	t.Parallel()
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	recipient := uuid.New()
	dir := &fakeDirectory{known: map[uuid.UUID]uuid.UUID{recipient: tn.DomainID}}
	client, b := setupStats(t, dir, time.Now())
	ctx := b.as(t, tn.CompanyID)
	at := time.Date(2031, time.January, 19, 10, 0, 0, 0, time.UTC)
	_, err := b.admin.Exec(ctx, `INSERT INTO events.email_events
		(id, company_id, workspace_id, domain_id, recipient_id, campaign_id, type, occurred_at, url, bounce_class)
		VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, 'click', $6, 'https://example.com/a', ''),
		       (gen_random_uuid(), $1, $2, $3, $4, NULL, 'bounce', $6::timestamptz + interval '1 hour', '', 'soft')`,
		tn.CompanyID, tn.WorkspaceID, tn.DomainID, recipient, uuid.New(), at)
	require.NoError(t, err)
	req := &eventsv1.ListRecipientEventsRequest{WorkspaceId: tn.WorkspaceID.String(), DomainId: tn.DomainID.String(), RecipientId: recipient.String(), PageSize: 1}

	first, err := client.ListRecipientEvents(ctx, req)
	require.NoError(t, err)
	require.Len(t, first.GetEvents(), 1)
	require.Equal(t, eventsv1.EventType_EVENT_TYPE_BOUNCE, first.GetEvents()[0].GetType())
	require.Equal(t, "soft", first.GetEvents()[0].GetBounceClass())
	require.Empty(t, first.GetEvents()[0].GetCampaignId())
	require.NotEmpty(t, first.GetNextPageToken())
	req.PageToken = first.GetNextPageToken()
	second, err := client.ListRecipientEvents(ctx, req)
	require.NoError(t, err)
	require.Len(t, second.GetEvents(), 1)
	require.Equal(t, eventsv1.EventType_EVENT_TYPE_CLICK, second.GetEvents()[0].GetType())
	require.Equal(t, "https://example.com/a", second.GetEvents()[0].GetUrl())
	require.True(t, second.GetEvents()[0].GetOccurTime().AsTime().Equal(at))
	require.Empty(t, second.GetNextPageToken())

	// Bad arguments are refused before the recipient service is asked.
	dir.mu.Lock()
	asked := dir.asked
	dir.mu.Unlock()
	req.PageToken, req.PageSize = "", 501
	_, err = client.ListRecipientEvents(ctx, req)
	requireCode(t, err, codes.InvalidArgument, "page_size: must be between 1 and 500 (0 means 50)")
	req.PageSize, req.RecipientId = 0, "r-1"
	_, err = client.ListRecipientEvents(ctx, req)
	requireCode(t, err, codes.InvalidArgument, "recipient_id: must be a UUID")
	dir.mu.Lock()
	require.Equal(t, asked, dir.asked)
	dir.mu.Unlock()

	req.RecipientId, req.PageToken = recipient.String(), "garbage"
	_, err = client.ListRecipientEvents(ctx, req)
	requireCode(t, err, codes.InvalidArgument, "timeline: the page token is not one this API returned")
	req.RecipientId, req.PageToken = uuid.NewString(), ""
	_, err = client.ListRecipientEvents(ctx, req)
	requireCode(t, err, codes.NotFound, "recipient not found")
}
