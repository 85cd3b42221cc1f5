package grpcapi_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
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
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/grpcapi"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
	"github.com/heraldmail/herald/services/recipient/internal/store"
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

// setup serves RecipientService with the production interceptor chain on an in-memory
// listener over a database of the test's own, connected as the service's role as in
// production, so row-level security applies.
func setup(t *testing.T) (recipientv1.RecipientServiceClient, bundle) {
	t.Helper()
	dbURL := pgtest.URL(t)
	admin := pgtest.Open(t, dbURL)
	client := serve(t, pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleRecipient)))
	signer := tenancy.NewSigner(secret)
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	return client, bundle{signer: signer, admin: admin, tenant: tn, user: userToken(t, signer, tn.CompanyID)}
}

func serve(t *testing.T, pool *pgxpool.Pool) recipientv1.RecipientServiceClient {
	t.Helper()
	log := zaptest.NewLogger(t)
	srv, _ := rpc.NewServer(rpc.ServerOptions{Log: log, Registry: prometheus.NewRegistry(), Verifier: tenancy.NewVerifier(secret)})
	inserter, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	hasher, err := recipient.NewEmailHasher(strings.Repeat("k", recipient.MinHashKeyLength))
	require.NoError(t, err)
	fs := store.NewFields(pool)
	svc := recipient.NewService(store.New(pool, inserter), fs, hasher, time.Now)
	recipientv1.RegisterRecipientServiceServer(srv, grpcapi.New(svc, fields.NewService(fs, time.Now), log))

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
	return recipientv1.NewRecipientServiceClient(cc)
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

// createOpts describes a recipient to create; zero fields get defaults.
type createOpts struct {
	Email      string
	Attributes map[string]any
}

func create(t *testing.T, c recipientv1.RecipientServiceClient, b bundle, o createOpts) *recipientv1.Recipient {
	t.Helper()
	if o.Email == "" {
		o.Email = "g-" + uuid.NewString()[:8] + "@example.com"
	}
	attrs, err := structpb.NewStruct(o.Attributes)
	require.NoError(t, err)
	resp, err := c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{
		WorkspaceId: b.tenant.WorkspaceID.String(), DomainId: b.tenant.DomainID.String(),
		Email: o.Email, Attributes: attrs,
	})
	require.NoError(t, err)
	return resp.GetRecipient()
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

func TestCreateRecipient(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()

	defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "first_name", Type: recipientv1.FieldType_FIELD_TYPE_TEXT})
	defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "age", Type: recipientv1.FieldType_FIELD_TYPE_NUMBER})
	r := create(t, c, b, createOpts{Email: " Ada@Example.com ", Attributes: map[string]any{"first_name": "Ada", "age": 36.0}})
	require.NoError(t, uuid.Validate(r.GetId()))
	require.Equal(t, ws, r.GetWorkspaceId())
	require.Equal(t, dom, r.GetDomainId())
	require.Equal(t, "ada@example.com", r.GetEmail())
	require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED, r.GetStatus())
	require.Nil(t, r.GetStatusChangeTime())
	require.Equal(t, map[string]any{"first_name": "Ada", "age": 36.0}, r.GetAttributes().AsMap())
	require.NotNil(t, r.GetCreateTime())
	require.NotNil(t, r.GetUpdateTime())

	_, err := c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: ws, DomainId: dom, Email: "ADA@example.com"})
	requireCode(t, err, codes.AlreadyExists, "a recipient with this email already exists in this domain")

	for _, email := range []string{"", "Ada <ada@example.com>", "ada@localhost", "a@b.com, c@d.com", strings.Repeat("a", 250) + "@b.com"} {
		_, err := c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: ws, DomainId: dom, Email: email})
		requireCode(t, err, codes.InvalidArgument, "")
		require.True(t, strings.HasPrefix(status.Convert(err).Message(), "email: "), status.Convert(err).Message())
	}

	_, err = c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: "nope", DomainId: dom, Email: "x@example.com"})
	requireCode(t, err, codes.InvalidArgument, "")
	require.Contains(t, status.Convert(err).Message(), "workspace_id")
	_, err = c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: ws, DomainId: uuid.Nil.String(), Email: "x@example.com"})
	requireCode(t, err, codes.InvalidArgument, "")
	require.Contains(t, status.Convert(err).Message(), "domain_id")
}

func TestGetRecipient(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	r := create(t, c, b, createOpts{})

	got, err := c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId()})
	require.NoError(t, err)
	require.Equal(t, r.GetEmail(), got.GetRecipient().GetEmail())
	require.True(t, r.GetCreateTime().AsTime().Equal(got.GetRecipient().GetCreateTime().AsTime()))

	_, err = c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: uuid.NewString()})
	requireCode(t, err, codes.NotFound, "recipient not found")

	_, err = c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: "12345"})
	requireCode(t, err, codes.InvalidArgument, "")
	require.True(t, strings.HasPrefix(status.Convert(err).Message(), "recipient_id: "))
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	r := create(t, c, b, createOpts{})
	companyB := userToken(t, b.signer, uuid.New())

	// Company B with company A's workspace and domain ids.
	_, err := c.GetRecipient(as(companyB), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId()})
	requireCode(t, err, codes.NotFound, "recipient not found")
	_, err = c.UpdateRecipientStatus(as(companyB), &recipientv1.UpdateRecipientStatusRequest{
		WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId(),
		Status: recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED,
	})
	requireCode(t, err, codes.NotFound, "recipient not found")

	// Company A in another domain, and in another workspace.
	_, err = c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: uuid.NewString(), RecipientId: r.GetId()})
	requireCode(t, err, codes.NotFound, "recipient not found")
	_, err = c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: uuid.NewString(), DomainId: dom, RecipientId: r.GetId()})
	requireCode(t, err, codes.NotFound, "recipient not found")

	got, err := c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId()})
	require.NoError(t, err)
	require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED, got.GetRecipient().GetStatus())
}

// A token narrowed to one workspace and domain (what the gateway forwards after authorizing a
// route) reaches that partition only: any other domain or workspace of the same company is not
// found, even where the company has data.
func TestNarrowedToken(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	otherDom := uuid.NewString()
	otherWS := uuid.NewString()
	narrowed, err := b.signer.SignScoped(uuid.NewString(), b.tenant.CompanyID, tenancy.KindUser,
		tenancy.Scoped{WorkspaceID: b.tenant.WorkspaceID, DomainID: b.tenant.DomainID, Role: "editor"}, time.Minute)
	require.NoError(t, err)

	// Recipients of the company in its partition and in another domain and workspace, created
	// with the company-wide token.
	inScope := create(t, c, b, createOpts{})
	elsewhere := map[string]*recipientv1.Recipient{}
	for name, route := range map[string][2]string{"another domain": {ws, otherDom}, "another workspace": {otherWS, dom}} {
		resp, err := c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: route[0], DomainId: route[1], Email: "n-" + uuid.NewString()[:8] + "@example.com"})
		require.NoError(t, err)
		elsewhere[name] = resp.GetRecipient()
	}

	got, err := c.GetRecipient(as(narrowed), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: inScope.GetId()})
	require.NoError(t, err)
	require.Equal(t, inScope.GetEmail(), got.GetRecipient().GetEmail())
	created, err := c.CreateRecipient(as(narrowed), &recipientv1.CreateRecipientRequest{WorkspaceId: ws, DomainId: dom, Email: "narrowed@example.com"})
	require.NoError(t, err)
	require.Equal(t, dom, created.GetRecipient().GetDomainId())
	updated, err := c.UpdateRecipientStatus(as(narrowed), &recipientv1.UpdateRecipientStatusRequest{
		WorkspaceId: ws, DomainId: dom, RecipientId: inScope.GetId(), Status: recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED,
	})
	require.NoError(t, err)
	require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED, updated.GetRecipient().GetStatus())

	for name, r := range elsewhere {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rws, rdom := r.GetWorkspaceId(), r.GetDomainId()
			_, err := c.GetRecipient(as(narrowed), &recipientv1.GetRecipientRequest{WorkspaceId: rws, DomainId: rdom, RecipientId: r.GetId()})
			requireCode(t, err, codes.NotFound, "recipient not found")
			_, err = c.UpdateRecipientStatus(as(narrowed), &recipientv1.UpdateRecipientStatusRequest{
				WorkspaceId: rws, DomainId: rdom, RecipientId: r.GetId(), Status: recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED,
			})
			requireCode(t, err, codes.NotFound, "recipient not found")
			email := "out-" + uuid.NewString()[:8] + "@example.com"
			_, err = c.CreateRecipient(as(narrowed), &recipientv1.CreateRecipientRequest{WorkspaceId: rws, DomainId: rdom, Email: email})
			requireCode(t, err, codes.NotFound, "recipient not found")

			// Nothing changed there: the company-wide token still sees the recipient as it
			// was, and the refused create left no row behind.
			still, err := c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: rws, DomainId: rdom, RecipientId: r.GetId()})
			require.NoError(t, err)
			require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED, still.GetRecipient().GetStatus())
			var n int
			require.NoError(t, b.admin.QueryRow(context.Background(), `SELECT count(*) FROM recipient.recipients WHERE email = $1`, email).Scan(&n))
			require.Zero(t, n)
		})
	}
}

func TestUpdateRecipientStatus(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	// The worker calls with a service token narrowed to the job's partition.
	worker, err := b.signer.ServiceTokenFor("worker", b.tenant)
	require.NoError(t, err)
	update := func(token, id string, st recipientv1.RecipientStatus, reason, event string) (*recipientv1.Recipient, error) {
		resp, err := c.UpdateRecipientStatus(as(token), &recipientv1.UpdateRecipientStatusRequest{
			WorkspaceId: ws, DomainId: dom, RecipientId: id, Status: st, Reason: reason, EventId: event,
		})
		return resp.GetRecipient(), err
	}

	t.Run("an event applies once", func(t *testing.T) {
		t.Parallel()
		r := create(t, c, b, createOpts{})
		event := uuid.NewString()
		got, err := update(worker, r.GetId(), recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED, "hard bounce", event)
		require.NoError(t, err)
		require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED, got.GetStatus())
		require.Equal(t, "hard bounce", got.GetStatusReason())
		require.NotNil(t, got.GetStatusChangeTime())

		again, err := update(worker, r.GetId(), recipientv1.RecipientStatus_RECIPIENT_STATUS_COMPLAINED, "replayed", event)
		require.NoError(t, err)
		require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED, again.GetStatus())
		require.Equal(t, "hard bounce", again.GetStatusReason())
		require.True(t, got.GetStatusChangeTime().AsTime().Equal(again.GetStatusChangeTime().AsTime()))
	})

	t.Run("suppressed recipients come back only explicitly", func(t *testing.T) {
		t.Parallel()
		r := create(t, c, b, createOpts{})
		_, err := update(worker, r.GetId(), recipientv1.RecipientStatus_RECIPIENT_STATUS_COMPLAINED, "spam report", uuid.NewString())
		require.NoError(t, err)

		got, err := update(worker, r.GetId(), recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED, "event", uuid.NewString())
		require.NoError(t, err)
		require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_COMPLAINED, got.GetStatus())

		got, err = update(b.user, r.GetId(), recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED, "asked to rejoin", "")
		require.NoError(t, err)
		require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED, got.GetStatus())
		require.Equal(t, "asked to rejoin", got.GetStatusReason())
	})

	t.Run("invalid requests", func(t *testing.T) {
		t.Parallel()
		r := create(t, c, b, createOpts{})
		_, err := update(b.user, r.GetId(), recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSPECIFIED, "", "")
		requireCode(t, err, codes.InvalidArgument, "")
		require.True(t, strings.HasPrefix(status.Convert(err).Message(), "status: "))
		_, err = update(b.user, r.GetId(), recipientv1.RecipientStatus(42), "", "")
		requireCode(t, err, codes.InvalidArgument, "")
		_, err = update(b.user, r.GetId(), recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED, "", "not-a-uuid")
		requireCode(t, err, codes.InvalidArgument, "")
		require.True(t, strings.HasPrefix(status.Convert(err).Message(), "event_id: "))
		_, err = update(b.user, "not-a-uuid", recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED, "", "")
		requireCode(t, err, codes.InvalidArgument, "")
		_, err = update(b.user, uuid.NewString(), recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED, "", "")
		requireCode(t, err, codes.NotFound, "recipient not found")
	})
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	req := &recipientv1.GetRecipientRequest{WorkspaceId: b.tenant.WorkspaceID.String(), DomainId: b.tenant.DomainID.String(), RecipientId: uuid.NewString()}

	_, err := c.GetRecipient(context.Background(), req)
	requireCode(t, err, codes.Unauthenticated, "")

	forged, err := tenancy.NewSigner("another-secret-0123456789abcdefghij").Sign("u", b.tenant.CompanyID, tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	_, err = c.GetRecipient(as(forged), req)
	requireCode(t, err, codes.Unauthenticated, "")
}

func TestInternalErrorsStayInternal(t *testing.T) {
	t.Parallel()
	pool := pgtest.PoolAs(t, migrations.RoleRecipient)
	c := serve(t, pool)
	pool.Close()
	tok := userToken(t, tenancy.NewSigner(secret), uuid.New())

	_, err := c.GetRecipient(as(tok), &recipientv1.GetRecipientRequest{WorkspaceId: uuid.NewString(), DomainId: uuid.NewString(), RecipientId: uuid.NewString()})
	requireCode(t, err, codes.Internal, "internal error")
}
