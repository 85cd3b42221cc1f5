package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Me is what GetMe reports about the caller.
type Me struct {
	User             User
	Company          Company
	Memberships      []Membership
	PlatformOperator bool
}

// Me returns the signed-in user, their company, memberships and operator status.
func (s *Service) Me(ctx context.Context, a Access) (Me, error) {
	if a.Caller.IsAPIKey() {
		return Me{}, ErrSessionRequired
	}
	u, err := s.store.User(ctx, a.Caller.CompanyID, a.Caller.UserID)
	switch {
	case errors.Is(err, ErrNotFound):
		// The account was deleted while its access token lived on.
		return Me{}, ErrUnauthenticated
	case err != nil:
		return Me{}, fmt.Errorf("get me: %w", err)
	}
	c, err := s.store.Company(ctx, a.Caller.CompanyID)
	if err != nil {
		return Me{}, fmt.Errorf("get me: %w", err)
	}
	ms, err := s.store.Memberships(ctx, a.Caller.CompanyID, a.Caller.UserID)
	if err != nil {
		return Me{}, fmt.Errorf("get me: %w", err)
	}
	op, err := s.store.IsOperator(ctx, u.ID)
	if err != nil {
		return Me{}, fmt.Errorf("get me: %w", err)
	}
	return Me{User: u, Company: c, Memberships: ms, PlatformOperator: op}, nil
}

// Company returns the caller's company with its usage.
func (s *Service) Company(ctx context.Context, a Access) (Company, error) {
	c, err := s.store.Company(ctx, a.Caller.CompanyID)
	if err != nil {
		return Company{}, fmt.Errorf("get company: %w", err)
	}
	return c, nil
}

// UpdateCompany renames the caller's company.
func (s *Service) UpdateCompany(ctx context.Context, a Access, name string) (Company, error) {
	n, err := checkName("name", name, true)
	if err != nil {
		return Company{}, err
	}
	c, err := s.store.RenameCompany(ctx, a.Caller.CompanyID, n)
	if err != nil {
		return Company{}, fmt.Errorf("update company: %w", err)
	}
	return c, nil
}

// CreateWorkspace adds a workspace to the caller's company.
func (s *Service) CreateWorkspace(ctx context.Context, a Access, name string) (Workspace, error) {
	n, err := checkName("name", name, true)
	if err != nil {
		return Workspace{}, err
	}
	w, err := s.store.CreateWorkspace(ctx, a.Caller.CompanyID, n)
	if err != nil {
		return Workspace{}, fmt.Errorf("create workspace: %w", err)
	}
	return w, nil
}

// ListWorkspaces lists the workspaces the caller holds a role in: all of the company's for an
// owner, the member's own, an API key's one.
func (s *Service) ListWorkspaces(ctx context.Context, a Access) ([]Workspace, error) {
	var ids []uuid.UUID
	if a.Caller.IsAPIKey() {
		ids = []uuid.UUID{a.Caller.WorkspaceID}
	} else {
		ms, err := s.store.Memberships(ctx, a.Caller.CompanyID, a.Caller.UserID)
		if err != nil {
			return nil, fmt.Errorf("list workspaces: %w", err)
		}
		ids = []uuid.UUID{}
		for _, m := range ms {
			if m.Role == RoleOwner {
				ids = nil
				break
			}
			ids = append(ids, m.WorkspaceID)
		}
		if ids != nil && len(ids) == 0 {
			return []Workspace{}, nil
		}
	}
	ws, err := s.store.Workspaces(ctx, a.Caller.CompanyID, ids)
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	return ws, nil
}

// Workspace returns the workspace of the route.
func (s *Service) Workspace(ctx context.Context, a Access) (Workspace, error) {
	w, err := s.store.Workspace(ctx, a.Caller.CompanyID, a.WorkspaceID)
	if err != nil {
		return Workspace{}, fmt.Errorf("get workspace: %w", err)
	}
	return w, nil
}

// UpdateWorkspace renames the workspace of the route.
func (s *Service) UpdateWorkspace(ctx context.Context, a Access, name string) (Workspace, error) {
	n, err := checkName("name", name, true)
	if err != nil {
		return Workspace{}, err
	}
	w, err := s.store.RenameWorkspace(ctx, a.Caller.CompanyID, a.WorkspaceID, n)
	if err != nil {
		return Workspace{}, fmt.Errorf("update workspace: %w", err)
	}
	return w, nil
}

// CreateDomain adds a sending domain to the workspace of the route, within the plan's domain
// limit (a *PlanLimitError beyond it).
func (s *Service) CreateDomain(ctx context.Context, a Access, name string) (Domain, error) {
	n, err := normalizeDomain("name", name)
	if err != nil {
		return Domain{}, err
	}
	d, err := s.store.CreateDomain(ctx, a.Caller.CompanyID, a.WorkspaceID, n, func(c Company) error {
		if c.DomainsUsed >= c.MaxDomains {
			return &PlanLimitError{Limit: LimitDomains, Max: c.MaxDomains}
		}
		return nil
	})
	if err != nil {
		return Domain{}, fmt.Errorf("create domain: %w", err)
	}
	return d, nil
}

// ListDomains lists the domains of the workspace of the route.
func (s *Service) ListDomains(ctx context.Context, a Access) ([]Domain, error) {
	ds, err := s.store.Domains(ctx, a.Caller.CompanyID, a.WorkspaceID)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	return ds, nil
}

// Domain returns the domain of the route.
func (s *Service) Domain(ctx context.Context, a Access) (Domain, error) {
	d, err := s.store.Domain(ctx, a.Caller.CompanyID, a.WorkspaceID, a.DomainID)
	if err != nil {
		return Domain{}, fmt.Errorf("get domain: %w", err)
	}
	return d, nil
}

// DeleteDomain removes the domain of the route.
func (s *Service) DeleteDomain(ctx context.Context, a Access) error {
	if err := s.store.DeleteDomain(ctx, a.Caller.CompanyID, a.WorkspaceID, a.DomainID); err != nil {
		return fmt.Errorf("delete domain: %w", err)
	}
	return nil
}

// InviteMember gives the user with email a role in the workspace of the route. An address
// without an account gets one, pending until the invitation is accepted, within the plan's
// seat limit; token is then the invitation token to deliver, shown only this once.
func (s *Service) InviteMember(ctx context.Context, a Access, email string, role Role) (m Member, token string, err error) {
	e, err := normalizeEmail("email", email)
	if err != nil {
		return Member{}, "", err
	}
	if !role.Assignable() {
		return Member{}, "", invalid("role", "must be ROLE_ADMIN, ROLE_EDITOR or ROLE_VIEWER")
	}
	token = randomToken()
	m, invited, err := s.store.Invite(ctx, NewInvitation{
		CompanyID: a.Caller.CompanyID, WorkspaceID: a.WorkspaceID, Email: e, Role: role,
		TokenHash: HashToken(token), CreatedBy: a.Caller.UserID, ExpiresAt: s.now().Add(InvitationTTL),
	}, func(c Company) error {
		if c.SeatsUsed >= c.MaxSeats {
			return &PlanLimitError{Limit: LimitSeats, Max: c.MaxSeats}
		}
		return nil
	})
	if err != nil {
		return Member{}, "", fmt.Errorf("invite member: %w", err)
	}
	if !invited {
		token = ""
	}
	return m, token, nil
}

// ListMembers lists the members of the workspace of the route.
func (s *Service) ListMembers(ctx context.Context, a Access) ([]Member, error) {
	ms, err := s.store.Members(ctx, a.Caller.CompanyID, a.WorkspaceID)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return ms, nil
}

// UpdateMember changes a member's role in the workspace of the route. It takes effect on the
// member's next request.
func (s *Service) UpdateMember(ctx context.Context, a Access, user uuid.UUID, role Role) (Member, error) {
	if !role.Assignable() {
		return Member{}, invalid("role", "must be ROLE_ADMIN, ROLE_EDITOR or ROLE_VIEWER")
	}
	m, err := s.store.UpdateMember(ctx, a.Caller.CompanyID, a.WorkspaceID, user, role)
	if err != nil {
		return Member{}, fmt.Errorf("update member: %w", err)
	}
	return m, nil
}

// RemoveMember removes a member from the workspace of the route. It takes effect on the
// member's next request.
func (s *Service) RemoveMember(ctx context.Context, a Access, user uuid.UUID) error {
	if err := s.store.RemoveMember(ctx, a.Caller.CompanyID, a.WorkspaceID, user); err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	return nil
}

// CreateAPIKey issues a key for the workspace of the route. The returned secret is the whole
// key, shown only this once; only its hash is stored.
func (s *Service) CreateAPIKey(ctx context.Context, a Access, name string, role Role) (APIKey, string, error) {
	n, err := checkName("name", name, true)
	if err != nil {
		return APIKey{}, "", err
	}
	if !role.Assignable() {
		return APIKey{}, "", invalid("role", "must be ROLE_ADMIN, ROLE_EDITOR or ROLE_VIEWER")
	}
	// Prefixes are 32 random bits: a collision is rare but possible, and another draw fixes it.
	for range 3 {
		key, prefix := newAPIKey()
		k, err := s.store.CreateAPIKey(ctx, APIKey{
			ID: uuid.New(), CompanyID: a.Caller.CompanyID, WorkspaceID: a.WorkspaceID, Name: n,
			Prefix: prefix, SecretHash: HashToken(key), Role: role, CreatedBy: a.Caller.UserID,
		})
		if errors.Is(err, ErrPrefixTaken) {
			continue
		}
		if err != nil {
			return APIKey{}, "", fmt.Errorf("create api key: %w", err)
		}
		return k, key, nil
	}
	return APIKey{}, "", fmt.Errorf("create api key: %w", ErrPrefixTaken)
}

// ListAPIKeys lists the keys of the workspace of the route, newest first.
func (s *Service) ListAPIKeys(ctx context.Context, a Access) ([]APIKey, error) {
	ks, err := s.store.APIKeys(ctx, a.Caller.CompanyID, a.WorkspaceID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return ks, nil
}

// RevokeAPIKey revokes a key of the workspace of the route at once.
func (s *Service) RevokeAPIKey(ctx context.Context, a Access, id uuid.UUID) error {
	if err := s.store.RevokeAPIKey(ctx, a.Caller.CompanyID, a.WorkspaceID, id, s.now()); err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return nil
}
