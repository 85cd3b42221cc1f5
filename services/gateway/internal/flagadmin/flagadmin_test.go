package flagadmin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/heraldmail/herald/services/gateway/internal/flagadmin"
	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/identitystore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

const password = "correct horse battery staple"

// Fixture flags, one of each scope.
var (
	wsFlag      = flags.NewFlag("admin_test_workspace")
	companyFlag = flags.NewFlag("admin_test_company")
	globalFlag  = flags.NewFlag("admin_test_global")
)

func definitions() []flags.Definition {
	def := func(f flags.Flag, scope flags.Level) flags.Definition {
		return flags.Definition{
			Flag: f, Description: "test flag " + f.Name(), Scope: scope, Owner: "gateway",
			Added: flags.Date(2026, time.November, 1), ExpectedRemoval: flags.Date(2027, time.November, 1),
		}
	}
	return []flags.Definition{def(wsFlag, flags.LevelWorkspace), def(companyFlag, flags.LevelCompany), def(globalFlag, flags.LevelGlobal)}
}

// env is one test's administration and the people of two companies.
type env struct {
	admin    *flagadmin.Admin
	reg      *prometheus.Registry
	rdb      *redis.Client
	prefix   string
	provider *flags.Redis
	store    *identitystore.Store

	owner, wsAdmin, editor, other, operator identity.Access
	workspace, otherWorkspace               uuid.UUID
	company                                 uuid.UUID
}

func setup(t *testing.T) *env {
	t.Helper()
	pool := pgtest.PoolAs(t, "herald_gateway")
	store := identitystore.New(pool)
	svc, err := identity.NewService(store, identity.Options{Signer: tenancy.NewSigner("flag-admin-test-secret-0123456789abcdef")})
	require.NoError(t, err)

	rdb := redis.NewClient(&redis.Options{Addr: pgtest.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	t.Cleanup(func() { flagstest.Purge(t, rdb) })
	prefix := flagstest.KeyPrefix(t)
	p := flagstest.Start(t, rdb, flags.WithKeyPrefix(prefix), flags.WithDefinitions(definitions()...))

	reg := prometheus.NewRegistry()
	admin, err := flagadmin.New(store, p, svc, reg, zaptest.NewLogger(t))
	require.NoError(t, err)

	e := &env{admin: admin, reg: reg, rdb: rdb, prefix: prefix, provider: p, store: store}
	ctx := t.Context()
	signUp := func() identity.SignUpResult {
		res, err := svc.SignUp(ctx, identity.SignUpInput{
			CompanyName: "Acme", Email: "owner-" + uuid.NewString()[:8] + "@example.com", Password: password, Name: "Ada",
		})
		require.NoError(t, err)
		return res
	}
	a, b := signUp(), signUp()
	e.company, e.workspace, e.otherWorkspace = a.Company.ID, a.Workspace.ID, b.Workspace.ID
	e.owner = identity.Access{Caller: identity.Caller{CompanyID: a.Company.ID, UserID: a.User.ID}, Role: identity.RoleOwner}
	e.other = identity.Access{Caller: identity.Caller{CompanyID: b.Company.ID, UserID: b.User.ID}, Role: identity.RoleOwner}
	invite := func(role identity.Role) identity.Access {
		m, _, err := svc.InviteMember(ctx, identity.Access{Caller: e.owner.Caller, WorkspaceID: e.workspace, Role: identity.RoleOwner},
			string(role)+"-"+uuid.NewString()[:8]+"@example.com", role)
		require.NoError(t, err)
		return identity.Access{Caller: identity.Caller{CompanyID: a.Company.ID, UserID: m.User.ID}}
	}
	e.wsAdmin, e.editor = invite(identity.RoleAdmin), invite(identity.RoleEditor)

	op := signUp()
	_, err = identity.NewOperatorAdmin(store).GrantOperator(ctx, op.User.Email, "test")
	require.NoError(t, err)
	e.operator = identity.Access{Caller: identity.Caller{CompanyID: op.Company.ID, UserID: op.User.ID}, Role: identity.RoleOwner}
	return e
}

func TestChangeAuthorization(t *testing.T) {
	t.Parallel()
	e := setup(t)
	type outcome int
	const (
		allowed outcome = iota
		forbidden
		notFound
	)
	cases := []struct {
		name   string
		who    identity.Access
		flag   flags.Flag
		level  flags.Level
		ws     uuid.UUID
		expect outcome
	}{
		{"owner sets the company", e.owner, companyFlag, flags.LevelCompany, uuid.Nil, allowed},
		{"owner sets a workspace", e.owner, wsFlag, flags.LevelWorkspace, e.workspace, allowed},
		{"owner cannot set globally", e.owner, globalFlag, flags.LevelGlobal, uuid.Nil, forbidden},
		{"admin sets their workspace", e.wsAdmin, wsFlag, flags.LevelWorkspace, e.workspace, allowed},
		{"admin cannot set the company", e.wsAdmin, companyFlag, flags.LevelCompany, uuid.Nil, forbidden},
		{"editor cannot set their workspace", e.editor, wsFlag, flags.LevelWorkspace, e.workspace, forbidden},
		{"editor cannot set the company", e.editor, companyFlag, flags.LevelCompany, uuid.Nil, forbidden},
		{"another company's owner does not find the workspace", e.other, wsFlag, flags.LevelWorkspace, e.workspace, notFound},
		{"an admin does not find another company's workspace", e.wsAdmin, wsFlag, flags.LevelWorkspace, e.otherWorkspace, notFound},
		{"operator sets globally", e.operator, globalFlag, flags.LevelGlobal, uuid.Nil, allowed},
		{"operator does not find another company's workspace", e.operator, wsFlag, flags.LevelWorkspace, e.workspace, notFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, clear := range []bool{false, true} {
				var err error
				if clear {
					_, err = e.admin.Clear(t.Context(), c.who, c.flag.Name(), c.level, c.ws)
				} else {
					_, err = e.admin.Set(t.Context(), c.who, c.flag.Name(), c.level, c.ws, true)
				}
				switch c.expect {
				case allowed:
					require.NoError(t, err)
				case forbidden:
					require.ErrorIs(t, err, identity.ErrPermissionDenied)
				case notFound:
					var nf *identity.NotFoundError
					require.ErrorAs(t, err, &nf)
					require.Equal(t, "workspace", nf.Resource)
				}
			}
		})
	}
}

func TestChangeValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()

	_, err := e.admin.Set(ctx, e.owner, "no_such_flag", flags.LevelCompany, uuid.Nil, true)
	var nf *identity.NotFoundError
	require.ErrorAs(t, err, &nf)
	require.Equal(t, "flag", nf.Resource)

	for name, in := range map[string]struct {
		flag  flags.Flag
		level flags.Level
		ws    uuid.UUID
		field string
	}{
		"no scope":                        {companyFlag, 0, uuid.Nil, "scope"},
		"narrower than the flag":          {companyFlag, flags.LevelWorkspace, e.workspace, "scope"},
		"workspace scope without an id":   {wsFlag, flags.LevelWorkspace, uuid.Nil, "workspace_id"},
		"workspace id with company scope": {wsFlag, flags.LevelCompany, e.workspace, "workspace_id"},
	} {
		_, err := e.admin.Set(ctx, e.owner, in.flag.Name(), in.level, in.ws, true)
		var verr *identity.ValidationError
		require.ErrorAs(t, err, &verr, name)
		require.Equal(t, in.field, verr.Field, name)
	}

	apiKey := identity.Access{Caller: identity.Caller{CompanyID: e.company, APIKeyID: uuid.New(), WorkspaceID: e.workspace, Role: identity.RoleAdmin}}
	_, err = e.admin.Set(ctx, apiKey, wsFlag.Name(), flags.LevelWorkspace, e.workspace, true)
	require.ErrorIs(t, err, identity.ErrSessionRequired)

	audit, err := e.admin.ListAudit(ctx, e.owner, "")
	require.NoError(t, err)
	require.Empty(t, audit, "refused changes are not recorded")
}

func TestSetClearListAndAudit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()

	// A second gateway process sharing the Redis sees every change.
	peer := flagstest.Start(t, e.rdb, flags.WithKeyPrefix(e.prefix), flags.WithDefinitions(definitions()...))
	scope := flags.Scope{CompanyID: e.company, WorkspaceID: e.workspace}

	c, err := e.admin.Set(ctx, e.owner, wsFlag.Name(), flags.LevelWorkspace, e.workspace, true)
	require.NoError(t, err)
	require.Nil(t, c.Old)
	require.Equal(t, new(true), c.New)
	require.Equal(t, e.workspace, c.WorkspaceID)
	require.Equal(t, e.company, c.CompanyID)
	require.Equal(t, "user:"+e.owner.Caller.UserID.String(), c.Actor)
	flagstest.Eventually(t, peer, wsFlag, scope, true, 5*time.Second)

	_, err = e.admin.Set(ctx, e.wsAdmin, wsFlag.Name(), flags.LevelWorkspace, e.workspace, false)
	require.NoError(t, err)
	flagstest.Eventually(t, peer, wsFlag, scope, false, 5*time.Second)
	_, err = e.admin.Set(ctx, e.owner, companyFlag.Name(), flags.LevelCompany, uuid.Nil, true)
	require.NoError(t, err)
	flagstest.Eventually(t, peer, companyFlag, scope, true, 5*time.Second)

	views, err := e.admin.List(ctx, e.owner, e.workspace)
	require.NoError(t, err)
	require.Len(t, views, 3)
	byName := map[string]flagadmin.FlagView{}
	for _, v := range views {
		byName[v.Definition.Flag.Name()] = v
	}
	require.Equal(t, new(false), byName[wsFlag.Name()].Workspace)
	require.Nil(t, byName[wsFlag.Name()].Company)
	require.False(t, byName[wsFlag.Name()].Enabled)
	require.Equal(t, new(true), byName[companyFlag.Name()].Company)
	require.True(t, byName[companyFlag.Name()].Enabled)
	require.Nil(t, byName[globalFlag.Name()].Global)
	require.False(t, byName[globalFlag.Name()].Enabled)

	// Another company sees none of it.
	others, err := e.admin.List(ctx, e.other, uuid.Nil)
	require.NoError(t, err)
	for _, v := range others {
		require.Nil(t, v.Company)
		require.Nil(t, v.Workspace)
	}
	_, err = e.admin.List(ctx, e.other, e.workspace)
	var nf *identity.NotFoundError
	require.ErrorAs(t, err, &nf)

	c, err = e.admin.Clear(ctx, e.owner, wsFlag.Name(), flags.LevelWorkspace, e.workspace)
	require.NoError(t, err)
	require.Equal(t, new(false), c.Old)
	require.Nil(t, c.New)
	flagstest.Eventually(t, peer, wsFlag, scope, false, 5*time.Second)

	g, err := e.admin.Set(ctx, e.operator, globalFlag.Name(), flags.LevelGlobal, uuid.Nil, true)
	require.NoError(t, err)
	require.Equal(t, uuid.Nil, g.CompanyID)
	flagstest.Eventually(t, peer, globalFlag, scope, true, 5*time.Second)

	// The company's audit, newest first, with the values before and after.
	audit, err := e.admin.ListAudit(ctx, e.owner, wsFlag.Name())
	require.NoError(t, err)
	require.Len(t, audit, 3)
	type row struct {
		old, new *bool
		actor    uuid.UUID
	}
	var got []row
	for _, a := range audit {
		require.Equal(t, flags.LevelWorkspace, a.Level)
		got = append(got, row{a.Old, a.New, a.ActorUserID})
	}
	require.Equal(t, []row{
		{new(false), nil, e.owner.Caller.UserID},
		{new(true), new(false), e.wsAdmin.Caller.UserID},
		{nil, new(true), e.owner.Caller.UserID},
	}, got)
	all, err := e.admin.ListAudit(ctx, e.owner, "")
	require.NoError(t, err)
	require.Len(t, all, 4, "the global change is not the company's")

	// Operators see the global changes; others' companies see nothing of this one.
	opAudit, err := e.admin.ListAudit(ctx, e.operator, "")
	require.NoError(t, err)
	require.Len(t, opAudit, 1)
	require.Equal(t, flags.LevelGlobal, opAudit[0].Level)
	otherAudit, err := e.admin.ListAudit(ctx, e.other, "")
	require.NoError(t, err)
	require.Empty(t, otherAudit)
	_, err = e.admin.ListAudit(ctx, e.editor, "")
	require.ErrorIs(t, err, identity.ErrPermissionDenied)

	require.InDelta(t, 3, testutil.ToFloat64(counter(t, e.reg, wsFlag.Name(), "workspace")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(counter(t, e.reg, globalFlag.Name(), "global")), 0)
}

// counter finds herald_flag_changes_total{flag, scope} in reg.
func counter(t *testing.T, reg *prometheus.Registry, flag, scope string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "herald_flag_changes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["flag"] == flag && labels["scope"] == scope {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "c"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	t.Fatalf("no herald_flag_changes_total{flag=%q,scope=%q}", flag, scope)
	return nil
}

func TestRedisDownRecordsNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()

	// A provider whose Redis does not answer.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = down.Close() })
	p, err := flags.NewRedis(down, prometheus.NewRegistry(), zap.NewNop(), flags.WithDefinitions(definitions()...))
	require.NoError(t, err)
	svc, err := identity.NewService(e.store, identity.Options{Signer: tenancy.NewSigner("flag-admin-test-secret-0123456789abcdef")})
	require.NoError(t, err)
	admin, err := flagadmin.New(e.store, p, svc, prometheus.NewRegistry(), zaptest.NewLogger(t))
	require.NoError(t, err)

	_, err = admin.Set(ctx, e.owner, companyFlag.Name(), flags.LevelCompany, uuid.Nil, true)
	require.ErrorIs(t, err, flagadmin.ErrUnavailable)
	require.False(t, strings.Contains(err.Error(), "127.0.0.1"), "no internal detail: %v", err)
	_, err = admin.List(ctx, e.owner, uuid.Nil)
	require.ErrorIs(t, err, flagadmin.ErrUnavailable)

	audit, err := e.admin.ListAudit(ctx, e.owner, "")
	require.NoError(t, err)
	require.Empty(t, audit)
}

func TestChangeIsLogged(t *testing.T) {
	t.Parallel()
	e := setup(t)
	core, logs := observer.New(zap.InfoLevel)
	svc, err := identity.NewService(e.store, identity.Options{Signer: tenancy.NewSigner("flag-admin-test-secret-0123456789abcdef")})
	require.NoError(t, err)
	admin, err := flagadmin.New(e.store, e.provider, svc, prometheus.NewRegistry(), zap.New(core))
	require.NoError(t, err)

	_, err = admin.Set(t.Context(), e.owner, companyFlag.Name(), flags.LevelCompany, uuid.Nil, true)
	require.NoError(t, err)
	entries := logs.FilterMessage("flag changed").All()
	require.Len(t, entries, 1)
	fields := entries[0].ContextMap()
	require.Equal(t, companyFlag.Name(), fields["flag"])
	require.Equal(t, "company", fields["scope"])
	require.Equal(t, "unset", fields["old"])
	require.Equal(t, "true", fields["new"])
	require.Equal(t, "user:"+e.owner.Caller.UserID.String(), fields["actor"])
}
