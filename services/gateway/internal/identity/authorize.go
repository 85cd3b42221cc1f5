package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
)

// CallerFromPrincipal accepts a verified access token as a caller: a user's own token only.
// Service tokens and downscoped tokens (narrowed to a workspace or domain) are meant for the
// services behind the gateway and are refused at the edge.
func CallerFromPrincipal(p tenancy.Principal) (Caller, error) {
	if p.Kind != tenancy.KindUser || p.WorkspaceID != uuid.Nil || p.DomainID != uuid.Nil || p.Role != "" {
		return Caller{}, ErrUnauthenticated
	}
	user, err := uuid.Parse(p.Subject)
	if err != nil || user == uuid.Nil || p.CompanyID == uuid.Nil {
		return Caller{}, ErrUnauthenticated
	}
	return Caller{CompanyID: p.CompanyID, UserID: user}, nil
}

// AuthenticateAPIKey checks an API key ("hk_...") and returns the caller it stands for. A
// revoked or unknown key is ErrUnauthenticated. The key's last use is recorded at most once a
// minute.
func (s *Service) AuthenticateAPIKey(ctx context.Context, key string) (Caller, error) {
	prefix, ok := parseAPIKey(key)
	if !ok {
		return Caller{}, ErrUnauthenticated
	}
	k, err := s.store.APIKeyByPrefix(ctx, prefix)
	switch {
	case errors.Is(err, ErrNotFound):
		return Caller{}, ErrUnauthenticated
	case err != nil:
		return Caller{}, fmt.Errorf("authenticate api key: %w", err)
	}
	if !equalHashes(k.SecretHash, HashToken(key)) || !k.RevokedAt.IsZero() || !k.Role.Assignable() {
		return Caller{}, ErrUnauthenticated
	}
	now := s.now()
	if k.LastUsedAt.IsZero() || now.Sub(k.LastUsedAt) >= apiKeyTouchInterval {
		if err := s.store.TouchAPIKey(ctx, k.CompanyID, k.ID, now); err != nil {
			return Caller{}, fmt.Errorf("authenticate api key: %w", err)
		}
	}
	return Caller{CompanyID: k.CompanyID, APIKeyID: k.ID, WorkspaceID: k.WorkspaceID, Role: k.Role}, nil
}

// Authorize decides whether c may use permission perm on the route's workspace and domain
// (nil on company-wide routes) and returns the access it is granted.
//
// On a workspace route the workspace (and domain) must belong to the caller's company and the
// caller must hold a role there: an owner holds one in every workspace, a member in theirs, an
// API key in its own. Otherwise the answer is ErrNotFound, as if the ids did not exist. A
// caller who holds a role there whose permissions lack perm gets ErrPermissionDenied.
//
// On a company route the caller needs one role that grants perm (an owner's grants all).
func (s *Service) Authorize(ctx context.Context, c Caller, perm Permission, workspace, domain uuid.UUID) (Access, error) {
	switch perm {
	case PermPublic:
		return Access{Caller: c}, nil
	case PermSession:
		if c.IsAPIKey() {
			return Access{}, ErrSessionRequired
		}
		return Access{Caller: c}, nil
	case PermInternal:
		return Access{}, ErrPermissionDenied
	}
	if workspace == uuid.Nil {
		if domain != uuid.Nil {
			return Access{}, errors.New("authorize: a domain without a workspace")
		}
		return s.authorizeCompany(ctx, c, perm)
	}
	user := c.UserID
	if c.IsAPIKey() {
		if workspace != c.WorkspaceID {
			return Access{}, notFound("workspace")
		}
		user = uuid.Nil
	}
	wa, err := s.store.WorkspaceAccess(ctx, c.CompanyID, user, workspace, domain)
	if err != nil {
		return Access{}, fmt.Errorf("authorize: %w", err)
	}
	role := wa.Role
	if c.IsAPIKey() {
		role = c.Role
	}
	if !wa.WorkspaceExists || role == "" {
		return Access{}, notFound("workspace")
	}
	if domain != uuid.Nil && !wa.DomainExists {
		return Access{}, notFound("domain")
	}
	if !role.Grants(perm) {
		return Access{}, ErrPermissionDenied
	}
	return Access{Caller: c, WorkspaceID: workspace, DomainID: domain, Role: role}, nil
}

// authorizeCompany authorizes a company-wide route: the caller's most powerful role that
// grants perm.
func (s *Service) authorizeCompany(ctx context.Context, c Caller, perm Permission) (Access, error) {
	if c.IsAPIKey() {
		if !c.Role.Grants(perm) {
			return Access{}, ErrPermissionDenied
		}
		return Access{Caller: c, Role: c.Role}, nil
	}
	ms, err := s.store.Memberships(ctx, c.CompanyID, c.UserID)
	if err != nil {
		return Access{}, fmt.Errorf("authorize: %w", err)
	}
	var best Role
	for _, m := range ms {
		if m.Role.Grants(perm) && (best == "" || m.Role.rank() < best.rank()) {
			best = m.Role
		}
	}
	if best == "" {
		return Access{}, ErrPermissionDenied
	}
	return Access{Caller: c, Role: best}, nil
}
