package tenancy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Token issuer and audience of every Herald token.
const (
	Issuer   = "herald"
	Audience = "herald"
)

// Kind tells users from internal services.
type Kind string

// Kinds of principal.
const (
	KindUser    Kind = "user"
	KindService Kind = "service"
)

// Claims are the signed claims of an access or service token.
type Claims struct {
	jwt.RegisteredClaims
	CompanyID string `json:"cid"`
	Kind      Kind   `json:"knd"`
	// WorkspaceID and DomainID narrow a token to one tenant partition: the gateway forwards
	// such a downscoped token after it authorized the route, and internal callers mint one per
	// job. Empty on a user's own access token.
	WorkspaceID string `json:"wid,omitempty"`
	DomainID    string `json:"did,omitempty"`
	// Role is the caller's role in the workspace, set on downscoped tokens.
	Role string `json:"rol,omitempty"`
}

// Scoped narrows a token to one workspace and domain with a role.
type Scoped struct {
	WorkspaceID uuid.UUID
	DomainID    uuid.UUID
	Role        string
}

// KeyID derives the key id of a secret: a hash prefix, so rotation needs no extra
// configuration and the id reveals nothing about the secret.
func KeyID(secret string) string {
	sum := sha256.Sum256([]byte("herald-jwt-kid:" + secret))
	return hex.EncodeToString(sum[:8])
}

// Signer issues tokens signed with HS256 under one secret.
type Signer struct {
	secret []byte
	kid    string
	now    func() time.Time
}

// NewSigner returns a signer for secret.
func NewSigner(secret string) *Signer {
	return &Signer{secret: []byte(secret), kid: KeyID(secret), now: time.Now}
}

// Sign issues a token for subject in company, of kind, valid for ttl.
func (s *Signer) Sign(subject string, company uuid.UUID, kind Kind, ttl time.Duration) (string, error) {
	return s.SignScoped(subject, company, kind, Scoped{}, ttl)
}

// SignScoped issues a token narrowed to scope (zero ids leave it unscoped).
func (s *Signer) SignScoped(subject string, company uuid.UUID, kind Kind, scope Scoped, ttl time.Duration) (string, error) {
	now := s.now()
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        uuid.NewString(),
		},
		CompanyID: company.String(),
		Kind:      kind,
		Role:      scope.Role,
	}
	if scope.WorkspaceID != uuid.Nil {
		claims.WorkspaceID = scope.WorkspaceID.String()
	}
	if scope.DomainID != uuid.Nil {
		claims.DomainID = scope.DomainID.String()
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return out, nil
}

// ServiceTokenTTL is the lifetime of tokens minted for internal callers.
const ServiceTokenTTL = 2 * time.Minute

// ServiceToken issues a short-lived token for an internal caller acting for company.
func (s *Signer) ServiceToken(service string, company uuid.UUID) (string, error) {
	return s.Sign("service:"+service, company, KindService, ServiceTokenTTL)
}

// ServiceTokenFor issues a short-lived token for an internal caller acting in one tenant
// partition, e.g. the worker running a job for a domain.
func (s *Signer) ServiceTokenFor(service string, t Tenant) (string, error) {
	return s.SignScoped("service:"+service, t.CompanyID, KindService,
		Scoped{WorkspaceID: t.WorkspaceID, DomainID: t.DomainID}, ServiceTokenTTL)
}

// Verifier checks tokens against the current secret and, during a rotation, the previous one.
type Verifier struct {
	keys map[string][]byte
	now  func() time.Time
}

// NewVerifier accepts tokens signed with any of secrets (empty ones are ignored).
func NewVerifier(secrets ...string) *Verifier {
	v := &Verifier{keys: map[string][]byte{}, now: time.Now}
	for _, s := range secrets {
		if s != "" {
			v.keys[KeyID(s)] = []byte(s)
		}
	}
	return v
}

// Verify parses and checks a token: HS256 only, a known key id, not expired, issuer and
// audience Herald, a company id. Every failure is ErrUnauthenticated.
func (v *Verifier) Verify(token string) (Principal, error) {
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, ok := v.keys[kid]
		if !ok {
			return nil, errors.New("unknown key id")
		}
		return key, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.now),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		return Principal{}, fmt.Errorf("verify token: %w", ErrUnauthenticated)
	}
	company, err := uuid.Parse(claims.CompanyID)
	if err != nil || claims.Subject == "" || (claims.Kind != KindUser && claims.Kind != KindService) {
		return Principal{}, fmt.Errorf("verify token claims: %w", ErrUnauthenticated)
	}
	p := Principal{Subject: claims.Subject, CompanyID: company, Kind: claims.Kind, Role: claims.Role, Token: token}
	if claims.WorkspaceID != "" {
		if p.WorkspaceID, err = uuid.Parse(claims.WorkspaceID); err != nil {
			return Principal{}, fmt.Errorf("verify token scope: %w", ErrUnauthenticated)
		}
	}
	if claims.DomainID != "" {
		if p.DomainID, err = uuid.Parse(claims.DomainID); err != nil {
			return Principal{}, fmt.Errorf("verify token scope: %w", ErrUnauthenticated)
		}
	}
	return p, nil
}
