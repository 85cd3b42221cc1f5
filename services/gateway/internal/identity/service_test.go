package identity_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/identitystore"
)

const secret = "identity-test-secret-0123456789abcdef"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

// bundle is what setup returns besides the service.
type bundle struct {
	pool     *pgxpool.Pool // as herald_gateway, like the gateway
	verifier *tenancy.Verifier
	clock    *clock
	throttle *countingThrottle
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countingThrottle allows limit attempts per account, then asks to wait a minute.
type countingThrottle struct {
	mu     sync.Mutex
	limit  int
	counts map[string]int
}

func (t *countingThrottle) AllowLogin(_ context.Context, email, _ string) (time.Duration, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts[email]++
	if t.counts[email] > t.limit {
		return time.Minute, nil
	}
	return 0, nil
}

func setup(t *testing.T) (*identity.Service, bundle) {
	t.Helper()
	b := bundle{
		pool:     pgtest.PoolAs(t, "herald_gateway"),
		verifier: tenancy.NewVerifier(secret),
		clock:    &clock{now: time.Now()},
		throttle: &countingThrottle{limit: 100, counts: map[string]int{}},
	}
	svc, err := identity.NewService(identitystore.New(b.pool), identity.Options{
		Signer:   tenancy.NewSigner(secret),
		Throttle: b.throttle,
		Now:      b.clock.Now,
	})
	require.NoError(t, err)
	return svc, b
}

const password = "correct horse battery staple"

// signUpOpts are the knobs of signUp.
type signUpOpts struct {
	Email string
}

func signUp(t *testing.T, svc *identity.Service, o signUpOpts) identity.SignUpResult {
	t.Helper()
	if o.Email == "" {
		o.Email = "owner-" + uuid.NewString()[:8] + "@Example.com"
	}
	res, err := svc.SignUp(t.Context(), identity.SignUpInput{
		CompanyName: "Acme", Email: o.Email, Password: password, Name: "Ada",
	})
	require.NoError(t, err)
	return res
}

func ownerAccess(res identity.SignUpResult) identity.Access {
	return identity.Access{
		Caller:      identity.Caller{CompanyID: res.Company.ID, UserID: res.User.ID},
		WorkspaceID: res.Workspace.ID, Role: identity.RoleOwner,
	}
}

func TestSignUp(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	res := signUp(t, svc, signUpOpts{Email: "  Ada@Example.COM "})
	require.Equal(t, "ada@example.com", res.User.Email, "emails are stored trimmed and lower-cased")
	require.Equal(t, identity.DefaultWorkspaceName, res.Workspace.Name)
	require.Equal(t, "free", res.Company.Plan)
	require.Equal(t, 5, res.Company.MaxSeats)
	require.Equal(t, 3, res.Company.MaxDomains)
	require.True(t, strings.HasPrefix(res.User.PasswordHash, "$argon2id$v=19$m="), "a PHC string")

	p, err := b.verifier.Verify(res.Tokens.AccessToken)
	require.NoError(t, err)
	require.Equal(t, res.User.ID.String(), p.Subject)
	require.Equal(t, res.Company.ID, p.CompanyID)
	require.WithinDuration(t, b.clock.Now().Add(identity.DefaultAccessTTL), res.Tokens.AccessExpires, time.Second)

	me, err := svc.Me(t.Context(), ownerAccess(res))
	require.NoError(t, err)
	require.Equal(t, []identity.Membership{{Role: identity.RoleOwner}}, me.Memberships)
	require.Equal(t, 1, me.Company.SeatsUsed)
	require.False(t, me.PlatformOperator)

	_, err = svc.SignUp(t.Context(), identity.SignUpInput{CompanyName: "Other", Email: "ADA@example.com", Password: password})
	require.ErrorIs(t, err, identity.ErrEmailTaken)

	for name, in := range map[string]identity.SignUpInput{
		"password":     {CompanyName: "A", Email: "x@example.com", Password: "short"},
		"email":        {CompanyName: "A", Email: "not an email", Password: password},
		"company_name": {CompanyName: " ", Email: "x@example.com", Password: password},
	} {
		_, err := svc.SignUp(t.Context(), in)
		var verr *identity.ValidationError
		require.ErrorAs(t, err, &verr, name)
		require.Equal(t, name, verr.Field)
	}
	_, err = svc.SignUp(t.Context(), identity.SignUpInput{CompanyName: "A", Email: "y@example.com", Password: strings.Repeat("é", 129)})
	require.Error(t, err, "more than 128 characters")
}

func TestLogInAndRefreshRotation(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	res := signUp(t, svc, signUpOpts{})
	email := res.User.Email

	_, err := svc.LogIn(t.Context(), email, "wrong password!!", "")
	require.ErrorIs(t, err, identity.ErrInvalidCredentials)
	_, err = svc.LogIn(t.Context(), "nobody@example.com", password, "")
	require.ErrorIs(t, err, identity.ErrInvalidCredentials, "an unknown account answers the same")

	first, err := svc.LogIn(t.Context(), strings.ToUpper(email), password, "")
	require.NoError(t, err)

	second, err := svc.Refresh(t.Context(), first.RefreshToken)
	require.NoError(t, err)
	require.NotEqual(t, first.RefreshToken, second.RefreshToken)
	p, err := b.verifier.Verify(second.AccessToken)
	require.NoError(t, err)
	require.Equal(t, res.User.ID.String(), p.Subject)

	// The rotated token again: the whole family is revoked, the newest token included.
	_, err = svc.Refresh(t.Context(), first.RefreshToken)
	require.ErrorIs(t, err, identity.ErrTokenReused)
	_, err = svc.Refresh(t.Context(), second.RefreshToken)
	require.ErrorIs(t, err, identity.ErrTokenReused)

	// Another session of the same user is not touched.
	_, err = svc.Refresh(t.Context(), res.Tokens.RefreshToken)
	require.NoError(t, err)

	// Log-out ends a session.
	third, err := svc.LogIn(t.Context(), email, password, "")
	require.NoError(t, err)
	require.NoError(t, svc.LogOut(t.Context(), third.RefreshToken))
	_, err = svc.Refresh(t.Context(), third.RefreshToken)
	require.ErrorIs(t, err, identity.ErrTokenReused)
	require.NoError(t, svc.LogOut(t.Context(), "unknown"), "an unknown token is no error")

	// An expired refresh token is refused.
	fourth, err := svc.LogIn(t.Context(), email, password, "")
	require.NoError(t, err)
	b.clock.Advance(identity.DefaultRefreshTTL + time.Second)
	_, err = svc.Refresh(t.Context(), fourth.RefreshToken)
	require.ErrorIs(t, err, identity.ErrUnauthenticated)
	_, err = svc.Refresh(t.Context(), "garbage")
	require.ErrorIs(t, err, identity.ErrUnauthenticated)
}

func TestLogInThrottle(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	b.throttle.limit = 2
	res := signUp(t, svc, signUpOpts{})
	for range 2 {
		_, err := svc.LogIn(t.Context(), res.User.Email, password, "192.0.2.1")
		require.NoError(t, err)
	}
	_, err := svc.LogIn(t.Context(), res.User.Email, password, "192.0.2.1")
	var rl *identity.RateLimitedError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, time.Minute, rl.RetryAfter)
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	res := signUp(t, svc, signUpOpts{})
	a := ownerAccess(res)

	k, secretKey, err := svc.CreateAPIKey(t.Context(), a, "ci", identity.RoleEditor)
	require.NoError(t, err)
	require.Regexp(t, `^hk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$`, secretKey)
	require.True(t, strings.HasPrefix(secretKey, k.Prefix+"_"))
	require.NotContains(t, k.SecretHash, secretKey)

	c, err := svc.AuthenticateAPIKey(t.Context(), secretKey)
	require.NoError(t, err)
	require.Equal(t, identity.Caller{CompanyID: res.Company.ID, APIKeyID: k.ID, WorkspaceID: res.Workspace.ID, Role: identity.RoleEditor}, c)

	keys, err := svc.ListAPIKeys(t.Context(), a)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.False(t, keys[0].LastUsedAt.IsZero(), "the use was recorded")
	used := keys[0].LastUsedAt

	// Used again within the minute: not written again.
	b.clock.Advance(30 * time.Second)
	_, err = svc.AuthenticateAPIKey(t.Context(), secretKey)
	require.NoError(t, err)
	keys, err = svc.ListAPIKeys(t.Context(), a)
	require.NoError(t, err)
	require.True(t, used.Equal(keys[0].LastUsedAt))

	for _, bad := range []string{"", "hk_", secretKey[:len(secretKey)-1] + "x", secretKey + "x", "hk_zzzzzzzz_" + secretKey[12:]} {
		_, err := svc.AuthenticateAPIKey(t.Context(), bad)
		require.ErrorIs(t, err, identity.ErrUnauthenticated, bad)
	}

	require.NoError(t, svc.RevokeAPIKey(t.Context(), a, k.ID))
	_, err = svc.AuthenticateAPIKey(t.Context(), secretKey)
	require.ErrorIs(t, err, identity.ErrUnauthenticated)

	other := signUp(t, svc, signUpOpts{})
	err = svc.RevokeAPIKey(t.Context(), ownerAccess(other), k.ID)
	require.ErrorIs(t, err, identity.ErrNotFound, "another company's key")
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t)
	res := signUp(t, svc, signUpOpts{})
	owner := ownerAccess(res)
	w1 := res.Workspace.ID
	w2, err := svc.CreateWorkspace(t.Context(), owner, "Second")
	require.NoError(t, err)
	d1, err := svc.CreateDomain(t.Context(), owner, "mail.acme.example")
	require.NoError(t, err)

	members := map[identity.Role]identity.Caller{}
	for _, r := range []identity.Role{identity.RoleAdmin, identity.RoleEditor, identity.RoleViewer} {
		m, tok, err := svc.InviteMember(t.Context(), owner, string(r)+"@acme.example", r)
		require.NoError(t, err)
		require.NotEmpty(t, tok)
		members[r] = identity.Caller{CompanyID: res.Company.ID, UserID: m.User.ID}
	}
	ctx := t.Context()
	check := func(c identity.Caller, perm identity.Permission, ws, dom uuid.UUID) error {
		_, err := svc.Authorize(ctx, c, perm, ws, dom)
		return err
	}

	require.NoError(t, check(owner.Caller, identity.PermMembersManage, w2.ID, uuid.Nil), "an owner holds every workspace")
	require.NoError(t, check(owner.Caller, identity.PermDataWrite, w1, d1.ID))
	require.NoError(t, check(members[identity.RoleViewer], identity.PermDataRead, w1, d1.ID))
	require.ErrorIs(t, check(members[identity.RoleViewer], identity.PermDataWrite, w1, d1.ID), identity.ErrPermissionDenied)
	require.NoError(t, check(members[identity.RoleEditor], identity.PermDataWrite, w1, d1.ID))
	require.ErrorIs(t, check(members[identity.RoleEditor], identity.PermMembersManage, w1, uuid.Nil), identity.ErrPermissionDenied)
	require.NoError(t, check(members[identity.RoleAdmin], identity.PermMembersManage, w1, uuid.Nil))
	require.ErrorIs(t, check(members[identity.RoleAdmin], identity.PermWorkspaceRead, w2.ID, uuid.Nil), identity.ErrNotFound,
		"a workspace the member holds no role in is not found")
	require.ErrorIs(t, check(members[identity.RoleAdmin], identity.PermDataRead, w1, uuid.New()), identity.ErrNotFound)
	require.ErrorIs(t, check(members[identity.RoleAdmin], identity.PermCompanyManage, uuid.Nil, uuid.Nil), identity.ErrPermissionDenied)
	require.NoError(t, check(members[identity.RoleViewer], identity.PermCompanyRead, uuid.Nil, uuid.Nil))

	// Another company's workspace and domain are not found, whatever the role.
	other := signUp(t, svc, signUpOpts{})
	require.ErrorIs(t, check(ownerAccess(other).Caller, identity.PermDataRead, w1, d1.ID), identity.ErrNotFound)
	require.ErrorIs(t, check(owner.Caller, identity.PermDataRead, w1, uuid.New()), identity.ErrNotFound)
	otherDomain, err := svc.CreateDomain(t.Context(), ownerAccess(other), "mail.other.example")
	require.NoError(t, err)
	require.ErrorIs(t, check(owner.Caller, identity.PermDataRead, w1, otherDomain.ID), identity.ErrNotFound)

	// API keys act with their role in their workspace only.
	_, keySecret, err := svc.CreateAPIKey(t.Context(), owner, "reader", identity.RoleViewer)
	require.NoError(t, err)
	key, err := svc.AuthenticateAPIKey(t.Context(), keySecret)
	require.NoError(t, err)
	require.NoError(t, check(key, identity.PermDataRead, w1, d1.ID))
	require.ErrorIs(t, check(key, identity.PermDataWrite, w1, d1.ID), identity.ErrPermissionDenied)
	require.ErrorIs(t, check(key, identity.PermDataRead, w2.ID, uuid.Nil), identity.ErrNotFound)
	require.ErrorIs(t, check(key, identity.PermSession, uuid.Nil, uuid.Nil), identity.ErrSessionRequired)

	// A role change and a removal hold from the next check on.
	_, err = svc.UpdateMember(t.Context(), owner, members[identity.RoleViewer].UserID, identity.RoleEditor)
	require.NoError(t, err)
	require.NoError(t, check(members[identity.RoleViewer], identity.PermDataWrite, w1, d1.ID))
	require.NoError(t, svc.RemoveMember(t.Context(), owner, members[identity.RoleViewer].UserID))
	require.ErrorIs(t, check(members[identity.RoleViewer], identity.PermDataRead, w1, d1.ID), identity.ErrNotFound)
}

func TestInvitations(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t)
	res := signUp(t, svc, signUpOpts{})
	owner := ownerAccess(res)

	m, tok, err := svc.InviteMember(t.Context(), owner, "Grace@Acme.example", identity.RoleEditor)
	require.NoError(t, err)
	require.NotEmpty(t, tok)
	require.True(t, m.User.Pending())
	require.Equal(t, "grace@acme.example", m.User.Email)

	_, err = svc.LogIn(t.Context(), "grace@acme.example", password, "")
	require.ErrorIs(t, err, identity.ErrInvalidCredentials, "a pending user cannot log in")

	_, _, err = svc.InviteMember(t.Context(), owner, "grace@acme.example", identity.RoleViewer)
	require.ErrorIs(t, err, identity.ErrAlreadyMember)
	_, _, err = svc.InviteMember(t.Context(), owner, res.User.Email, identity.RoleViewer)
	require.ErrorIs(t, err, identity.ErrAlreadyMember, "the owner holds every workspace already")
	other := signUp(t, svc, signUpOpts{})
	_, _, err = svc.InviteMember(t.Context(), owner, other.User.Email, identity.RoleViewer)
	require.ErrorIs(t, err, identity.ErrEmailTaken)
	_, _, err = svc.InviteMember(t.Context(), owner, "x@acme.example", identity.RoleOwner)
	var verr *identity.ValidationError
	require.ErrorAs(t, err, &verr)

	toks, err := svc.AcceptInvitation(t.Context(), tok, password, "Grace")
	require.NoError(t, err)
	require.NotEmpty(t, toks.AccessToken)
	_, err = svc.AcceptInvitation(t.Context(), tok, password, "Grace")
	require.ErrorIs(t, err, identity.ErrInvitationInvalid, "an invitation is accepted once")
	_, err = svc.AcceptInvitation(t.Context(), "unknown", password, "")
	require.ErrorIs(t, err, identity.ErrInvitationInvalid)

	_, err = svc.LogIn(t.Context(), "grace@acme.example", password, "")
	require.NoError(t, err)

	members, err := svc.ListMembers(t.Context(), owner)
	require.NoError(t, err)
	require.Len(t, members, 1)
	require.Equal(t, "Grace", members[0].User.Name)
	require.False(t, members[0].User.Pending())

	// An active member of the company invited to another workspace gets the role at once.
	w2, err := svc.CreateWorkspace(t.Context(), owner, "Second")
	require.NoError(t, err)
	in2 := owner
	in2.WorkspaceID = w2.ID
	_, tok, err = svc.InviteMember(t.Context(), in2, "grace@acme.example", identity.RoleViewer)
	require.NoError(t, err)
	require.Empty(t, tok, "no invitation for a user who has an account")
}

func TestInvitationExpires(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	res := signUp(t, svc, signUpOpts{})
	_, tok, err := svc.InviteMember(t.Context(), ownerAccess(res), "late@acme.example", identity.RoleViewer)
	require.NoError(t, err)
	b.clock.Advance(identity.InvitationTTL + time.Second)
	_, err = svc.AcceptInvitation(t.Context(), tok, password, "")
	require.ErrorIs(t, err, identity.ErrInvitationInvalid)
}

func TestPlanLimits(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t)
	res := signUp(t, svc, signUpOpts{})
	owner := ownerAccess(res)

	for i := range res.Company.MaxDomains {
		_, err := svc.CreateDomain(t.Context(), owner, "d"+string(rune('a'+i))+"."+res.Company.ID.String()[:8]+".example")
		require.NoError(t, err)
	}
	_, err := svc.CreateDomain(t.Context(), owner, "one-more."+res.Company.ID.String()[:8]+".example")
	var ple *identity.PlanLimitError
	require.ErrorAs(t, err, &ple)
	require.Equal(t, identity.PlanLimitError{Limit: identity.LimitDomains, Max: 3}, *ple)

	// The owner holds one seat; four more invitations fill the plan's five.
	for i := range res.Company.MaxSeats - 1 {
		_, _, err := svc.InviteMember(t.Context(), owner, "seat"+string(rune('a'+i))+"@acme.example", identity.RoleViewer)
		require.NoError(t, err)
	}
	_, _, err = svc.InviteMember(t.Context(), owner, "sixth@acme.example", identity.RoleViewer)
	require.ErrorAs(t, err, &ple)
	require.Equal(t, identity.PlanLimitError{Limit: identity.LimitSeats, Max: 5}, *ple)

	c, err := svc.Company(t.Context(), owner)
	require.NoError(t, err)
	require.Equal(t, 5, c.SeatsUsed)
	require.Equal(t, 3, c.DomainsUsed)

	// Removing a member frees the seat.
	members, err := svc.ListMembers(t.Context(), owner)
	require.NoError(t, err)
	require.NoError(t, svc.RemoveMember(t.Context(), owner, members[0].User.ID))
	_, _, err = svc.InviteMember(t.Context(), owner, "sixth@acme.example", identity.RoleViewer)
	require.NoError(t, err)

	// A domain name is registered once across every company.
	other := signUp(t, svc, signUpOpts{})
	_, err = svc.CreateDomain(t.Context(), ownerAccess(other), "da."+res.Company.ID.String()[:8]+".example")
	require.ErrorIs(t, err, identity.ErrDomainTaken)
}

func TestOperators(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ops := identity.NewOperatorAdmin(identitystore.New(b.pool))
	res := signUp(t, svc, signUpOpts{})

	op, err := ops.GrantOperator(t.Context(), strings.ToUpper(res.User.Email), "cli:test")
	require.NoError(t, err)
	require.Equal(t, res.User.ID, op.UserID)
	_, err = ops.GrantOperator(t.Context(), res.User.Email, "cli:test")
	require.NoError(t, err, "granting twice is fine")
	me, err := svc.Me(t.Context(), ownerAccess(res))
	require.NoError(t, err)
	require.True(t, me.PlatformOperator)

	list, err := ops.Operators(t.Context())
	require.NoError(t, err)
	require.Len(t, list, 1)

	require.NoError(t, ops.RevokeOperator(t.Context(), res.User.Email))
	require.ErrorIs(t, ops.RevokeOperator(t.Context(), res.User.Email), identity.ErrNotFound)
	_, err = ops.GrantOperator(t.Context(), "nobody@example.com", "cli:test")
	require.ErrorIs(t, err, identity.ErrNotFound)
}

func TestWorkspacesAndDomains(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t)
	res := signUp(t, svc, signUpOpts{})
	owner := ownerAccess(res)

	w2, err := svc.CreateWorkspace(t.Context(), owner, "Second")
	require.NoError(t, err)
	ws, err := svc.ListWorkspaces(t.Context(), owner)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{res.Workspace.ID, w2.ID}, []uuid.UUID{ws[0].ID, ws[1].ID})

	m, _, err := svc.InviteMember(t.Context(), owner, "v@acme.example", identity.RoleViewer)
	require.NoError(t, err)
	viewer := identity.Access{Caller: identity.Caller{CompanyID: res.Company.ID, UserID: m.User.ID}}
	ws, err = svc.ListWorkspaces(t.Context(), viewer)
	require.NoError(t, err)
	require.Len(t, ws, 1, "a member sees their workspaces only")

	renamed, err := svc.UpdateWorkspace(t.Context(), owner, "Main")
	require.NoError(t, err)
	require.Equal(t, "Main", renamed.Name)

	d, err := svc.CreateDomain(t.Context(), owner, "Mail.Acme-"+res.Company.ID.String()[:8]+".example.")
	require.NoError(t, err)
	require.Equal(t, "mail.acme-"+res.Company.ID.String()[:8]+".example", d.Name)
	da := owner
	da.DomainID = d.ID
	got, err := svc.Domain(t.Context(), da)
	require.NoError(t, err)
	require.Equal(t, d, got)
	require.NoError(t, svc.DeleteDomain(t.Context(), da))
	require.ErrorIs(t, svc.DeleteDomain(t.Context(), da), identity.ErrNotFound)

	for _, bad := range []string{"localhost", "-a.example", "a..example", "a_b.example", "1.2.3.4"} {
		_, err := svc.CreateDomain(t.Context(), owner, bad)
		var verr *identity.ValidationError
		require.ErrorAs(t, err, &verr, bad)
	}

	c, err := svc.UpdateCompany(t.Context(), owner, "Acme Inc")
	require.NoError(t, err)
	require.Equal(t, "Acme Inc", c.Name)
}
