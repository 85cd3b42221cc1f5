package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// requireCode checks that r is the error shape with status and code.
func requireCode(t *testing.T, r response, status int, code string) errorBody {
	t.Helper()
	require.Equal(t, status, r.status, "%s", r.body)
	e := decodeError(t, r)
	require.Equal(t, code, e.Code, "%s", r.body)
	return e
}

func TestSessions(t *testing.T) {
	t.Parallel()
	g := startGateway(t, startBackends(t, testSecret), nil)
	tn := signUp(t, g)
	require.NotEmpty(t, tn.tokens.RefreshToken)
	require.Equal(t, "Bearer", tn.tokens.TokenType)

	// Wrong password and unknown account answer alike.
	for _, email := range []string{tn.email, uniqueEmail("nobody")} {
		r := g.call(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": "wrong password!!"}, nil)
		e := requireCode(t, r, http.StatusUnauthorized, "unauthenticated")
		require.Equal(t, "invalid email or password", e.Message)
	}

	first := logIn(t, g, strings.ToUpper(tn.email))
	var me struct {
		User             map[string]any   `json:"user"`
		Company          map[string]any   `json:"company"`
		Memberships      []map[string]any `json:"memberships"`
		PlatformOperator bool             `json:"platform_operator"`
	}
	r := g.call(t, http.MethodGet, "/v1/me", first.AccessToken, nil, &me)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, tn.userID, me.User["id"])
	require.Equal(t, tn.email, me.User["email"])
	require.Equal(t, []map[string]any{{"role": "ROLE_OWNER"}}, me.Memberships)
	require.False(t, me.PlatformOperator)
	require.EqualValues(t, 5, me.Company["max_seats"])

	// Refresh rotates: a new pair, and the old refresh token is used up.
	var second struct {
		Tokens tokens `json:"tokens"`
	}
	r = g.call(t, http.MethodPost, "/v1/auth/refresh", "", map[string]any{"refresh_token": first.RefreshToken}, &second)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.NotEqual(t, first.RefreshToken, second.Tokens.RefreshToken)
	require.Equal(t, http.StatusOK, g.call(t, http.MethodGet, "/v1/me", second.Tokens.AccessToken, nil, nil).status)

	// Reusing the rotated token revokes the family: the new refresh token is dead too.
	r = g.call(t, http.MethodPost, "/v1/auth/refresh", "", map[string]any{"refresh_token": first.RefreshToken}, nil)
	requireCode(t, r, http.StatusUnauthorized, "unauthenticated")
	r = g.call(t, http.MethodPost, "/v1/auth/refresh", "", map[string]any{"refresh_token": second.Tokens.RefreshToken}, nil)
	requireCode(t, r, http.StatusUnauthorized, "unauthenticated")

	// Log-out revokes the session's refresh token.
	third := logIn(t, g, tn.email)
	r = g.call(t, http.MethodPost, "/v1/auth/logout", "", map[string]any{"refresh_token": third.RefreshToken}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	r = g.call(t, http.MethodPost, "/v1/auth/refresh", "", map[string]any{"refresh_token": third.RefreshToken}, nil)
	requireCode(t, r, http.StatusUnauthorized, "unauthenticated")

	// Public routes ignore a stale credential; the others need one.
	r = g.call(t, http.MethodPost, "/v1/auth/login", "expired-or-garbage", map[string]any{"email": tn.email, "password": testPassword}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	requireCode(t, g.call(t, http.MethodGet, "/v1/me", "", nil, nil), http.StatusUnauthorized, "unauthenticated")

	// Sign-up errors say what to fix.
	r = g.call(t, http.MethodPost, "/v1/auth/signup", "", map[string]any{"company_name": "A", "email": tn.email, "password": testPassword}, nil)
	requireCode(t, r, http.StatusConflict, "already_exists")
	r = g.call(t, http.MethodPost, "/v1/auth/signup", "", map[string]any{"company_name": "A", "email": uniqueEmail("x"), "password": "short"}, nil)
	e := requireCode(t, r, http.StatusBadRequest, "invalid_argument")
	require.Equal(t, []any{map[string]any{"field": "password", "description": "must be at least 12 characters"}}, e.Details)
}

// TestSecretRotation: a token signed with the old secret is accepted while
// JWT_SECRET_PREVIOUS names it and refused once it is removed.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	const newSecret = "the-new-gateway-secret-of-at-least-32-bytes"
	db := gatewayURL(t)
	b := startBackends(t, testSecret, newSecret)

	before := startGateway(t, b, map[string]string{"DATABASE_URL": db})
	tn := signUp(t, before) // signed with testSecret
	require.NoError(t, before.stop())

	during := startGateway(t, b, map[string]string{"DATABASE_URL": db, "JWT_SECRET": newSecret, "JWT_SECRET_PREVIOUS": testSecret})
	require.Equal(t, http.StatusOK, during.call(t, http.MethodGet, "/v1/me", tn.bearer(), nil, nil).status, "the old secret's token is accepted")
	r := during.call(t, http.MethodGet, "/v1/workspaces/"+tn.workspace+"/domains/"+tn.domain+"/recipients/"+knownRecipientID, tn.bearer(), nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	fresh := logIn(t, during, tn.email) // signed with newSecret
	require.NoError(t, during.stop())

	after := startGateway(t, b, map[string]string{"DATABASE_URL": db, "JWT_SECRET": newSecret})
	requireCode(t, after.call(t, http.MethodGet, "/v1/me", tn.bearer(), nil, nil), http.StatusUnauthorized, "unauthenticated")
	require.Equal(t, http.StatusOK, after.call(t, http.MethodGet, "/v1/me", fresh.AccessToken, nil, nil).status)
}

func TestMalformedTokens(t *testing.T) {
	t.Parallel()
	g := startGateway(t, startBackends(t, testSecret), nil)
	tn := signUp(t, g)
	now := time.Now()
	kid := tenancy.KeyID(testSecret)
	claims := func(edit func(*tenancy.Claims)) tenancy.Claims {
		c := tenancy.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: tenancy.Issuer, Subject: tn.userID, Audience: jwt.ClaimStrings{tenancy.Audience},
				IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
			},
			CompanyID: tn.companyID, Kind: tenancy.KindUser,
		}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	sign := func(key, kid string, c tenancy.Claims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString([]byte(key))
		require.NoError(t, err)
		return s
	}
	good := sign(testSecret, kid, claims(nil))
	require.Equal(t, http.StatusOK, g.call(t, http.MethodGet, "/v1/me", good, nil, nil).status, "the control token works")

	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"`+kid+`"}`)) +
		"." + strings.Split(good, ".")[1] + "."
	companyID := uuid.MustParse(tn.companyID)
	downscoped, err := tenancy.NewSigner(testSecret).SignScoped(tn.userID, companyID, tenancy.KindUser,
		tenancy.Scoped{WorkspaceID: uuid.MustParse(tn.workspace), DomainID: uuid.MustParse(tn.domain), Role: "owner"}, time.Minute)
	require.NoError(t, err)
	service, err := tenancy.NewSigner(testSecret).ServiceToken("worker", companyID)
	require.NoError(t, err)

	cases := map[string]string{
		"alg none":       none,
		"unknown kid":    sign(testSecret, "0123456789abcdef", claims(nil)),
		"wrong secret":   sign("another-secret-that-is-long-enough-0123", kid, claims(nil)),
		"expired":        sign(testSecret, kid, claims(func(c *tenancy.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })),
		"wrong issuer":   sign(testSecret, kid, claims(func(c *tenancy.Claims) { c.Issuer = "evil" })),
		"wrong audience": sign(testSecret, kid, claims(func(c *tenancy.Claims) { c.Audience = jwt.ClaimStrings{"other"} })),
		"garbage":        "not.a.token",
		"api key shape":  "hk_00000000_" + strings.Repeat("A", 43),
		"downscoped":     downscoped,
		"service token":  service,
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/v1/me", "/v1/workspaces/" + tn.workspace + "/domains/" + tn.domain + "/recipients/" + knownRecipientID} {
				r := g.call(t, http.MethodGet, path, tok, nil, nil)
				requireCode(t, r, http.StatusUnauthorized, "unauthenticated")
				require.Equal(t, `Bearer realm="herald"`, r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	b := startBackends(t, testSecret)
	g := startGateway(t, b, nil)
	tn := signUp(t, g)
	keys := "/v1/workspaces/" + tn.workspace + "/api-keys"

	var created struct {
		APIKey map[string]any `json:"api_key"`
		Secret string         `json:"secret"`
	}
	r := g.call(t, http.MethodPost, keys, tn.bearer(), map[string]any{"name": "ci", "role": "ROLE_EDITOR"}, &created)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Regexp(t, `^hk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$`, created.Secret)
	prefix := created.APIKey["prefix"].(string)
	require.True(t, strings.HasPrefix(created.Secret, prefix+"_"))
	keyID := created.APIKey["id"].(string)

	// The key acts with its role in its workspace, and the service sees a downscoped token.
	data := "/v1/workspaces/" + tn.workspace + "/domains/" + tn.domain
	r = g.call(t, http.MethodPost, data+"/recipients", created.Secret, map[string]any{"email": "key@example.com"}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	_, principals, _ := b.calls.seen()
	last := principals[len(principals)-1]
	require.Equal(t, "apikey:"+keyID, last.Subject)
	require.Equal(t, "editor", last.Role)
	require.Equal(t, tn.domain, last.DomainID.String())

	// An editor key manages nothing, and needs a user session for /v1/me.
	requireCode(t, g.call(t, http.MethodGet, keys, created.Secret, nil, nil), http.StatusForbidden, "permission_denied")
	requireCode(t, g.call(t, http.MethodGet, "/v1/me", created.Secret, nil, nil), http.StatusForbidden, "permission_denied")
	var ws struct {
		Workspaces []map[string]any `json:"workspaces"`
	}
	r = g.call(t, http.MethodGet, "/v1/workspaces", created.Secret, nil, &ws)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Len(t, ws.Workspaces, 1)

	// Listing shows the prefix, never the secret.
	r = g.call(t, http.MethodGet, keys, tn.bearer(), nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Contains(t, string(r.body), prefix)
	require.NotContains(t, string(r.body), created.Secret)
	require.NotContains(t, string(r.body), created.Secret[len(prefix)+1:])
	require.Contains(t, string(r.body), `"last_use_time"`)

	// Revoked: the next request is refused.
	r = g.call(t, http.MethodDelete, keys+"/"+keyID, tn.bearer(), nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	requireCode(t, g.call(t, http.MethodGet, data+"/recipients/"+knownRecipientID, created.Secret, nil, nil), http.StatusUnauthorized, "unauthenticated")
	requireCode(t, g.call(t, http.MethodDelete, keys+"/"+uuid.NewString(), tn.bearer(), nil, nil), http.StatusNotFound, "not_found")
}

// TestPermissionMatrix: viewers cannot write, editors cannot manage members, a member of one
// workspace finds no other, and another company's ids are never found.
func TestPermissionMatrix(t *testing.T) {
	t.Parallel()
	g := startGateway(t, startBackends(t, testSecret), nil)
	tn := signUp(t, g)
	var w2 struct {
		Workspace map[string]string `json:"workspace"`
	}
	r := g.call(t, http.MethodPost, "/v1/workspaces", tn.bearer(), map[string]any{"name": "Second"}, &w2)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	ws2 := w2.Workspace["id"]
	d2 := createDomain(t, g, tn.bearer(), ws2)

	admin := addMember(t, g, tn.bearer(), tn.workspace, "ROLE_ADMIN")
	editor := addMember(t, g, tn.bearer(), tn.workspace, "ROLE_EDITOR")
	viewer := addMember(t, g, tn.bearer(), tn.workspace, "ROLE_VIEWER")

	data := func(ws, dom string) string { return "/v1/workspaces/" + ws + "/domains/" + dom }
	write := func(cred, ws, dom string) response {
		return g.call(t, http.MethodPost, data(ws, dom)+"/recipients", cred, map[string]any{"email": uniqueEmail("r")}, nil)
	}
	read := func(cred, ws, dom string) response {
		return g.call(t, http.MethodGet, data(ws, dom)+"/recipients/"+knownRecipientID, cred, nil, nil)
	}
	members := "/v1/workspaces/" + tn.workspace + "/members"

	// Viewer: reads, never writes.
	require.Equal(t, http.StatusOK, read(viewer.tokens.AccessToken, tn.workspace, tn.domain).status)
	requireCode(t, write(viewer.tokens.AccessToken, tn.workspace, tn.domain), http.StatusForbidden, "permission_denied")
	// Editor: writes data, manages no members.
	require.Equal(t, http.StatusOK, write(editor.tokens.AccessToken, tn.workspace, tn.domain).status)
	requireCode(t, g.call(t, http.MethodPost, members, editor.tokens.AccessToken, map[string]any{"email": uniqueEmail("m"), "role": "ROLE_VIEWER"}, nil),
		http.StatusForbidden, "permission_denied")
	requireCode(t, g.call(t, http.MethodPost, "/v1/workspaces/"+tn.workspace+"/domains", editor.tokens.AccessToken, map[string]any{"name": "x.example.com"}, nil),
		http.StatusForbidden, "permission_denied")
	// Admin of the first workspace: manages it, finds nothing of the second.
	r = g.call(t, http.MethodGet, members, admin.tokens.AccessToken, nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	requireCode(t, read(admin.tokens.AccessToken, ws2, d2), http.StatusNotFound, "not_found")
	requireCode(t, g.call(t, http.MethodGet, "/v1/workspaces/"+ws2, admin.tokens.AccessToken, nil, nil), http.StatusNotFound, "not_found")
	requireCode(t, g.call(t, http.MethodGet, "/v1/workspaces/"+ws2+"/members", admin.tokens.AccessToken, nil, nil), http.StatusNotFound, "not_found")
	requireCode(t, g.call(t, http.MethodPost, "/v1/workspaces", admin.tokens.AccessToken, map[string]any{"name": "Mine"}, nil),
		http.StatusForbidden, "permission_denied")
	var list struct {
		Workspaces []map[string]any `json:"workspaces"`
	}
	r = g.call(t, http.MethodGet, "/v1/workspaces", admin.tokens.AccessToken, nil, &list)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Len(t, list.Workspaces, 1, "a member sees their workspace only")
	// A domain of the second workspace on the first workspace's route: not found.
	requireCode(t, read(tn.bearer(), tn.workspace, d2), http.StatusNotFound, "not_found")
	// Ids that are not UUIDs name nothing.
	requireCode(t, read(tn.bearer(), "nope", tn.domain), http.StatusNotFound, "not_found")

	// Another company: every id of this one is not found, whatever the route.
	other := signUp(t, g)
	for _, cred := range []string{other.bearer()} {
		requireCode(t, read(cred, tn.workspace, tn.domain), http.StatusNotFound, "not_found")
		requireCode(t, write(cred, tn.workspace, tn.domain), http.StatusNotFound, "not_found")
		requireCode(t, read(cred, other.workspace, tn.domain), http.StatusNotFound, "not_found")
		requireCode(t, g.call(t, http.MethodGet, members, cred, nil, nil), http.StatusNotFound, "not_found")
		requireCode(t, g.call(t, http.MethodDelete, members+"/"+viewer.userID, cred, nil, nil), http.StatusNotFound, "not_found")
	}
	requireCode(t, g.call(t, http.MethodDelete, "/v1/workspaces/"+other.workspace+"/members/"+viewer.userID, other.bearer(), nil, nil),
		http.StatusNotFound, "not_found")
}

// TestMemberChanges: a role change or a removal holds from the member's next request.
func TestMemberChanges(t *testing.T) {
	t.Parallel()
	g := startGateway(t, startBackends(t, testSecret), nil)
	tn := signUp(t, g)
	m := addMember(t, g, tn.bearer(), tn.workspace, "ROLE_VIEWER")
	write := func() response {
		return g.call(t, http.MethodPost, "/v1/workspaces/"+tn.workspace+"/domains/"+tn.domain+"/recipients",
			m.tokens.AccessToken, map[string]any{"email": uniqueEmail("r")}, nil)
	}
	member := "/v1/workspaces/" + tn.workspace + "/members/" + m.userID

	requireCode(t, write(), http.StatusForbidden, "permission_denied")
	r := g.call(t, http.MethodPatch, member, tn.bearer(), map[string]any{"role": "ROLE_EDITOR"}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Contains(t, string(r.body), `"role":"ROLE_EDITOR"`)
	require.Equal(t, http.StatusOK, write().status, "the same access token, the new role")

	requireCode(t, g.call(t, http.MethodPatch, member, tn.bearer(), map[string]any{"role": "ROLE_OWNER"}, nil), http.StatusBadRequest, "invalid_argument")

	r = g.call(t, http.MethodDelete, member, tn.bearer(), nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	requireCode(t, write(), http.StatusNotFound, "not_found")
	requireCode(t, g.call(t, http.MethodPost, "/v1/auth/refresh", "", map[string]any{"refresh_token": m.tokens.RefreshToken}, nil),
		http.StatusUnauthorized, "unauthenticated")
}

// TestInvitations: invite, accept, log in.
func TestInvitations(t *testing.T) {
	t.Parallel()
	g := startGateway(t, startBackends(t, testSecret), nil)
	tn := signUp(t, g)
	m := addMember(t, g, tn.bearer(), tn.workspace, "ROLE_EDITOR")
	toks := logIn(t, g, m.email)
	var me struct {
		Memberships []map[string]any `json:"memberships"`
	}
	r := g.call(t, http.MethodGet, "/v1/me", toks.AccessToken, nil, &me)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, []map[string]any{{"workspace_id": tn.workspace, "role": "ROLE_EDITOR"}}, me.Memberships)

	var list struct {
		Members []struct {
			User    map[string]any `json:"user"`
			Role    string         `json:"role"`
			Pending bool           `json:"pending"`
		} `json:"members"`
	}
	r = g.call(t, http.MethodGet, "/v1/workspaces/"+tn.workspace+"/members", tn.bearer(), nil, &list)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Len(t, list.Members, 1)
	require.Equal(t, "ROLE_EDITOR", list.Members[0].Role)
	require.False(t, list.Members[0].Pending)

	r = g.call(t, http.MethodPost, "/v1/auth/invitations:accept", "", map[string]any{"invitation_token": "unknown", "password": testPassword}, nil)
	requireCode(t, r, http.StatusNotFound, "not_found")
	r = g.call(t, http.MethodPost, "/v1/workspaces/"+tn.workspace+"/members", tn.bearer(), map[string]any{"email": m.email, "role": "ROLE_VIEWER"}, nil)
	requireCode(t, r, http.StatusConflict, "already_exists")
}

// TestPlanLimits: one domain or seat beyond the plan answers plan_limit_exceeded with the limit.
func TestPlanLimits(t *testing.T) {
	t.Parallel()
	g := startGateway(t, startBackends(t, testSecret), nil)
	tn := signUp(t, g) // one domain made
	createDomain(t, g, tn.bearer(), tn.workspace)
	createDomain(t, g, tn.bearer(), tn.workspace)
	r := g.call(t, http.MethodPost, "/v1/workspaces/"+tn.workspace+"/domains", tn.bearer(), map[string]any{"name": "fourth-" + uuid.NewString()[:8] + ".example.com"}, nil)
	e := requireCode(t, r, http.StatusBadRequest, "plan_limit_exceeded")
	require.Equal(t, []any{map[string]any{"limit": "domains", "max": float64(3)}}, e.Details)

	for range 4 {
		addMember(t, g, tn.bearer(), tn.workspace, "ROLE_VIEWER")
	}
	r = g.call(t, http.MethodPost, "/v1/workspaces/"+tn.workspace+"/members", tn.bearer(), map[string]any{"email": uniqueEmail("sixth"), "role": "ROLE_VIEWER"}, nil)
	e = requireCode(t, r, http.StatusBadRequest, "plan_limit_exceeded")
	require.Equal(t, []any{map[string]any{"limit": "seats", "max": float64(5)}}, e.Details)

	var c struct {
		Company map[string]any `json:"company"`
	}
	r = g.call(t, http.MethodGet, "/v1/company", tn.bearer(), nil, &c)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.EqualValues(t, 5, c.Company["seats_used"])
	require.EqualValues(t, 3, c.Company["domains_used"])
}

// TestRateLimits: a company over its budget gets 429 with Retry-After; so does an account
// with too many login attempts.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	g := startGateway(t, startBackends(t, testSecret), map[string]string{"RATE_LIMIT_PER_SECOND": "0.01", "RATE_LIMIT_BURST": "4"})
	tn := signUp(t, g) // the domain creation took one request of the budget

	remaining := []string{}
	for range 3 {
		r := g.call(t, http.MethodGet, "/v1/me", tn.bearer(), nil, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		remaining = append(remaining, r.header.Get("X-RateLimit-Remaining"))
	}
	require.Equal(t, []string{"2", "1", "0"}, remaining)
	r := g.call(t, http.MethodGet, "/v1/me", tn.bearer(), nil, nil)
	requireCode(t, r, http.StatusTooManyRequests, "resource_exhausted")
	require.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))
	require.Equal(t, "100", r.header.Get("Retry-After"), "one request per 100 s, in whole seconds")

	other := signUp(t, g)
	require.Equal(t, http.StatusOK, g.call(t, http.MethodGet, "/v1/me", other.bearer(), nil, nil).status, "every company has its own budget")

	// Five attempts a minute per account; a sixth, even with the right password, waits.
	for range 5 {
		r := g.call(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": other.email, "password": "wrong password!!"}, nil)
		requireCode(t, r, http.StatusUnauthorized, "unauthenticated")
	}
	r = g.call(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": other.email, "password": testPassword}, nil)
	requireCode(t, r, http.StatusTooManyRequests, "resource_exhausted")
	require.NotEmpty(t, r.header.Get("Retry-After"))
}

// TestOperatorCommand: operators are made by the command, and /v1/me reports them.
func TestOperatorCommand(t *testing.T) {
	t.Parallel()
	db := gatewayURL(t)
	g := startGateway(t, startBackends(t, testSecret), map[string]string{"DATABASE_URL": db})
	tn := signUp(t, g)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Operator(t.Context(), zap.NewNop(), config.FromMap(map[string]string{"DATABASE_URL": db, "LOG_LEVEL": "error"}, nil), args, &out)
		return out.String(), err
	}
	isOperator := func() bool {
		var me struct {
			PlatformOperator bool `json:"platform_operator"`
		}
		r := g.call(t, http.MethodGet, "/v1/me", tn.bearer(), nil, &me)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		return me.PlatformOperator
	}

	require.False(t, isOperator())
	out, err := run("grant", strings.ToUpper(tn.email))
	require.NoError(t, err)
	require.Contains(t, out, tn.email)
	require.True(t, isOperator())

	out, err = run("list")
	require.NoError(t, err)
	require.Contains(t, out, tn.email)
	require.Contains(t, out, "cli:")

	_, err = run("revoke", tn.email)
	require.NoError(t, err)
	require.False(t, isOperator())

	_, err = run("revoke", tn.email)
	require.ErrorContains(t, err, "no platform operator")
	_, err = run("grant", uniqueEmail("nobody"))
	require.ErrorContains(t, err, "no user")
	var uerr *UsageError
	for _, args := range [][]string{nil, {"promote", "x"}, {"grant"}, {"list", "x"}, {"grant", "not an email"}} {
		_, err := run(args...)
		require.ErrorAs(t, err, &uerr, "%v", args)
	}

	// There is no way to become an operator through the API: sign-up ignores such fields.
	r := g.call(t, http.MethodPost, "/v1/auth/signup", "", map[string]any{
		"company_name": "Sneaky", "email": uniqueEmail("sneaky"), "password": testPassword, "platform_operator": true,
	}, nil)
	requireCode(t, r, http.StatusBadRequest, "invalid_argument")
	require.NotContains(t, strings.ToLower(string(r.body)), "sql")
	var body map[string]any
	require.NoError(t, json.Unmarshal(r.body, &body))
}
