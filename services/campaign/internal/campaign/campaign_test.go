package campaign_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/services/campaign/internal/campaign"
	"github.com/heraldmail/herald/services/campaign/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bundle is what setup wires around the Service under test.
type bundle struct {
	store  *store.Store
	tenant tenancy.Tenant
}

func setup(t *testing.T) (*campaign.Service, bundle) {
	t.Helper()
	st := store.New(pgtest.Pool(t))
	return campaign.NewService(st), bundle{store: st, tenant: newTenant()}
}

func newTenant() tenancy.Tenant {
	return tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
}

// valid returns a campaign that passes every rule; tests break one field at a time.
func valid() campaign.NewCampaign {
	return campaign.NewCampaign{
		Name:      "Spring launch",
		Subject:   "Hello {{first_name}}",
		FromEmail: "news@example.com",
		HTMLBody:  "<p>Hello</p>",
		TextBody:  "Hello",
	}
}

func requireInvalid(t *testing.T, err error, field string) {
	t.Helper()
	require.ErrorIs(t, err, campaign.ErrInvalid)
	var verr *campaign.ValidationError
	require.True(t, errors.As(err, &verr), "want a *ValidationError, got %v", err)
	require.Equal(t, field, verr.Field)
	require.NotEmpty(t, verr.Reason)
}

func TestService_Create(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()

	in := valid()
	in.Name = "  Spring launch  "
	in.FromEmail = " News@Example.COM "
	c, err := svc.Create(ctx, b.tenant, in)
	require.NoError(t, err)
	require.NotEqual(t, uuid.Nil, c.ID)
	require.Equal(t, b.tenant, c.Tenant)
	require.Equal(t, "Spring launch", c.Name)
	require.Equal(t, in.Subject, c.Subject)
	require.Equal(t, "news@example.com", c.FromEmail)
	require.Equal(t, in.HTMLBody, c.HTMLBody)
	require.Equal(t, in.TextBody, c.TextBody)
	require.Equal(t, campaign.StateDraft, c.State)
	require.False(t, c.CreatedAt.IsZero())

	got, err := svc.Get(ctx, b.tenant, c.ID)
	require.NoError(t, err)
	require.Equal(t, c, got)

	t.Run("one body is enough", func(t *testing.T) {
		t.Parallel()
		textOnly := valid()
		textOnly.HTMLBody = ""
		_, err := svc.Create(ctx, b.tenant, textOnly)
		require.NoError(t, err)
		htmlOnly := valid()
		htmlOnly.TextBody = ""
		_, err = svc.Create(ctx, b.tenant, htmlOnly)
		require.NoError(t, err)
	})

	t.Run("names and subjects count characters, not bytes", func(t *testing.T) {
		t.Parallel()
		in := valid()
		in.Name = strings.Repeat("é", campaign.MaxNameLength)
		in.Subject = strings.Repeat("ü", campaign.MaxSubjectLength)
		_, err := svc.Create(ctx, b.tenant, in)
		require.NoError(t, err)
	})
}

func TestService_Create_invalid(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	tests := []struct {
		name  string
		field string
		edit  func(*campaign.NewCampaign)
	}{
		{"no name", "name", func(c *campaign.NewCampaign) { c.Name = "  " }},
		{"long name", "name", func(c *campaign.NewCampaign) { c.Name = strings.Repeat("n", campaign.MaxNameLength+1) }},
		{"NUL in name", "name", func(c *campaign.NewCampaign) { c.Name = "a\x00b" }},
		{"no subject", "subject", func(c *campaign.NewCampaign) { c.Subject = "\t" }},
		{"long subject", "subject", func(c *campaign.NewCampaign) { c.Subject = strings.Repeat("s", campaign.MaxSubjectLength+1) }},
		{"header injection in subject", "subject", func(c *campaign.NewCampaign) { c.Subject = "Hi\r\nBcc: everyone@example.com" }},
		{"no sender", "from_email", func(c *campaign.NewCampaign) { c.FromEmail = "" }},
		{"sender with display name", "from_email", func(c *campaign.NewCampaign) { c.FromEmail = "News <news@example.com>" }},
		{"sender without dot in domain", "from_email", func(c *campaign.NewCampaign) { c.FromEmail = "news@localhost" }},
		{"two senders", "from_email", func(c *campaign.NewCampaign) { c.FromEmail = "a@example.com, b@example.com" }},
		{"no body", "html_body/text_body", func(c *campaign.NewCampaign) { c.HTMLBody, c.TextBody = " ", "\n" }},
		{"huge html body", "html_body", func(c *campaign.NewCampaign) { c.HTMLBody = strings.Repeat("x", campaign.MaxBodySize+1) }},
		{"NUL in text body", "text_body", func(c *campaign.NewCampaign) { c.TextBody = "a\x00" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := valid()
			tc.edit(&in)
			_, err := svc.Create(context.Background(), b.tenant, in)
			requireInvalid(t, err, tc.field)
		})
	}
}

func TestService_Get_tenantIsolation(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	c, err := svc.Create(ctx, b.tenant, valid())
	require.NoError(t, err)

	otherCompany := b.tenant
	otherCompany.CompanyID = uuid.New()
	otherWorkspace := b.tenant
	otherWorkspace.WorkspaceID = uuid.New()
	otherDomain := b.tenant
	otherDomain.DomainID = uuid.New()
	for name, tn := range map[string]tenancy.Tenant{"company": otherCompany, "workspace": otherWorkspace, "domain": otherDomain} {
		_, err := svc.Get(ctx, tn, c.ID)
		require.ErrorIs(t, err, campaign.ErrNotFound, "another %s", name)
	}
	_, err = svc.Get(ctx, b.tenant, uuid.New())
	require.ErrorIs(t, err, campaign.ErrNotFound)
}
