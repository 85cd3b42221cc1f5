package identity_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	p := identity.DefaultArgon2Params()
	h, err := identity.HashPassword(password, p)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)

	ok, err := identity.VerifyPassword(password, h)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = identity.VerifyPassword(password+"!", h)
	require.NoError(t, err)
	require.False(t, ok)

	h2, err := identity.HashPassword(password, p)
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salted")

	// Parameters come from the hash, so older costs stay verifiable.
	cheap := identity.Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 8, KeyLen: 16}
	h3, err := identity.HashPassword(password, cheap)
	require.NoError(t, err)
	ok, err = identity.VerifyPassword(password, h3)
	require.NoError(t, err)
	require.True(t, ok)

	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=18$m=1,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=0,t=1,p=1$c2FsdA$a2V5"} {
		_, err := identity.VerifyPassword(password, bad)
		require.Error(t, err, bad)
	}
}

func TestRolePermissions(t *testing.T) {
	t.Parallel()
	// Every permission is granted to the owner; each role holds all that the next one holds.
	roles := identity.Roles()
	for _, p := range identity.Permissions() {
		require.True(t, identity.RoleOwner.Grants(p.Permission), p.Permission)
	}
	for i := 1; i < len(roles); i++ {
		for _, p := range identity.Granted(roles[i]) {
			require.True(t, roles[i-1].Grants(p), "%s holds %s but %s does not", roles[i], p, roles[i-1])
		}
	}
	require.False(t, identity.RoleViewer.Grants(identity.PermDataWrite))
	require.False(t, identity.RoleEditor.Grants(identity.PermMembersManage))
	require.False(t, identity.RoleAdmin.Grants(identity.PermCompanyManage))
	require.False(t, identity.Role("root").Grants(identity.PermDataRead))
	require.False(t, identity.RoleOwner.Assignable())
}

func TestCallerFromPrincipal(t *testing.T) {
	t.Parallel()
	user, company := uuid.New(), uuid.New()
	c, err := identity.CallerFromPrincipal(tenancy.Principal{Subject: user.String(), CompanyID: company, Kind: tenancy.KindUser})
	require.NoError(t, err)
	require.Equal(t, identity.Caller{CompanyID: company, UserID: user}, c)

	for name, p := range map[string]tenancy.Principal{
		"service token":    {Subject: "service:worker", CompanyID: company, Kind: tenancy.KindService},
		"downscoped token": {Subject: user.String(), CompanyID: company, Kind: tenancy.KindUser, WorkspaceID: uuid.New(), Role: "admin"},
		"subject not uuid": {Subject: "user-1", CompanyID: company, Kind: tenancy.KindUser},
	} {
		_, err := identity.CallerFromPrincipal(p)
		require.ErrorIs(t, err, identity.ErrUnauthenticated, name)
	}
}
