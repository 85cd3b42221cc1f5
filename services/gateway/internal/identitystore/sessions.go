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

// CreateAccount implements identity.Store.
func (s *Store) CreateAccount(ctx context.Context, in identity.NewAccount) (identity.User, identity.Company, identity.Workspace, error) {
	var (
		u identity.User
		c identity.Company
		w identity.Workspace
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		c, err = scanCompany(tx.QueryRow(ctx, `WITH c AS (
				INSERT INTO identity.companies (name) VALUES ($1)
				RETURNING id, name, plan, max_seats, max_domains, monthly_send_limit, created_at)
			SELECT c.id, c.name, c.plan, c.max_seats, c.max_domains, c.monthly_send_limit, c.created_at, 0::bigint, 0::bigint
			FROM c`, in.CompanyName))
		if err != nil {
			return fmt.Errorf("insert company: %w", err)
		}
		if err := scopeTo(ctx, tx, c.ID); err != nil {
			return err
		}
		u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO identity.users (company_id, email, name, password_hash)
			VALUES ($1, $2, $3, $4) RETURNING `+userColumns, c.ID, in.Email, in.Name, in.PasswordHash))
		if err != nil {
			return fmt.Errorf("insert user: %w", mapError(err, "user"))
		}
		w, err = scanWorkspace(tx.QueryRow(ctx, `INSERT INTO identity.workspaces (company_id, name)
			VALUES ($1, $2) RETURNING `+workspaceColumns, c.ID, in.WorkspaceName))
		if err != nil {
			return fmt.Errorf("insert workspace: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO identity.memberships (company_id, workspace_id, user_id, role)
			VALUES ($1, NULL, $2, 'owner')`, c.ID, u.ID); err != nil {
			return fmt.Errorf("insert owner membership: %w", err)
		}
		return nil
	})
	if err != nil {
		return identity.User{}, identity.Company{}, identity.Workspace{}, fmt.Errorf("create account: %w", err)
	}
	return u, c, w, nil
}

// UserByEmail implements identity.Store.
func (s *Store) UserByEmail(ctx context.Context, email string) (identity.User, error) {
	var u identity.User
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM identity.users WHERE email = $1`, email))
		return err
	})
	if err != nil {
		return identity.User{}, fmt.Errorf("select user by email: %w", mapError(err, "user"))
	}
	return u, nil
}

// User implements identity.Store.
func (s *Store) User(ctx context.Context, company, id uuid.UUID) (identity.User, error) {
	var u identity.User
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM identity.users
			WHERE id = $1 AND company_id = $2`, id, company))
		return err
	})
	if err != nil {
		return identity.User{}, fmt.Errorf("select user: %w", mapError(err, "user"))
	}
	return u, nil
}

// CreateRefreshToken implements identity.Store.
func (s *Store) CreateRefreshToken(ctx context.Context, t identity.RefreshToken) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error { return insertRefresh(ctx, tx, t) })
	if err != nil {
		return fmt.Errorf("create refresh token: %w", err)
	}
	return nil
}

func insertRefresh(ctx context.Context, tx pgx.Tx, t identity.RefreshToken) error {
	_, err := tx.Exec(ctx, `INSERT INTO identity.refresh_tokens
		(id, company_id, user_id, family_id, token_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		t.ID, t.CompanyID, t.UserID, t.FamilyID, t.TokenHash, t.CreatedAt, t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

// RotateRefreshToken implements identity.Store.
func (s *Store) RotateRefreshToken(ctx context.Context, hash string, now time.Time, next func(identity.RefreshToken) (identity.RefreshToken, error)) (identity.RefreshToken, error) {
	var out identity.RefreshToken
	reused := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanRefresh(tx.QueryRow(ctx, `SELECT `+refreshColumns+` FROM identity.refresh_tokens
			WHERE token_hash = $1 FOR UPDATE`, hash))
		if err != nil {
			return mapError(err, "refresh token")
		}
		if !cur.UsedAt.IsZero() || !cur.RevokedAt.IsZero() {
			// A token seen twice was stolen or replayed: end the whole session, and commit that.
			reused = true
			return revokeFamily(ctx, tx, cur.FamilyID, now)
		}
		n, err := next(cur)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE identity.refresh_tokens SET used_at = $2 WHERE id = $1`, cur.ID, now); err != nil {
			return fmt.Errorf("mark refresh token used: %w", err)
		}
		if err := insertRefresh(ctx, tx, n); err != nil {
			return err
		}
		out = n
		return nil
	})
	if err != nil {
		return identity.RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	if reused {
		return identity.RefreshToken{}, identity.ErrTokenReused
	}
	return out, nil
}

func revokeFamily(ctx context.Context, tx pgx.Tx, family uuid.UUID, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE identity.refresh_tokens SET revoked_at = $2
		WHERE family_id = $1 AND revoked_at IS NULL`, family, now); err != nil {
		return fmt.Errorf("revoke refresh token family: %w", err)
	}
	return nil
}

// RevokeRefreshFamily implements identity.Store.
func (s *Store) RevokeRefreshFamily(ctx context.Context, hash string, now time.Time) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE identity.refresh_tokens SET revoked_at = $2
			WHERE family_id = (SELECT family_id FROM identity.refresh_tokens WHERE token_hash = $1)
			  AND revoked_at IS NULL`, hash, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke refresh token family: %w", err)
	}
	return nil
}

// InvitationByTokenHash implements identity.Store.
func (s *Store) InvitationByTokenHash(ctx context.Context, hash string) (identity.Invitation, error) {
	var inv identity.Invitation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		inv, err = scanInvitation(tx.QueryRow(ctx, `SELECT `+invitationColumns+`
			FROM identity.invitation_by_token_hash($1)`, hash))
		return err
	})
	if err != nil {
		return identity.Invitation{}, fmt.Errorf("select invitation: %w", mapError(err, "invitation"))
	}
	return inv, nil
}

// AcceptInvitation implements identity.Store.
func (s *Store) AcceptInvitation(ctx context.Context, inv identity.Invitation, passwordHash, name string, now time.Time) (identity.User, error) {
	var u identity.User
	err := s.inCompany(ctx, inv.CompanyID, func(tx pgx.Tx) error {
		var open bool
		if err := tx.QueryRow(ctx, `SELECT accepted_at IS NULL AND expires_at > $3
			FROM identity.invitations WHERE id = $1 AND company_id = $2 FOR UPDATE`,
			inv.ID, inv.CompanyID, now).Scan(&open); err != nil {
			return mapError(err, "invitation")
		}
		if !open {
			return identity.ErrInvitationInvalid
		}
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE identity.users
			SET password_hash = $3, name = CASE WHEN $4 = '' THEN name ELSE $4 END, updated_at = $5
			WHERE id = $1 AND company_id = $2 AND password_hash IS NULL
			RETURNING `+userColumns, inv.UserID, inv.CompanyID, passwordHash, name, now))
		if err != nil {
			return mapError(err, "invitation")
		}
		if _, err := tx.Exec(ctx, `UPDATE identity.invitations SET accepted_at = $3
			WHERE user_id = $1 AND company_id = $2 AND accepted_at IS NULL`, inv.UserID, inv.CompanyID, now); err != nil {
			return fmt.Errorf("mark invitations accepted: %w", err)
		}
		return nil
	})
	if errors.Is(err, identity.ErrNotFound) {
		return identity.User{}, identity.ErrInvitationInvalid
	}
	if err != nil {
		return identity.User{}, fmt.Errorf("accept invitation: %w", err)
	}
	return u, nil
}

// IsOperator implements identity.Store.
func (s *Store) IsOperator(ctx context.Context, user uuid.UUID) (bool, error) {
	var ok bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM identity.platform_operators WHERE user_id = $1)`, user).Scan(&ok)
	})
	if err != nil {
		return false, fmt.Errorf("select platform operator: %w", err)
	}
	return ok, nil
}

// GrantOperator implements identity.Store.
func (s *Store) GrantOperator(ctx context.Context, email, grantedBy string) (identity.Operator, error) {
	var op identity.Operator
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var user uuid.UUID
		if err := tx.QueryRow(ctx, `SELECT id FROM identity.users WHERE email = $1`, email).Scan(&user); err != nil {
			return mapError(err, "user")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO identity.platform_operators (user_id, granted_by)
			VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`, user, grantedBy); err != nil {
			return fmt.Errorf("insert platform operator: %w", err)
		}
		return tx.QueryRow(ctx, `SELECT p.user_id, u.email, p.granted_at, p.granted_by
			FROM identity.platform_operators AS p JOIN identity.users AS u ON u.id = p.user_id
			WHERE p.user_id = $1`, user).Scan(&op.UserID, &op.Email, &op.GrantedAt, &op.GrantedBy)
	})
	if err != nil {
		return identity.Operator{}, fmt.Errorf("grant platform operator: %w", err)
	}
	return op, nil
}

// RevokeOperator implements identity.Store.
func (s *Store) RevokeOperator(ctx context.Context, email string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM identity.platform_operators
			WHERE user_id = (SELECT id FROM identity.users WHERE email = $1)`, email)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return &identity.NotFoundError{Resource: "platform operator"}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke platform operator: %w", err)
	}
	return nil
}

// Operators implements identity.Store.
func (s *Store) Operators(ctx context.Context) ([]identity.Operator, error) {
	var ops []identity.Operator
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT p.user_id, u.email, p.granted_at, p.granted_by
			FROM identity.platform_operators AS p JOIN identity.users AS u ON u.id = p.user_id
			ORDER BY p.granted_at, u.email`)
		if err != nil {
			return err
		}
		ops, err = collect(rows, func(r pgx.Row) (identity.Operator, error) {
			var op identity.Operator
			err := r.Scan(&op.UserID, &op.Email, &op.GrantedAt, &op.GrantedBy)
			return op, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list platform operators: %w", err)
	}
	return ops, nil
}
