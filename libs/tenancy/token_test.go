package tenancy_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/stretchr/testify/require"
)

const (
	current  = "current-secret-0123456789abcdef0123456789"
	previous = "previous-secret-0123456789abcdef012345678"
)

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	company := uuid.New()
	tok, err := tenancy.NewSigner(current).Sign("user-1", company, tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	p, err := tenancy.NewVerifier(current).Verify(tok)
	require.NoError(t, err)
	require.Equal(t, "user-1", p.Subject)
	require.Equal(t, company, p.CompanyID)
	require.Equal(t, tenancy.KindUser, p.Kind)
	require.Equal(t, tok, p.Token)
}

func TestRotationGrace(t *testing.T) {
	t.Parallel()
	old, err := tenancy.NewSigner(previous).Sign("user-1", uuid.New(), tenancy.KindUser, time.Minute)
	require.NoError(t, err)
	_, err = tenancy.NewVerifier(current, previous).Verify(old)
	require.NoError(t, err, "the previous secret is accepted during the grace period")
	_, err = tenancy.NewVerifier(current).Verify(old)
	require.ErrorIs(t, err, tenancy.ErrUnauthenticated, "and rejected once it is removed")
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func TestRejectedTokens(t *testing.T) {
	t.Parallel()
	now := time.Now()
	good := func() tenancy.Claims {
		return tenancy.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: tenancy.Issuer, Subject: "u", Audience: jwt.ClaimStrings{tenancy.Audience},
				IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
			},
			CompanyID: uuid.NewString(), Kind: tenancy.KindUser,
		}
	}
	kid := tenancy.KeyID(current)
	with := func(f func(*tenancy.Claims)) tenancy.Claims { c := good(); f(&c); return c }
	none := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + kid + `"}`))
		s := sign(t, jwt.SigningMethodHS256, []byte(current), kid, good())
		return h + "." + strings.Split(s, ".")[1] + "."
	}()
	cases := map[string]string{
		"alg none":         none,
		"unknown kid":      sign(t, jwt.SigningMethodHS256, []byte(current), "unknown", good()),
		"no kid":           sign(t, jwt.SigningMethodHS256, []byte(current), "", good()),
		"wrong secret":     sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef0123"), kid, good()),
		"expired":          sign(t, jwt.SigningMethodHS256, []byte(current), kid, with(func(c *tenancy.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })),
		"no expiry":        sign(t, jwt.SigningMethodHS256, []byte(current), kid, with(func(c *tenancy.Claims) { c.ExpiresAt = nil })),
		"wrong issuer":     sign(t, jwt.SigningMethodHS256, []byte(current), kid, with(func(c *tenancy.Claims) { c.Issuer = "evil" })),
		"wrong audience":   sign(t, jwt.SigningMethodHS256, []byte(current), kid, with(func(c *tenancy.Claims) { c.Audience = jwt.ClaimStrings{"other"} })),
		"no company":       sign(t, jwt.SigningMethodHS256, []byte(current), kid, with(func(c *tenancy.Claims) { c.CompanyID = "" })),
		"unknown kind":     sign(t, jwt.SigningMethodHS256, []byte(current), kid, with(func(c *tenancy.Claims) { c.Kind = "root" })),
		"HS512 not HS256":  sign(t, jwt.SigningMethodHS512, []byte(current), kid, good()),
		"garbage":          "not.a.token",
		"empty":            "",
		"tampered payload": tamper(sign(t, jwt.SigningMethodHS256, []byte(current), kid, good())),
	}
	v := tenancy.NewVerifier(current)
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(tok)
			require.ErrorIs(t, err, tenancy.ErrUnauthenticated)
		})
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"sub":"u"`, `"sub":"v"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func TestScope(t *testing.T) {
	t.Parallel()
	company, ws, dom := uuid.New(), uuid.New(), uuid.New()
	_, err := tenancy.Scope(context.Background(), ws.String(), dom.String())
	require.ErrorIs(t, err, tenancy.ErrUnauthenticated)

	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{Subject: "u", CompanyID: company, Kind: tenancy.KindUser})
	tn, err := tenancy.Scope(ctx, ws.String(), dom.String())
	require.NoError(t, err)
	require.Equal(t, tenancy.Tenant{CompanyID: company, WorkspaceID: ws, DomainID: dom}, tn)

	_, err = tenancy.Scope(ctx, "nope", dom.String())
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
	_, err = tenancy.Scope(ctx, ws.String(), "")
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
}

func TestScopedTokens(t *testing.T) {
	t.Parallel()
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	tok, err := tenancy.NewSigner(current).ServiceTokenFor("worker", tn)
	require.NoError(t, err)
	p, err := tenancy.NewVerifier(current).Verify(tok)
	require.NoError(t, err)
	require.Equal(t, tn.WorkspaceID, p.WorkspaceID)
	require.Equal(t, tn.DomainID, p.DomainID)
	require.Equal(t, tenancy.KindService, p.Kind)

	ctx := tenancy.WithPrincipal(context.Background(), p)
	got, err := tenancy.Scope(ctx, tn.WorkspaceID.String(), tn.DomainID.String())
	require.NoError(t, err)
	require.Equal(t, tn, got)
	_, err = tenancy.Scope(ctx, tn.WorkspaceID.String(), uuid.NewString())
	require.ErrorIs(t, err, tenancy.ErrOutOfScope, "another domain is out of scope")
	_, err = tenancy.Scope(ctx, uuid.NewString(), tn.DomainID.String())
	require.ErrorIs(t, err, tenancy.ErrOutOfScope, "another workspace is out of scope")

	user, err := tenancy.NewSigner(current).SignScoped("u", tn.CompanyID, tenancy.KindUser,
		tenancy.Scoped{WorkspaceID: tn.WorkspaceID, DomainID: tn.DomainID, Role: "editor"}, time.Minute)
	require.NoError(t, err)
	p, err = tenancy.NewVerifier(current).Verify(user)
	require.NoError(t, err)
	require.Equal(t, "editor", p.Role)
}
