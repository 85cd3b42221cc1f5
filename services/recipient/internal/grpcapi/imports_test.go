package grpcapi_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/heraldmail/herald/services/recipient/internal/grpcapi"
	"github.com/heraldmail/herald/services/recipient/internal/imports"
	"github.com/heraldmail/herald/services/recipient/internal/store"
)

// serveImports serves ImportService with the production interceptors over a database of its
// own, as the service's role.
func serveImports(t *testing.T) recipientv1.ImportServiceClient {
	t.Helper()
	pool := pgtest.Open(t, pgtest.URLAs(t, pgtest.URL(t), migrations.RoleRecipient))
	log := zaptest.NewLogger(t)
	srv, _ := rpc.NewServer(rpc.ServerOptions{Log: log, Registry: prometheus.NewRegistry(), Verifier: tenancy.NewVerifier(secret)})
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	svc := imports.NewService(pool, ins, imports.Rules{Definitions: store.DefinitionsTx}, time.Now)
	recipientv1.RegisterImportServiceServer(srv, grpcapi.NewImportServer(svc, log))
	ln := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return recipientv1.NewImportServiceClient(cc)
}

func bearer(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// The worker's methods refuse users' tokens, even for the user's own partition; the upload
// streams and the report reads back.
func TestImportService_internalMethodsNeedAServiceToken(t *testing.T) {
	t.Parallel()
	client := serveImports(t)
	signer := tenancy.NewSigner(secret)
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	user, err := signer.SignScoped("user-1", tn.CompanyID, tenancy.KindUser,
		tenancy.Scoped{WorkspaceID: tn.WorkspaceID, DomainID: tn.DomainID, Role: "owner"}, time.Minute)
	require.NoError(t, err)
	service, err := signer.ServiceTokenFor("worker", tn)
	require.NoError(t, err)
	ctx := context.Background()
	ws, dom := tn.WorkspaceID.String(), tn.DomainID.String()

	stream, err := client.UploadImport(bearer(ctx, user))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&recipientv1.UploadImportRequest{WorkspaceId: ws, DomainId: dom, Map: []string{"email:email"}}))
	for _, piece := range []string{"email\na@exa", "mple.com\nb@example.com\n"} {
		require.NoError(t, stream.Send(&recipientv1.UploadImportRequest{Chunk: []byte(piece)}))
	}
	up, err := stream.CloseAndRecv()
	require.NoError(t, err)
	im := up.GetImport()
	require.Equal(t, recipientv1.ImportState_IMPORT_STATE_PENDING, im.GetState())
	require.Equal(t, int64(len("email\na@example.com\nb@example.com\n")), im.GetTotalBytes())

	_, err = client.BeginImportRun(bearer(ctx, user), &recipientv1.BeginImportRunRequest{WorkspaceId: ws, DomainId: dom, ImportId: im.GetId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = client.ApplyImportBatch(bearer(ctx, user), &recipientv1.ApplyImportBatchRequest{WorkspaceId: ws, DomainId: dom, ImportId: im.GetId(), Sequence: 1})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	read, err := client.ReadImportFile(bearer(ctx, user), &recipientv1.ReadImportFileRequest{WorkspaceId: ws, DomainId: dom, ImportId: im.GetId()})
	require.NoError(t, err)
	_, err = read.Recv()
	require.Equal(t, codes.PermissionDenied, status.Code(err))

	begin, err := client.BeginImportRun(bearer(ctx, service), &recipientv1.BeginImportRunRequest{WorkspaceId: ws, DomainId: dom, ImportId: im.GetId()})
	require.NoError(t, err)
	require.Equal(t, recipientv1.ImportState_IMPORT_STATE_RUNNING, begin.GetState())
	require.Len(t, begin.GetColumns(), 1)
	require.Equal(t, int32(0), begin.GetColumns()[0].GetIndex())
	require.Equal(t, "email", begin.GetColumns()[0].GetTarget())
	require.Equal(t, int64(len("email\n")), begin.GetOffset())
	require.Equal(t, int64(2), begin.GetLine())

	// Another domain of the same company: not found, for the user and the worker alike.
	other := tenancy.Tenant{CompanyID: tn.CompanyID, WorkspaceID: tn.WorkspaceID, DomainID: uuid.New()}
	otherTok, err := signer.ServiceTokenFor("worker", other)
	require.NoError(t, err)
	_, err = client.GetImport(bearer(ctx, otherTok), &recipientv1.GetImportRequest{WorkspaceId: ws, DomainId: other.DomainID.String(), ImportId: im.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = client.GetImport(bearer(ctx, user), &recipientv1.GetImportRequest{WorkspaceId: ws, DomainId: other.DomainID.String(), ImportId: im.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err))

	// A header the mapping does not fit is refused with a message that says why.
	bad, err := client.UploadImport(bearer(ctx, user))
	require.NoError(t, err)
	require.NoError(t, bad.Send(&recipientv1.UploadImportRequest{WorkspaceId: ws, DomainId: dom, Map: []string{"mail:email"}, Chunk: []byte("email\n")}))
	_, err = bad.CloseAndRecv()
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), `column "mail" is not in the header`)
}
