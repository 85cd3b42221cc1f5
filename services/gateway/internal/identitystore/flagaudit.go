package identitystore

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/jackc/pgx/v5"

	"github.com/heraldmail/herald/services/gateway/internal/flagadmin"
)

// inFlagAudit runs fn in a transaction that sees company's audit rows (none when nil) and,
// with global, the global ones (app.platform_operator, which the flag_audit policy reads).
func (s *Store) inFlagAudit(ctx context.Context, company uuid.UUID, global bool, fn func(pgx.Tx) error) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if company != uuid.Nil {
			if err := scopeTo(ctx, tx, company); err != nil {
				return err
			}
		}
		if global {
			if _, err := tx.Exec(ctx, `SELECT set_config('app.platform_operator', 'on', true)`); err != nil {
				return fmt.Errorf("set platform operator: %w", err)
			}
		}
		return fn(tx)
	})
}

// RecordFlagChange implements flagadmin.Store. The lock is a transaction advisory lock on
// the flag and target, so two changes of the same value are recorded one after the other,
// each with the value the other left.
func (s *Store) RecordFlagChange(ctx context.Context, c flagadmin.Change, old func(context.Context) (*bool, error), apply func(context.Context) error) (flagadmin.Change, error) {
	err := s.inFlagAudit(ctx, c.CompanyID, c.Level == flags.LevelGlobal, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "flag:"+c.Flag+":"+c.Target().String()); err != nil {
			return fmt.Errorf("lock flag: %w", err)
		}
		prev, err := old(ctx)
		if err != nil {
			return err
		}
		c.Old = prev
		if err := tx.QueryRow(ctx, `
			INSERT INTO identity.flag_audit
				(company_id, workspace_id, flag, scope, old_value, new_value, actor_user_id, actor)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING id, created_at`,
			nullUUID(c.CompanyID), nullUUID(c.WorkspaceID), c.Flag, c.Level.String(), c.Old, c.New,
			nullUUID(c.ActorUserID), c.Actor).Scan(&c.ID, &c.CreatedAt); err != nil {
			return fmt.Errorf("insert flag audit: %w", err)
		}
		return apply(ctx)
	})
	if err != nil {
		return flagadmin.Change{}, fmt.Errorf("record flag change: %w", err)
	}
	return c, nil
}

// FlagAudit implements flagadmin.Store.
func (s *Store) FlagAudit(ctx context.Context, company uuid.UUID, global bool, flag string, limit int) ([]flagadmin.Change, error) {
	var out []flagadmin.Change
	err := s.inFlagAudit(ctx, company, global, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT id, company_id, workspace_id, flag, scope, old_value, new_value, actor_user_id, actor, created_at
			FROM identity.flag_audit
			WHERE (company_id = $1 OR ($2 AND company_id IS NULL))
			  AND ($3 = '' OR flag = $3)
			ORDER BY created_at DESC, id
			LIMIT $4`, nullUUID(company), global, flag, limit)
		if err != nil {
			return fmt.Errorf("select flag audit: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				c                        flagadmin.Change
				companyID, ws, actorUser *uuid.UUID
				scope                    string
			)
			if err := rows.Scan(&c.ID, &companyID, &ws, &c.Flag, &scope, &c.Old, &c.New, &actorUser, &c.Actor, &c.CreatedAt); err != nil {
				return fmt.Errorf("scan flag audit: %w", err)
			}
			c.CompanyID, c.WorkspaceID, c.ActorUserID = deref(companyID), deref(ws), deref(actorUser)
			switch scope {
			case "company":
				c.Level = flags.LevelCompany
			case "workspace":
				c.Level = flags.LevelWorkspace
			default:
				c.Level = flags.LevelGlobal
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("select flag audit: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func deref(id *uuid.UUID) uuid.UUID {
	if id == nil {
		return uuid.Nil
	}
	return *id
}
