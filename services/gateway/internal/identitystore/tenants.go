package identitystore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

// Company implements identity.Store.
func (s *Store) Company(ctx context.Context, company uuid.UUID) (identity.Company, error) {
	var c identity.Company
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		var err error
		c, err = scanCompany(tx.QueryRow(ctx, `SELECT `+companyColumns+` FROM identity.companies AS c WHERE c.id = $1`, company))
		return mapError(err, "company")
	})
	if err != nil {
		return identity.Company{}, fmt.Errorf("select company: %w", err)
	}
	return c, nil
}

// lockCompany reads the company with its usage and locks its row until the transaction ends,
// so two requests cannot both take the last seat or domain.
func lockCompany(ctx context.Context, tx pgx.Tx, company uuid.UUID) (identity.Company, error) {
	c, err := scanCompany(tx.QueryRow(ctx, `SELECT `+companyColumns+` FROM identity.companies AS c
		WHERE c.id = $1 FOR UPDATE OF c`, company))
	if err != nil {
		return identity.Company{}, fmt.Errorf("lock company: %w", mapError(err, "company"))
	}
	return c, nil
}

// RenameCompany implements identity.Store.
func (s *Store) RenameCompany(ctx context.Context, company uuid.UUID, name string) (identity.Company, error) {
	var c identity.Company
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE identity.companies SET name = $2 WHERE id = $1`, company, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return &identity.NotFoundError{Resource: "company"}
		}
		c, err = scanCompany(tx.QueryRow(ctx, `SELECT `+companyColumns+` FROM identity.companies AS c WHERE c.id = $1`, company))
		return err
	})
	if err != nil {
		return identity.Company{}, fmt.Errorf("rename company: %w", err)
	}
	return c, nil
}

// CreateWorkspace implements identity.Store.
func (s *Store) CreateWorkspace(ctx context.Context, company uuid.UUID, name string) (identity.Workspace, error) {
	var w identity.Workspace
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		var err error
		w, err = scanWorkspace(tx.QueryRow(ctx, `INSERT INTO identity.workspaces (company_id, name)
			VALUES ($1, $2) RETURNING `+workspaceColumns, company, name))
		return err
	})
	if err != nil {
		return identity.Workspace{}, fmt.Errorf("insert workspace: %w", err)
	}
	return w, nil
}

// Workspaces implements identity.Store.
func (s *Store) Workspaces(ctx context.Context, company uuid.UUID, ids []uuid.UUID) ([]identity.Workspace, error) {
	var ws []identity.Workspace
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+workspaceColumns+` FROM identity.workspaces
			WHERE company_id = $1 AND ($2::uuid[] IS NULL OR id = ANY ($2))
			ORDER BY created_at, id`, company, ids)
		if err != nil {
			return err
		}
		ws, err = collect(rows, scanWorkspace)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("select workspaces: %w", err)
	}
	return ws, nil
}

// Workspace implements identity.Store.
func (s *Store) Workspace(ctx context.Context, company, workspace uuid.UUID) (identity.Workspace, error) {
	var w identity.Workspace
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		var err error
		w, err = scanWorkspace(tx.QueryRow(ctx, `SELECT `+workspaceColumns+` FROM identity.workspaces
			WHERE id = $1 AND company_id = $2`, workspace, company))
		return mapError(err, "workspace")
	})
	if err != nil {
		return identity.Workspace{}, fmt.Errorf("select workspace: %w", err)
	}
	return w, nil
}

// RenameWorkspace implements identity.Store.
func (s *Store) RenameWorkspace(ctx context.Context, company, workspace uuid.UUID, name string) (identity.Workspace, error) {
	var w identity.Workspace
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		var err error
		w, err = scanWorkspace(tx.QueryRow(ctx, `UPDATE identity.workspaces SET name = $3
			WHERE id = $1 AND company_id = $2 RETURNING `+workspaceColumns, workspace, company, name))
		return mapError(err, "workspace")
	})
	if err != nil {
		return identity.Workspace{}, fmt.Errorf("rename workspace: %w", err)
	}
	return w, nil
}

// CreateDomain implements identity.Store.
func (s *Store) CreateDomain(ctx context.Context, company, workspace uuid.UUID, name string, admit identity.Admit) (identity.Domain, error) {
	var d identity.Domain
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		c, err := lockCompany(ctx, tx, company)
		if err != nil {
			return err
		}
		if err := admit(c); err != nil {
			return err
		}
		d, err = scanDomain(tx.QueryRow(ctx, `INSERT INTO identity.domains (company_id, workspace_id, name)
			SELECT company_id, id, $3 FROM identity.workspaces WHERE id = $2 AND company_id = $1
			RETURNING `+domainColumns, company, workspace, name))
		return mapError(err, "workspace")
	})
	if err != nil {
		return identity.Domain{}, fmt.Errorf("insert domain: %w", err)
	}
	return d, nil
}

// Domains implements identity.Store.
func (s *Store) Domains(ctx context.Context, company, workspace uuid.UUID) ([]identity.Domain, error) {
	var ds []identity.Domain
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+domainColumns+` FROM identity.domains
			WHERE company_id = $1 AND workspace_id = $2 ORDER BY created_at, id`, company, workspace)
		if err != nil {
			return err
		}
		ds, err = collect(rows, scanDomain)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("select domains: %w", err)
	}
	return ds, nil
}

// Domain implements identity.Store.
func (s *Store) Domain(ctx context.Context, company, workspace, domain uuid.UUID) (identity.Domain, error) {
	var d identity.Domain
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		var err error
		d, err = scanDomain(tx.QueryRow(ctx, `SELECT `+domainColumns+` FROM identity.domains
			WHERE id = $1 AND company_id = $2 AND workspace_id = $3`, domain, company, workspace))
		return mapError(err, "domain")
	})
	if err != nil {
		return identity.Domain{}, fmt.Errorf("select domain: %w", err)
	}
	return d, nil
}

// DeleteDomain implements identity.Store.
func (s *Store) DeleteDomain(ctx context.Context, company, workspace, domain uuid.UUID) error {
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM identity.domains
			WHERE id = $1 AND company_id = $2 AND workspace_id = $3`, domain, company, workspace)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return &identity.NotFoundError{Resource: "domain"}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete domain: %w", err)
	}
	return nil
}

// Memberships implements identity.Store.
func (s *Store) Memberships(ctx context.Context, company, user uuid.UUID) ([]identity.Membership, error) {
	var ms []identity.Membership
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT workspace_id, role FROM identity.memberships
			WHERE company_id = $1 AND user_id = $2
			ORDER BY workspace_id NULLS FIRST, created_at`, company, user)
		if err != nil {
			return err
		}
		ms, err = collect(rows, func(r pgx.Row) (identity.Membership, error) {
			var ws *uuid.UUID
			var role string
			err := r.Scan(&ws, &role)
			return identity.Membership{WorkspaceID: fromNull(ws), Role: identity.Role(role)}, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("select memberships: %w", err)
	}
	return ms, nil
}

// WorkspaceAccess implements identity.Store.
func (s *Store) WorkspaceAccess(ctx context.Context, company, user, workspace, domain uuid.UUID) (identity.WorkspaceAccess, error) {
	var wa identity.WorkspaceAccess
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		var role string
		if err := tx.QueryRow(ctx, `SELECT
				EXISTS (SELECT 1 FROM identity.workspaces WHERE id = $2 AND company_id = $1),
				EXISTS (SELECT 1 FROM identity.domains WHERE id = $3 AND workspace_id = $2 AND company_id = $1),
				COALESCE((SELECT role FROM identity.memberships
				          WHERE company_id = $1 AND user_id = $4 AND (workspace_id IS NULL OR workspace_id = $2)
				          ORDER BY workspace_id NULLS FIRST LIMIT 1), '')`,
			company, workspace, domain, user).Scan(&wa.WorkspaceExists, &wa.DomainExists, &role); err != nil {
			return err
		}
		wa.Role = identity.Role(role)
		return nil
	})
	if err != nil {
		return identity.WorkspaceAccess{}, fmt.Errorf("select workspace access: %w", err)
	}
	return wa, nil
}

// memberColumns select a user and their role from memberships m joined with users u.
const memberColumns = `u.id, u.company_id, u.email, u.name, u.password_hash, u.created_at, m.role`

func scanMember(row pgx.Row) (identity.Member, error) {
	var m identity.Member
	var hash *string
	var role string
	if err := row.Scan(&m.User.ID, &m.User.CompanyID, &m.User.Email, &m.User.Name, &hash, &m.User.CreatedAt, &role); err != nil {
		return identity.Member{}, err
	}
	if hash != nil {
		m.User.PasswordHash = *hash
	}
	m.Role = identity.Role(role)
	return m, nil
}

// Members implements identity.Store.
func (s *Store) Members(ctx context.Context, company, workspace uuid.UUID) ([]identity.Member, error) {
	var ms []identity.Member
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+memberColumns+`
			FROM identity.memberships AS m JOIN identity.users AS u ON u.id = m.user_id
			WHERE m.company_id = $1 AND m.workspace_id = $2 AND u.company_id = $1
			ORDER BY m.created_at, u.email`, company, workspace)
		if err != nil {
			return err
		}
		ms, err = collect(rows, scanMember)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("select members: %w", err)
	}
	return ms, nil
}

// member reads one member of a workspace.
func member(ctx context.Context, tx pgx.Tx, company, workspace, user uuid.UUID) (identity.Member, error) {
	m, err := scanMember(tx.QueryRow(ctx, `SELECT `+memberColumns+`
		FROM identity.memberships AS m JOIN identity.users AS u ON u.id = m.user_id
		WHERE m.company_id = $1 AND m.workspace_id = $2 AND m.user_id = $3`, company, workspace, user))
	return m, mapError(err, "member")
}

// UpdateMember implements identity.Store.
func (s *Store) UpdateMember(ctx context.Context, company, workspace, user uuid.UUID, role identity.Role) (identity.Member, error) {
	var m identity.Member
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE identity.memberships SET role = $4
			WHERE company_id = $1 AND workspace_id = $2 AND user_id = $3`, company, workspace, user, string(role))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return &identity.NotFoundError{Resource: "member"}
		}
		// An invitation still open hands out the new role, not the old one.
		if _, err := tx.Exec(ctx, `UPDATE identity.invitations SET role = $4
			WHERE company_id = $1 AND workspace_id = $2 AND user_id = $3 AND accepted_at IS NULL`,
			company, workspace, user, string(role)); err != nil {
			return err
		}
		m, err = member(ctx, tx, company, workspace, user)
		return err
	})
	if err != nil {
		return identity.Member{}, fmt.Errorf("update member: %w", err)
	}
	return m, nil
}

// RemoveMember implements identity.Store.
func (s *Store) RemoveMember(ctx context.Context, company, workspace, user uuid.UUID) error {
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM identity.memberships
			WHERE company_id = $1 AND workspace_id = $2 AND user_id = $3`, company, workspace, user)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return &identity.NotFoundError{Resource: "member"}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM identity.invitations
			WHERE company_id = $1 AND workspace_id = $2 AND user_id = $3`, company, workspace, user); err != nil {
			return err
		}
		// A user left with no role at all has no business in the company: deleting them frees the
		// seat and ends their sessions (refresh tokens go with them).
		_, err = tx.Exec(ctx, `DELETE FROM identity.users AS u
			WHERE u.id = $2 AND u.company_id = $1
			  AND NOT EXISTS (SELECT 1 FROM identity.memberships AS m WHERE m.company_id = $1 AND m.user_id = $2)`,
			company, user)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	return nil
}

// Invite implements identity.Store.
func (s *Store) Invite(ctx context.Context, in identity.NewInvitation, admit identity.Admit) (identity.Member, bool, error) {
	var (
		m       identity.Member
		invited bool
	)
	err := s.inCompany(ctx, in.CompanyID, func(tx pgx.Tx) error {
		c, err := lockCompany(ctx, tx, in.CompanyID)
		if err != nil {
			return err
		}
		u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM identity.users WHERE email = $1`, in.Email))
		switch {
		case err == nil && u.CompanyID != in.CompanyID:
			return identity.ErrEmailTaken
		case err == nil:
			var owner bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM identity.memberships
				WHERE company_id = $1 AND user_id = $2 AND role = 'owner')`, in.CompanyID, u.ID).Scan(&owner); err != nil {
				return err
			}
			if owner {
				return identity.ErrAlreadyMember
			}
		default:
			if err := mapError(err, "user"); !errors.Is(err, identity.ErrNotFound) {
				return err
			}
			if err := admit(c); err != nil {
				return err
			}
			u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO identity.users (company_id, email)
				VALUES ($1, $2) RETURNING `+userColumns, in.CompanyID, in.Email))
			if err != nil {
				return mapError(err, "user")
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO identity.memberships (company_id, workspace_id, user_id, role)
			VALUES ($1, $2, $3, $4)`, in.CompanyID, in.WorkspaceID, u.ID, string(in.Role)); err != nil {
			return mapError(err, "workspace")
		}
		if u.Pending() {
			if _, err := tx.Exec(ctx, `INSERT INTO identity.invitations
				(company_id, workspace_id, user_id, role, token_hash, created_by, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				in.CompanyID, in.WorkspaceID, u.ID, string(in.Role), in.TokenHash, nullUUID(in.CreatedBy), in.ExpiresAt); err != nil {
				return fmt.Errorf("insert invitation: %w", err)
			}
			invited = true
		}
		m = identity.Member{User: u, Role: in.Role}
		return nil
	})
	if err != nil {
		return identity.Member{}, false, fmt.Errorf("invite member: %w", err)
	}
	return m, invited, nil
}

// CreateAPIKey implements identity.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k identity.APIKey) (identity.APIKey, error) {
	var out identity.APIKey
	err := s.inCompany(ctx, k.CompanyID, func(tx pgx.Tx) error {
		var err error
		out, err = scanAPIKey(tx.QueryRow(ctx, `INSERT INTO identity.api_keys
			(id, company_id, workspace_id, name, prefix, secret_hash, role, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+apiKeyColumns,
			k.ID, k.CompanyID, k.WorkspaceID, k.Name, k.Prefix, k.SecretHash, string(k.Role), nullUUID(k.CreatedBy)))
		return mapError(err, "workspace")
	})
	if err != nil {
		return identity.APIKey{}, fmt.Errorf("insert api key: %w", err)
	}
	return out, nil
}

// APIKeys implements identity.Store.
func (s *Store) APIKeys(ctx context.Context, company, workspace uuid.UUID) ([]identity.APIKey, error) {
	var ks []identity.APIKey
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+apiKeyColumns+` FROM identity.api_keys
			WHERE company_id = $1 AND workspace_id = $2 ORDER BY created_at DESC, id`, company, workspace)
		if err != nil {
			return err
		}
		ks, err = collect(rows, scanAPIKey)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("select api keys: %w", err)
	}
	return ks, nil
}

// RevokeAPIKey implements identity.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, company, workspace, id uuid.UUID, now time.Time) error {
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE identity.api_keys SET revoked_at = COALESCE(revoked_at, $4)
			WHERE id = $1 AND company_id = $2 AND workspace_id = $3`, id, company, workspace, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return &identity.NotFoundError{Resource: "api key"}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return nil
}

// APIKeyByPrefix implements identity.Store.
func (s *Store) APIKeyByPrefix(ctx context.Context, prefix string) (identity.APIKey, error) {
	var k identity.APIKey
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		k, err = scanAPIKey(tx.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM identity.api_key_by_prefix($1)`, prefix))
		return mapError(err, "api key")
	})
	if err != nil {
		return identity.APIKey{}, fmt.Errorf("select api key by prefix: %w", err)
	}
	return k, nil
}

// TouchAPIKey implements identity.Store.
func (s *Store) TouchAPIKey(ctx context.Context, company, id uuid.UUID, now time.Time) error {
	err := s.inCompany(ctx, company, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE identity.api_keys SET last_used_at = $3
			WHERE id = $1 AND company_id = $2 AND (last_used_at IS NULL OR last_used_at <= $3::timestamptz - interval '1 minute')`,
			id, company, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	return nil
}
