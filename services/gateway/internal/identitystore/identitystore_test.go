package identitystore_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/identitystore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

func setup(t *testing.T) (*identitystore.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.PoolAs(t, "herald_gateway")
	return identitystore.New(pool), pool
}

func account(t *testing.T, s *identitystore.Store) (identity.User, identity.Company, identity.Workspace) {
	t.Helper()
	u, c, w, err := s.CreateAccount(t.Context(), identity.NewAccount{
		CompanyName: "Acme", WorkspaceName: "Default", Email: uuid.NewString() + "@example.com", PasswordHash: "$argon2id$x",
	})
	require.NoError(t, err)
	return u, c, w
}

// TestCompanyScoping: the store's queries see one company's rows, and the database itself
// shows none to the gateway's role outside a company-scoped transaction.
func TestCompanyScoping(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := t.Context()
	u1, c1, w1 := account(t, s)
	_, c2, w2 := account(t, s)

	d, err := s.CreateDomain(ctx, c1.ID, w1.ID, "mail.one.example", func(identity.Company) error { return nil })
	require.NoError(t, err)

	_, err = s.Workspace(ctx, c2.ID, w1.ID)
	require.ErrorIs(t, err, identity.ErrNotFound, "another company's workspace")
	_, err = s.Domain(ctx, c2.ID, w1.ID, d.ID)
	require.ErrorIs(t, err, identity.ErrNotFound)
	_, err = s.Domain(ctx, c1.ID, w1.ID, d.ID)
	require.NoError(t, err)
	_, err = s.CreateDomain(ctx, c2.ID, w1.ID, "mail.two.example", func(identity.Company) error { return nil })
	require.ErrorIs(t, err, identity.ErrNotFound, "a domain cannot be added to another company's workspace")
	wa, err := s.WorkspaceAccess(ctx, c2.ID, u1.ID, w1.ID, d.ID)
	require.NoError(t, err)
	require.Equal(t, identity.WorkspaceAccess{}, wa)
	wa, err = s.WorkspaceAccess(ctx, c1.ID, u1.ID, w1.ID, d.ID)
	require.NoError(t, err)
	require.Equal(t, identity.WorkspaceAccess{WorkspaceExists: true, DomainExists: true, Role: identity.RoleOwner}, wa)
	ws, err := s.Workspaces(ctx, c2.ID, nil)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{w2.ID}, []uuid.UUID{ws[0].ID})

	// Row-level security: with no company set, the gateway's role sees no workspace.
	for _, table := range []string{"workspaces", "domains", "memberships", "api_keys", "invitations"} {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM identity."+table).Scan(&n))
		require.Zero(t, n, table)
	}
}

func TestAPIKeyLookUpBeforeTheTenantIsKnown(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := t.Context()
	u, c, w := account(t, s)
	k, err := s.CreateAPIKey(ctx, identity.APIKey{
		ID: uuid.New(), CompanyID: c.ID, WorkspaceID: w.ID, Name: "ci", Prefix: "hk_0a1b2c3d",
		SecretHash: "hash", Role: identity.RoleViewer, CreatedBy: u.ID,
	})
	require.NoError(t, err)
	got, err := s.APIKeyByPrefix(ctx, "hk_0a1b2c3d")
	require.NoError(t, err)
	require.Equal(t, k.ID, got.ID)
	require.Equal(t, u.ID, got.CreatedBy)
	_, err = s.APIKeyByPrefix(ctx, "hk_ffffffff")
	require.ErrorIs(t, err, identity.ErrNotFound)
	_, err = s.CreateAPIKey(ctx, identity.APIKey{
		ID: uuid.New(), CompanyID: c.ID, WorkspaceID: w.ID, Name: "dup", Prefix: "hk_0a1b2c3d", SecretHash: "h", Role: identity.RoleViewer,
	})
	require.ErrorIs(t, err, identity.ErrPrefixTaken)
}
