package recipient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
	"github.com/heraldmail/herald/services/recipient/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bundle is what setup wires around the Service under test.
type bundle struct {
	store  *store.Store
	fields *fields.Service
	pool   *pgxpool.Pool
	tenant tenancy.Tenant
	now    time.Time
}

// testHashKey keys the erasure hashes of the tests (not a production secret).
var testHashKey = strings.Repeat("k", recipient.MinHashKeyLength)

func setup(t *testing.T) (*recipient.Service, bundle) {
	t.Helper()
	pool := pgtest.PoolAs(t, migrations.RoleRecipient)
	inserter, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	st := store.New(pool, inserter)
	hasher, err := recipient.NewEmailHasher(testHashKey)
	require.NoError(t, err)
	// PostgreSQL keeps microseconds.
	now := time.Date(2030, 5, 17, 9, 30, 0, 123456000, time.UTC)
	clock := func() time.Time { return now }
	fs := store.NewFields(pool)
	return recipient.NewService(st, fs, hasher, clock), bundle{store: st, fields: fields.NewService(fs, clock), pool: pool, tenant: newTenant(), now: now}
}

// define adds field definitions to tn's workspace.
func define(t *testing.T, b bundle, tn tenancy.Tenant, defs ...fields.NewDefinition) {
	t.Helper()
	for _, d := range defs {
		_, err := b.fields.Create(context.Background(), fields.Workspace{CompanyID: tn.CompanyID, WorkspaceID: tn.WorkspaceID}, d)
		require.NoError(t, err)
	}
}

func newTenant() tenancy.Tenant {
	return tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
}

// recipientOpts describes a recipient to create; zero fields get defaults.
type recipientOpts struct {
	Email      string
	Attributes map[string]any
}

func createRecipient(t *testing.T, svc *recipient.Service, tn tenancy.Tenant, o recipientOpts) recipient.Recipient {
	t.Helper()
	if o.Email == "" {
		o.Email = "r-" + uuid.NewString()[:8] + "@example.com"
	}
	r, err := svc.Create(context.Background(), tn, recipient.NewRecipient{Email: o.Email, Attributes: o.Attributes})
	require.NoError(t, err)
	return r
}

func requireInvalid(t *testing.T, err error, field string) {
	t.Helper()
	require.ErrorIs(t, err, recipient.ErrInvalid)
	var verr *recipient.ValidationError
	require.True(t, errors.As(err, &verr), "want a *ValidationError, got %v", err)
	require.Equal(t, field, verr.Field)
	require.NotEmpty(t, verr.Reason)
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	valid := map[string]string{
		"  Ada.Lovelace@Example.COM ": "ada.lovelace@example.com",
		"a+tag@mail.example.org":      "a+tag@mail.example.org",
		"x@b.co":                      "x@b.co",
	}
	for in, want := range valid {
		got, err := recipient.NormalizeEmail("email", in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	longLocal := strings.Repeat("a", 64)
	longDomain := strings.Repeat(strings.Repeat("b", 60)+".", 4) + "com" // 247 bytes
	invalid := []string{
		"",
		"   ",
		"no-at-sign",
		"a@localhost",
		"a@example.",
		"a@.example.com",
		"Ada <ada@example.com>",
		"<ada@example.com>",
		"ada@example.com, bob@example.com",
		"ada@example.com bob",
		"a\x00b@example.com",
		"ada@exa mple.com",
		longLocal + "@" + longDomain,
	}
	for _, in := range invalid {
		_, err := recipient.NormalizeEmail("email", in)
		requireInvalid(t, err, "email")
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	event, otherEvent := uuid.New(), uuid.New()
	base := func(s recipient.Status, last uuid.UUID) recipient.Recipient {
		return recipient.Recipient{ID: uuid.New(), Status: s, StatusReason: "before", StatusChangedAt: earlier, LastEventID: last, UpdatedAt: earlier}
	}
	tests := []struct {
		name        string
		cur         recipient.Recipient
		change      recipient.StatusChange
		wantChanged bool
		wantStatus  recipient.Status
		wantEvent   uuid.UUID
	}{
		{"event unsubscribes", base(recipient.StatusSubscribed, uuid.Nil), recipient.StatusChange{Status: recipient.StatusUnsubscribed, Reason: "link", EventID: event}, true, recipient.StatusUnsubscribed, event},
		{"event bounces", base(recipient.StatusSubscribed, otherEvent), recipient.StatusChange{Status: recipient.StatusBounced, Reason: "hard bounce", EventID: event}, true, recipient.StatusBounced, event},
		{"replayed event is a no-op", base(recipient.StatusBounced, event), recipient.StatusChange{Status: recipient.StatusComplained, Reason: "again", EventID: event}, false, recipient.StatusBounced, event},
		{"event does not resubscribe a bounced recipient", base(recipient.StatusBounced, otherEvent), recipient.StatusChange{Status: recipient.StatusSubscribed, Reason: "event", EventID: event}, false, recipient.StatusBounced, otherEvent},
		{"event does not resubscribe a complained recipient", base(recipient.StatusComplained, uuid.Nil), recipient.StatusChange{Status: recipient.StatusSubscribed, Reason: "event", EventID: event}, false, recipient.StatusComplained, uuid.Nil},
		{"event resubscribes an unsubscribed recipient", base(recipient.StatusUnsubscribed, uuid.Nil), recipient.StatusChange{Status: recipient.StatusSubscribed, Reason: "opt in", EventID: event}, true, recipient.StatusSubscribed, event},
		{"explicit change resubscribes a bounced recipient", base(recipient.StatusBounced, otherEvent), recipient.StatusChange{Status: recipient.StatusSubscribed, Reason: "fixed mailbox"}, true, recipient.StatusSubscribed, otherEvent},
		{"explicit change resubscribes a complained recipient", base(recipient.StatusComplained, uuid.Nil), recipient.StatusChange{Status: recipient.StatusSubscribed, Reason: "asked us"}, true, recipient.StatusSubscribed, uuid.Nil},
		{"explicit change to the same status is recorded", base(recipient.StatusUnsubscribed, uuid.Nil), recipient.StatusChange{Status: recipient.StatusUnsubscribed, Reason: "again"}, true, recipient.StatusUnsubscribed, uuid.Nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, changed := recipient.Apply(tc.cur, tc.change, now)
			require.Equal(t, tc.wantChanged, changed)
			require.Equal(t, tc.wantStatus, got.Status)
			require.Equal(t, tc.wantEvent, got.LastEventID)
			if !tc.wantChanged {
				require.Equal(t, tc.cur, got)
				return
			}
			require.Equal(t, tc.change.Reason, got.StatusReason)
			require.Equal(t, now, got.StatusChangedAt)
			require.Equal(t, now, got.UpdatedAt)
		})
	}
}

func TestService_Create(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	define(t, b, b.tenant,
		fields.NewDefinition{Key: "first_name", Type: fields.TypeText},
		fields.NewDefinition{Key: "score", Type: fields.TypeNumber},
		fields.NewDefinition{Key: "navy", Type: fields.TypeBoolean})

	r, err := svc.Create(ctx, b.tenant, recipient.NewRecipient{
		Email:      "  Grace.Hopper@Example.com\t",
		Attributes: map[string]any{"first_name": "Grace", "score": 42.0, "navy": true},
	})
	require.NoError(t, err)
	require.NotEqual(t, uuid.Nil, r.ID)
	require.Equal(t, b.tenant, r.Tenant)
	require.Equal(t, "grace.hopper@example.com", r.Email)
	require.Equal(t, recipient.StatusSubscribed, r.Status)
	require.Empty(t, r.StatusReason)
	require.True(t, r.StatusChangedAt.IsZero())
	require.Equal(t, uuid.Nil, r.LastEventID)
	require.Equal(t, map[string]any{"first_name": "Grace", "score": 42.0, "navy": true}, r.Attributes)
	require.False(t, r.CreatedAt.IsZero())

	got, err := svc.Get(ctx, b.tenant, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got)

	t.Run("no attributes is an empty object", func(t *testing.T) {
		t.Parallel()
		r := createRecipient(t, svc, b.tenant, recipientOpts{})
		require.Equal(t, map[string]any{}, r.Attributes)
	})

	t.Run("duplicate email in the domain, in any case", func(t *testing.T) {
		t.Parallel()
		_, err := svc.Create(ctx, b.tenant, recipient.NewRecipient{Email: "GRACE.HOPPER@example.com"})
		require.ErrorIs(t, err, recipient.ErrAlreadyExists)
	})

	t.Run("same email in another domain", func(t *testing.T) {
		t.Parallel()
		other := b.tenant
		other.DomainID = uuid.New()
		r := createRecipient(t, svc, other, recipientOpts{Email: "grace.hopper@example.com"})
		require.Equal(t, other.DomainID, r.Tenant.DomainID)
	})

	t.Run("invalid email", func(t *testing.T) {
		t.Parallel()
		_, err := svc.Create(ctx, b.tenant, recipient.NewRecipient{Email: "Grace <grace@example.com>"})
		requireInvalid(t, err, "email")
	})

	t.Run("NUL in attributes", func(t *testing.T) {
		t.Parallel()
		_, err := svc.Create(ctx, b.tenant, recipient.NewRecipient{Email: "nul@example.com", Attributes: map[string]any{"first_name": "x\x00y"}})
		requireInvalid(t, err, "attributes")
	})

	t.Run("attributes too large", func(t *testing.T) {
		t.Parallel()
		_, err := svc.Create(ctx, b.tenant, recipient.NewRecipient{Email: "big@example.com", Attributes: map[string]any{"first_name": strings.Repeat("x", recipient.MaxAttributesSize)}})
		requireInvalid(t, err, "attributes")
	})
}

func TestService_Get_tenantIsolation(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	r := createRecipient(t, svc, b.tenant, recipientOpts{})

	otherCompany := b.tenant
	otherCompany.CompanyID = uuid.New()
	otherWorkspace := b.tenant
	otherWorkspace.WorkspaceID = uuid.New()
	otherDomain := b.tenant
	otherDomain.DomainID = uuid.New()
	for name, tn := range map[string]tenancy.Tenant{"company": otherCompany, "workspace": otherWorkspace, "domain": otherDomain} {
		_, err := svc.Get(ctx, tn, r.ID)
		require.ErrorIs(t, err, recipient.ErrNotFound, "another %s", name)
		_, err = svc.UpdateStatus(ctx, tn, r.ID, recipient.StatusChange{Status: recipient.StatusUnsubscribed})
		require.ErrorIs(t, err, recipient.ErrNotFound, "another %s", name)
	}
	_, err := svc.Get(ctx, b.tenant, uuid.New())
	require.ErrorIs(t, err, recipient.ErrNotFound)

	got, err := svc.Get(ctx, b.tenant, r.ID)
	require.NoError(t, err)
	require.Equal(t, recipient.StatusSubscribed, got.Status)
}

func TestService_UpdateStatus(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()

	t.Run("records reason, time and event, once per event", func(t *testing.T) {
		t.Parallel()
		r := createRecipient(t, svc, b.tenant, recipientOpts{})
		event := uuid.New()
		ch := recipient.StatusChange{Status: recipient.StatusBounced, Reason: "hard bounce", EventID: event}
		got, err := svc.UpdateStatus(ctx, b.tenant, r.ID, ch)
		require.NoError(t, err)
		require.Equal(t, recipient.StatusBounced, got.Status)
		require.Equal(t, "hard bounce", got.StatusReason)
		require.True(t, b.now.Equal(got.StatusChangedAt), "status time %v", got.StatusChangedAt)
		require.True(t, b.now.Equal(got.UpdatedAt))
		require.Equal(t, event, got.LastEventID)

		again, err := svc.UpdateStatus(ctx, b.tenant, r.ID, recipient.StatusChange{Status: recipient.StatusComplained, Reason: "replay", EventID: event})
		require.NoError(t, err)
		require.Equal(t, got, again)
	})

	t.Run("an event does not resubscribe a bounced recipient, an explicit call does", func(t *testing.T) {
		t.Parallel()
		r := createRecipient(t, svc, b.tenant, recipientOpts{})
		bounced, err := svc.UpdateStatus(ctx, b.tenant, r.ID, recipient.StatusChange{Status: recipient.StatusBounced, Reason: "hard bounce", EventID: uuid.New()})
		require.NoError(t, err)

		got, err := svc.UpdateStatus(ctx, b.tenant, r.ID, recipient.StatusChange{Status: recipient.StatusSubscribed, Reason: "event", EventID: uuid.New()})
		require.NoError(t, err)
		require.Equal(t, bounced, got)

		got, err = svc.UpdateStatus(ctx, b.tenant, r.ID, recipient.StatusChange{Status: recipient.StatusSubscribed, Reason: "mailbox fixed"})
		require.NoError(t, err)
		require.Equal(t, recipient.StatusSubscribed, got.Status)
		require.Equal(t, "mailbox fixed", got.StatusReason)
		require.Equal(t, bounced.LastEventID, got.LastEventID)
	})

	t.Run("invalid change", func(t *testing.T) {
		t.Parallel()
		r := createRecipient(t, svc, b.tenant, recipientOpts{})
		_, err := svc.UpdateStatus(ctx, b.tenant, r.ID, recipient.StatusChange{Status: "deleted"})
		requireInvalid(t, err, "status")
		_, err = svc.UpdateStatus(ctx, b.tenant, r.ID, recipient.StatusChange{Status: recipient.StatusUnsubscribed, Reason: strings.Repeat("é", recipient.MaxReasonLength+1)})
		requireInvalid(t, err, "reason")
		_, err = svc.UpdateStatus(ctx, b.tenant, r.ID, recipient.StatusChange{Status: recipient.StatusUnsubscribed, Reason: "a\x00b"})
		requireInvalid(t, err, "reason")

		got, err := svc.Get(ctx, b.tenant, r.ID)
		require.NoError(t, err)
		require.Equal(t, r, got)
	})

	t.Run("missing recipient", func(t *testing.T) {
		t.Parallel()
		_, err := svc.UpdateStatus(ctx, b.tenant, uuid.New(), recipient.StatusChange{Status: recipient.StatusUnsubscribed})
		require.ErrorIs(t, err, recipient.ErrNotFound)
	})
}
