package store_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/services/campaign/internal/campaign"
	"github.com/heraldmail/herald/services/campaign/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func setup(t *testing.T) (*store.Store, tenancy.Tenant) {
	b := setupWithDB(t)
	return b.store, b.tenant
}

// bundle is the store under test with what a test needs around it.
type bundle struct {
	store  *store.Store
	tenant tenancy.Tenant
	// db is a superuser pool on the store's database, to look at and write what the store
	// does not.
	db *pgxpool.Pool
}

func setupWithDB(t *testing.T) bundle {
	t.Helper()
	dbURL := pgtest.URL(t)
	return bundle{
		store:  store.New(pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleCampaign))),
		tenant: tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()},
		db:     pgtest.Open(t, dbURL),
	}
}

// insertOpts describes a row to insert; zero fields get defaults.
type insertOpts struct {
	Name     string
	HTMLBody string
}

func insert(t *testing.T, s *store.Store, tn tenancy.Tenant, o insertOpts) campaign.Campaign {
	t.Helper()
	if o.Name == "" {
		o.Name = "campaign " + uuid.NewString()[:8]
	}
	c, err := s.Create(context.Background(), tn, campaign.NewCampaign{
		Name: o.Name, Subject: "Subject", FromEmail: "from@example.com", HTMLBody: o.HTMLBody, TextBody: "text",
	})
	require.NoError(t, err)
	return c
}

func TestStore_CreateGet(t *testing.T) {
	t.Parallel()
	s, tn := setup(t)
	ctx := context.Background()
	c := insert(t, s, tn, insertOpts{Name: "Autumn", HTMLBody: "<h1>Autumn</h1>"})
	require.Equal(t, tn, c.Tenant)
	require.Equal(t, "Autumn", c.Name)
	require.Equal(t, "Subject", c.Subject)
	require.Equal(t, "from@example.com", c.FromEmail)
	require.Equal(t, "<h1>Autumn</h1>", c.HTMLBody)
	require.Equal(t, "text", c.TextBody)
	require.Equal(t, campaign.StateDraft, c.State)
	require.True(t, c.CreatedAt.Equal(c.UpdatedAt))

	got, err := s.Get(ctx, tn, c.ID)
	require.NoError(t, err)
	require.Equal(t, c, got)

	// Names are not unique: two drafts may share one.
	twin := insert(t, s, tn, insertOpts{Name: "Autumn"})
	require.NotEqual(t, c.ID, twin.ID)

	_, err = s.Get(ctx, tn, uuid.New())
	require.ErrorIs(t, err, campaign.ErrNotFound)
}

// TestStore_readsStatus: the lifecycle is the status column.
func TestStore_readsStatus(t *testing.T) {
	t.Parallel()
	b := setupWithDB(t)
	ctx := context.Background()
	c := insert(t, b.store, b.tenant, insertOpts{})
	require.Equal(t, campaign.StateDraft, c.State)
	_, err := b.db.Exec(ctx, `UPDATE campaign.campaigns SET status = 'paused' WHERE id = $1`, c.ID)
	require.NoError(t, err)
	got, err := b.store.Get(ctx, b.tenant, c.ID)
	require.NoError(t, err)
	require.Equal(t, campaign.StatePaused, got.State)
}

func TestStore_tenantFilter(t *testing.T) {
	t.Parallel()
	s, tn := setup(t)
	ctx := context.Background()
	c := insert(t, s, tn, insertOpts{})

	variants := map[string]func(*tenancy.Tenant){
		"company":   func(x *tenancy.Tenant) { x.CompanyID = uuid.New() },
		"workspace": func(x *tenancy.Tenant) { x.WorkspaceID = uuid.New() },
		"domain":    func(x *tenancy.Tenant) { x.DomainID = uuid.New() },
	}
	for name, change := range variants {
		other := tn
		change(&other)
		_, err := s.Get(ctx, other, c.ID)
		require.ErrorIs(t, err, campaign.ErrNotFound, "another %s", name)
	}
	_, err := s.Get(ctx, tenancy.Tenant{}, c.ID)
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
}

func TestStore_constraintsBackstop(t *testing.T) {
	t.Parallel()
	s, tn := setup(t)
	// The business rules reject NUL before the store; the store still reports it as invalid
	// rather than as an internal error.
	_, err := s.Create(context.Background(), tn, campaign.NewCampaign{Name: "a\x00", Subject: "s", FromEmail: "f@example.com", TextBody: "t"})
	require.ErrorIs(t, err, campaign.ErrInvalid)
}
