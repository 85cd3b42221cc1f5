package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
)

// Lifetimes the service applies unless Options say otherwise.
const (
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 7 * 24 * time.Hour
	// InvitationTTL is how long an invitation token may be accepted.
	InvitationTTL = 7 * 24 * time.Hour
	// apiKeyTouchInterval is how often, at most, a key's last use is written.
	apiKeyTouchInterval = time.Minute
)

// Options configure a Service.
type Options struct {
	// Signer signs access tokens.
	Signer *tenancy.Signer
	// AccessTTL and RefreshTTL are the lifetimes of access and refresh tokens.
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// Throttle limits logins; nil means no limit.
	Throttle LoginThrottle
	// Argon2 are the password hashing costs; zero means DefaultArgon2Params.
	Argon2 Argon2Params
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service applies the identity rules on a Store.
type Service struct {
	store      Store
	signer     *tenancy.Signer
	accessTTL  time.Duration
	refreshTTL time.Duration
	throttle   LoginThrottle
	argon2     Argon2Params
	now        func() time.Time
	// dummyHash is verified against when an account does not exist, so a login takes as long
	// whether or not the email has an account.
	dummyHash string
}

// NewService returns a Service on store.
func NewService(store Store, o Options) (*Service, error) {
	if o.Signer == nil {
		return nil, errors.New("identity service: a signer is required")
	}
	s := &Service{
		store: store, signer: o.Signer, accessTTL: o.AccessTTL, refreshTTL: o.RefreshTTL,
		throttle: o.Throttle, argon2: o.Argon2, now: o.Now,
	}
	if s.accessTTL <= 0 {
		s.accessTTL = DefaultAccessTTL
	}
	if s.refreshTTL <= 0 {
		s.refreshTTL = DefaultRefreshTTL
	}
	if s.argon2 == (Argon2Params{}) {
		s.argon2 = DefaultArgon2Params()
	}
	if s.now == nil {
		s.now = time.Now
	}
	dummy, err := HashPassword(randomToken(), s.argon2)
	if err != nil {
		return nil, fmt.Errorf("identity service: %w", err)
	}
	s.dummyHash = dummy
	return s, nil
}

// SignUpInput is what sign-up asks for.
type SignUpInput struct {
	CompanyName   string
	WorkspaceName string
	Email         string
	Password      string
	Name          string
}

// SignUpResult is the new account and the owner's tokens.
type SignUpResult struct {
	Tokens    Tokens
	User      User
	Company   Company
	Workspace Workspace
}

// SignUp creates a company, its owner and a first workspace, and logs the owner in.
func (s *Service) SignUp(ctx context.Context, in SignUpInput) (SignUpResult, error) {
	company, err := checkName("company_name", in.CompanyName, true)
	if err != nil {
		return SignUpResult{}, err
	}
	workspace, err := checkName("workspace_name", in.WorkspaceName, false)
	if err != nil {
		return SignUpResult{}, err
	}
	if workspace == "" {
		workspace = DefaultWorkspaceName
	}
	email, err := normalizeEmail("email", in.Email)
	if err != nil {
		return SignUpResult{}, err
	}
	if err := checkPassword("password", in.Password); err != nil {
		return SignUpResult{}, err
	}
	name, err := checkName("name", in.Name, false)
	if err != nil {
		return SignUpResult{}, err
	}
	hash, err := HashPassword(in.Password, s.argon2)
	if err != nil {
		return SignUpResult{}, fmt.Errorf("sign up: %w", err)
	}
	u, c, w, err := s.store.CreateAccount(ctx, NewAccount{
		CompanyName: company, WorkspaceName: workspace, Email: email, Name: name, PasswordHash: hash,
	})
	if err != nil {
		return SignUpResult{}, fmt.Errorf("sign up: %w", err)
	}
	toks, err := s.issue(ctx, u, uuid.New())
	if err != nil {
		return SignUpResult{}, fmt.Errorf("sign up: %w", err)
	}
	c.SeatsUsed = 1
	return SignUpResult{Tokens: toks, User: u, Company: c, Workspace: w}, nil
}

// LogIn exchanges an email and password for tokens. Attempts are throttled per account and
// per clientIP whether they succeed or not; an unknown account costs as much time as a known
// one.
func (s *Service) LogIn(ctx context.Context, email, password, clientIP string) (Tokens, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if s.throttle != nil {
		wait, err := s.throttle.AllowLogin(ctx, e, clientIP)
		if err != nil {
			return Tokens{}, fmt.Errorf("log in: %w", err)
		}
		if wait > 0 {
			return Tokens{}, &RateLimitedError{RetryAfter: wait}
		}
	}
	u, err := s.store.UserByEmail(ctx, e)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && u.Pending()):
		_, _ = VerifyPassword(password, s.dummyHash)
		return Tokens{}, ErrInvalidCredentials
	case err != nil:
		return Tokens{}, fmt.Errorf("log in: %w", err)
	}
	ok, err := VerifyPassword(password, u.PasswordHash)
	if err != nil {
		return Tokens{}, fmt.Errorf("log in: %w", err)
	}
	if !ok {
		return Tokens{}, ErrInvalidCredentials
	}
	toks, err := s.issue(ctx, u, uuid.New())
	if err != nil {
		return Tokens{}, fmt.Errorf("log in: %w", err)
	}
	return toks, nil
}

// Refresh exchanges a refresh token for a new pair. The token is used up: presenting it again
// revokes its whole family (ErrTokenReused).
func (s *Service) Refresh(ctx context.Context, token string) (Tokens, error) {
	if token == "" {
		return Tokens{}, ErrUnauthenticated
	}
	now := s.now()
	plain := randomToken()
	next, err := s.store.RotateRefreshToken(ctx, HashToken(token), now, func(cur RefreshToken) (RefreshToken, error) {
		if !now.Before(cur.ExpiresAt) {
			return RefreshToken{}, ErrUnauthenticated
		}
		return RefreshToken{
			ID: uuid.New(), CompanyID: cur.CompanyID, UserID: cur.UserID, FamilyID: cur.FamilyID,
			TokenHash: HashToken(plain), CreatedAt: now, ExpiresAt: now.Add(s.refreshTTL),
		}, nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return Tokens{}, ErrUnauthenticated
	case err != nil:
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	access, exp, err := s.accessToken(next.UserID, next.CompanyID)
	if err != nil {
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	return Tokens{AccessToken: access, AccessExpires: exp, RefreshToken: plain, RefreshExpires: next.ExpiresAt}, nil
}

// LogOut revokes the family of a refresh token. An unknown token is not an error: the
// answer does not tell whether it existed.
func (s *Service) LogOut(ctx context.Context, token string) error {
	if token == "" {
		return invalid("refresh_token", "is required")
	}
	if err := s.store.RevokeRefreshFamily(ctx, HashToken(token), s.now()); err != nil {
		return fmt.Errorf("log out: %w", err)
	}
	return nil
}

// AcceptInvitation sets an invited user's password (and name) and logs them in.
func (s *Service) AcceptInvitation(ctx context.Context, token, password, name string) (Tokens, error) {
	if token == "" {
		return Tokens{}, invalid("invitation_token", "is required")
	}
	if err := checkPassword("password", password); err != nil {
		return Tokens{}, err
	}
	n, err := checkName("name", name, false)
	if err != nil {
		return Tokens{}, err
	}
	inv, err := s.store.InvitationByTokenHash(ctx, HashToken(token))
	switch {
	case errors.Is(err, ErrNotFound):
		return Tokens{}, ErrInvitationInvalid
	case err != nil:
		return Tokens{}, fmt.Errorf("accept invitation: %w", err)
	}
	now := s.now()
	if !inv.AcceptedAt.IsZero() || !now.Before(inv.ExpiresAt) {
		return Tokens{}, ErrInvitationInvalid
	}
	hash, err := HashPassword(password, s.argon2)
	if err != nil {
		return Tokens{}, fmt.Errorf("accept invitation: %w", err)
	}
	u, err := s.store.AcceptInvitation(ctx, inv, hash, n, now)
	if err != nil {
		return Tokens{}, fmt.Errorf("accept invitation: %w", err)
	}
	toks, err := s.issue(ctx, u, uuid.New())
	if err != nil {
		return Tokens{}, fmt.Errorf("accept invitation: %w", err)
	}
	return toks, nil
}

// accessToken signs an access token for a user of company.
func (s *Service) accessToken(user, company uuid.UUID) (string, time.Time, error) {
	exp := s.now().Add(s.accessTTL)
	tok, err := s.signer.Sign(user.String(), company, tenancy.KindUser, s.accessTTL)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

// issue signs an access token for u and stores a new refresh token of family.
func (s *Service) issue(ctx context.Context, u User, family uuid.UUID) (Tokens, error) {
	access, exp, err := s.accessToken(u.ID, u.CompanyID)
	if err != nil {
		return Tokens{}, err
	}
	now := s.now()
	plain := randomToken()
	rt := RefreshToken{
		ID: uuid.New(), CompanyID: u.CompanyID, UserID: u.ID, FamilyID: family,
		TokenHash: HashToken(plain), CreatedAt: now, ExpiresAt: now.Add(s.refreshTTL),
	}
	if err := s.store.CreateRefreshToken(ctx, rt); err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: access, AccessExpires: exp, RefreshToken: plain, RefreshExpires: rt.ExpiresAt}, nil
}
