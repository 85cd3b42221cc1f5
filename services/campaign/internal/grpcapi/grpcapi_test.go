package grpcapi_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/heraldmail/herald/services/campaign/internal/campaign"
	"github.com/heraldmail/herald/services/campaign/internal/grpcapi"
	"github.com/heraldmail/herald/services/campaign/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// secret signs the test tokens; it is not a real credential.
const secret = "grpcapi-test-secret-0123456789abcdef"

// bundle is what setup wires around the client under test.
type bundle struct {
	signer *tenancy.Signer
	// admin is a superuser pool on the service's database, for checks that must see past
	// row-level security.
	admin *pgxpool.Pool
	// tenant is company A's workspace and domain; user is a token of company A.
	tenant tenancy.Tenant
	user   string
}

// setup serves CampaignService with the production interceptor chain on an in-memory
// listener over a database of the test's own, connected as the service's role as in
// production, so row-level security applies.
func setup(t *testing.T) (campaignv1.CampaignServiceClient, bundle) {
	t.Helper()
	dbURL := pgtest.URL(t)
	admin := pgtest.Open(t, dbURL)
	client := serve(t, pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleCampaign)))
	signer := tenancy.NewSigner(secret)
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	return client, bundle{signer: signer, admin: admin, tenant: tn, user: userToken(t, signer, tn.CompanyID)}
}

func serve(t *testing.T, pool *pgxpool.Pool) campaignv1.CampaignServiceClient {
	t.Helper()
	log := zaptest.NewLogger(t)
	srv, _ := rpc.NewServer(rpc.ServerOptions{Log: log, Registry: prometheus.NewRegistry(), Verifier: tenancy.NewVerifier(secret)})
	campaignv1.RegisterCampaignServiceServer(srv, grpcapi.New(campaign.NewService(store.New(pool)), log))

	ln := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cc.Close()
		srv.Stop()
		<-served
	})
	return campaignv1.NewCampaignServiceClient(cc)
}

func userToken(t *testing.T, s *tenancy.Signer, company uuid.UUID) string {
	t.Helper()
	tok, err := s.Sign(uuid.NewString(), company, tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	return tok
}

// as returns a context whose calls carry token.
func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// request returns a valid CreateCampaignRequest in b's tenant.
func request(b bundle) *campaignv1.CreateCampaignRequest {
	return &campaignv1.CreateCampaignRequest{
		WorkspaceId: b.tenant.WorkspaceID.String(),
		DomainId:    b.tenant.DomainID.String(),
		Name:        "Launch",
		Subject:     "We are live",
		FromEmail:   "Team@Example.com",
		HtmlBody:    "<p>Live</p>",
	}
}

func requireCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status: %v", err)
	require.Equal(t, code, st.Code(), st.Message())
	if msg != "" {
		require.Equal(t, msg, st.Message())
	}
}

func TestCreateCampaign(t *testing.T) {
	t.Parallel()
	c, b := setup(t)

	resp, err := c.CreateCampaign(as(b.user), request(b))
	require.NoError(t, err)
	got := resp.GetCampaign()
	require.NoError(t, uuid.Validate(got.GetId()))
	require.Equal(t, b.tenant.WorkspaceID.String(), got.GetWorkspaceId())
	require.Equal(t, b.tenant.DomainID.String(), got.GetDomainId())
	require.Equal(t, "Launch", got.GetName())
	require.Equal(t, "We are live", got.GetSubject())
	require.Equal(t, "team@example.com", got.GetFromEmail())
	require.Equal(t, "<p>Live</p>", got.GetHtmlBody())
	require.Empty(t, got.GetTextBody())
	require.Equal(t, campaignv1.CampaignState_CAMPAIGN_STATE_DRAFT, got.GetState())
	require.NotNil(t, got.GetCreateTime())
	require.NotNil(t, got.GetUpdateTime())

	invalid := map[string]func(*campaignv1.CreateCampaignRequest){
		"name: ":                func(r *campaignv1.CreateCampaignRequest) { r.Name = "" },
		"subject: ":             func(r *campaignv1.CreateCampaignRequest) { r.Subject = strings.Repeat("s", 999) },
		"from_email: ":          func(r *campaignv1.CreateCampaignRequest) { r.FromEmail = "Team <team@example.com>" },
		"html_body/text_body: ": func(r *campaignv1.CreateCampaignRequest) { r.HtmlBody = "" },
		"workspace_id: ":        func(r *campaignv1.CreateCampaignRequest) { r.WorkspaceId = "ws" },
		"domain_id: ":           func(r *campaignv1.CreateCampaignRequest) { r.DomainId = "" },
	}
	for prefix, edit := range invalid {
		req := request(b)
		edit(req)
		_, err := c.CreateCampaign(as(b.user), req)
		requireCode(t, err, codes.InvalidArgument, "")
		require.True(t, strings.HasPrefix(status.Convert(err).Message(), prefix), "want %q, got %q", prefix, status.Convert(err).Message())
	}
}

func TestGetCampaign(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	created, err := c.CreateCampaign(as(b.user), request(b))
	require.NoError(t, err)
	id := created.GetCampaign().GetId()

	got, err := c.GetCampaign(as(b.user), &campaignv1.GetCampaignRequest{WorkspaceId: ws, DomainId: dom, CampaignId: id})
	require.NoError(t, err)
	require.Equal(t, created.GetCampaign().GetName(), got.GetCampaign().GetName())
	require.Equal(t, campaignv1.CampaignState_CAMPAIGN_STATE_DRAFT, got.GetCampaign().GetState())

	_, err = c.GetCampaign(as(b.user), &campaignv1.GetCampaignRequest{WorkspaceId: ws, DomainId: dom, CampaignId: uuid.NewString()})
	requireCode(t, err, codes.NotFound, "campaign not found")
	_, err = c.GetCampaign(as(b.user), &campaignv1.GetCampaignRequest{WorkspaceId: ws, DomainId: dom, CampaignId: "c-1"})
	requireCode(t, err, codes.InvalidArgument, "")
	require.True(t, strings.HasPrefix(status.Convert(err).Message(), "campaign_id: "))
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	created, err := c.CreateCampaign(as(b.user), request(b))
	require.NoError(t, err)
	id := created.GetCampaign().GetId()

	// Company B with company A's workspace and domain ids.
	companyB := userToken(t, b.signer, uuid.New())
	_, err = c.GetCampaign(as(companyB), &campaignv1.GetCampaignRequest{WorkspaceId: ws, DomainId: dom, CampaignId: id})
	requireCode(t, err, codes.NotFound, "campaign not found")
	// Company A in another domain.
	_, err = c.GetCampaign(as(b.user), &campaignv1.GetCampaignRequest{WorkspaceId: ws, DomainId: uuid.NewString(), CampaignId: id})
	requireCode(t, err, codes.NotFound, "campaign not found")
}

// A token narrowed to one workspace and domain (what the gateway forwards after authorizing a
// route) reaches that partition only: any other domain or workspace of the same company is not
// found, even where the company has data.
func TestNarrowedToken(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	narrowed, err := b.signer.SignScoped(uuid.NewString(), b.tenant.CompanyID, tenancy.KindUser,
		tenancy.Scoped{WorkspaceID: b.tenant.WorkspaceID, DomainID: b.tenant.DomainID, Role: "editor"}, time.Minute)
	require.NoError(t, err)

	inScope, err := c.CreateCampaign(as(b.user), request(b))
	require.NoError(t, err)
	got, err := c.GetCampaign(as(narrowed), &campaignv1.GetCampaignRequest{WorkspaceId: ws, DomainId: dom, CampaignId: inScope.GetCampaign().GetId()})
	require.NoError(t, err)
	require.Equal(t, inScope.GetCampaign().GetName(), got.GetCampaign().GetName())
	created, err := c.CreateCampaign(as(narrowed), request(b))
	require.NoError(t, err)
	require.Equal(t, dom, created.GetCampaign().GetDomainId())

	routes := map[string][2]string{"another domain": {ws, uuid.NewString()}, "another workspace": {uuid.NewString(), dom}}
	for name, route := range routes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The company has a campaign there, created with its company-wide token.
			req := request(b)
			req.WorkspaceId, req.DomainId = route[0], route[1]
			theirs, err := c.CreateCampaign(as(b.user), req)
			require.NoError(t, err)

			_, err = c.GetCampaign(as(narrowed), &campaignv1.GetCampaignRequest{WorkspaceId: route[0], DomainId: route[1], CampaignId: theirs.GetCampaign().GetId()})
			requireCode(t, err, codes.NotFound, "campaign not found")
			req.Name = "Out of scope " + uuid.NewString()
			_, err = c.CreateCampaign(as(narrowed), req)
			requireCode(t, err, codes.NotFound, "campaign not found")

			var n int
			require.NoError(t, b.admin.QueryRow(context.Background(), `SELECT count(*) FROM campaign.campaigns WHERE name = $1`, req.Name).Scan(&n))
			require.Zero(t, n, "a refused create stored nothing")
		})
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	_, err := c.CreateCampaign(context.Background(), request(b))
	requireCode(t, err, codes.Unauthenticated, "")

	forged, err := tenancy.NewSigner("another-secret-0123456789abcdefghij").Sign("u", b.tenant.CompanyID, tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	_, err = c.CreateCampaign(as(forged), request(b))
	requireCode(t, err, codes.Unauthenticated, "")
}

func TestInternalErrorsStayInternal(t *testing.T) {
	t.Parallel()
	pool := pgtest.PoolAs(t, migrations.RoleCampaign)
	c := serve(t, pool)
	pool.Close()
	tok := userToken(t, tenancy.NewSigner(secret), uuid.New())

	_, err := c.GetCampaign(as(tok), &campaignv1.GetCampaignRequest{WorkspaceId: uuid.NewString(), DomainId: uuid.NewString(), CampaignId: uuid.NewString()})
	requireCode(t, err, codes.Internal, "internal error")
}
