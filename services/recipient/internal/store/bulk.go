package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgx/v5"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// bulkColumns is the select list of bulk operations, in the order scanBulk reads it.
const bulkColumns = `id, company_id, workspace_id, domain_id, action, filter, params, state,
	matched, done, bound_at, cursor_created_at, cursor_id, error, created_at, updated_at,
	started_at, finished_at`

// CreateBulk implements recipient.BulkStore.
func (s *Store) CreateBulk(ctx context.Context, t tenancy.Tenant, op recipient.BulkOperation) (recipient.BulkOperation, error) {
	filter, err := json.Marshal(op.Filter)
	if err != nil {
		return recipient.BulkOperation{}, fmt.Errorf("encode filter: %w", err)
	}
	params, err := json.Marshal(op.Params)
	if err != nil {
		return recipient.BulkOperation{}, fmt.Errorf("encode params: %w", err)
	}
	var out recipient.BulkOperation
	err = tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		out, err = scanBulk(tx.QueryRow(ctx, `INSERT INTO recipient.bulk_operations
			(company_id, workspace_id, domain_id, action, filter, params)
			VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING `+bulkColumns,
			t.CompanyID, t.WorkspaceID, t.DomainID, string(op.Action), string(filter), string(params)))
		if err != nil {
			return err
		}
		// Transactional enqueue: the job exists exactly when the operation does.
		_, err = s.inserter.InsertTx(ctx, tx, jobs.BulkOperationArgs{
			CompanyID: t.CompanyID, WorkspaceID: t.WorkspaceID, DomainID: t.DomainID, OperationID: out.ID,
		}, nil)
		if err != nil {
			return fmt.Errorf("enqueue bulk operation job: %w", err)
		}
		return nil
	})
	if err != nil {
		return recipient.BulkOperation{}, fmt.Errorf("insert bulk operation: %w", mapError(err))
	}
	return out, nil
}

// GetBulk implements recipient.BulkStore.
func (s *Store) GetBulk(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (recipient.BulkOperation, error) {
	var out recipient.BulkOperation
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		out, err = scanBulk(tx.QueryRow(ctx, `SELECT `+bulkColumns+` FROM recipient.bulk_operations
			WHERE id = $1 AND `+tenantFilter, id, t.CompanyID, t.WorkspaceID, t.DomainID))
		return err
	})
	if err != nil {
		return recipient.BulkOperation{}, fmt.Errorf("select bulk operation: %w", mapBulkError(err))
	}
	return out, nil
}

// RunBulkBatch implements recipient.BulkStore. The operation row is locked for the whole
// batch, so two runs of one operation (a job retried while a stale attempt still runs) apply
// their batches one after the other, each after the other's committed position.
func (s *Store) RunBulkBatch(ctx context.Context, t tenancy.Tenant, id uuid.UUID, size int, now time.Time) (recipient.BulkOperation, int64, error) {
	var (
		op      recipient.BulkOperation
		applied int64
	)
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		op, err = scanBulk(tx.QueryRow(ctx, `SELECT `+bulkColumns+` FROM recipient.bulk_operations
			WHERE id = $1 AND `+tenantFilter+` FOR UPDATE`, id, t.CompanyID, t.WorkspaceID, t.DomainID))
		if err != nil {
			return err
		}
		if op.State.Finished() {
			return nil
		}
		w := newWhere(t)
		if err := w.filter(op.Filter); err != nil {
			return err
		}
		w.add("created_at <= ?", op.BoundAt)
		if op.State == recipient.BulkPending {
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM recipient.recipients WHERE `+w.String(), w.args...).Scan(&op.Matched); err != nil {
				return fmt.Errorf("count matching recipients: %w", err)
			}
			op.State, op.StartedAt = recipient.BulkRunning, now
		}
		if op.Cursor != nil {
			w.add("(created_at, id) > (?, ?)", op.Cursor.CreatedAt, op.Cursor.ID)
		}
		w.args = append(w.args, size)
		rows, err := tx.Query(ctx, `SELECT created_at, id FROM recipient.recipients
			WHERE `+w.String()+`
			ORDER BY created_at, id
			LIMIT $`+strconv.Itoa(len(w.args))+`
			FOR UPDATE`, w.args...)
		if err != nil {
			return fmt.Errorf("select batch: %w", err)
		}
		batch, err := pgx.CollectRows(rows, pgx.RowToStructByPos[recipient.Cursor])
		if err != nil {
			return fmt.Errorf("select batch: %w", err)
		}
		if len(batch) > 0 {
			ids := make([]uuid.UUID, len(batch))
			for i, c := range batch {
				ids[i] = c.ID
			}
			if applied, err = applyBulk(ctx, tx, t, op, ids, now); err != nil {
				return err
			}
			last := batch[len(batch)-1]
			op.Cursor = &last
			op.Done += applied
		}
		if len(batch) < size {
			op.State, op.FinishedAt = recipient.BulkSucceeded, now
		}
		op.UpdatedAt = now
		var curAt *time.Time
		var curID *uuid.UUID
		if op.Cursor != nil {
			curAt, curID = &op.Cursor.CreatedAt, &op.Cursor.ID
		}
		op, err = scanBulk(tx.QueryRow(ctx, `UPDATE recipient.bulk_operations
			SET state = $5, matched = $6, done = $7, cursor_created_at = $8, cursor_id = $9,
				updated_at = $10, started_at = $11, finished_at = $12
			WHERE id = $1 AND `+tenantFilter+`
			RETURNING `+bulkColumns,
			id, t.CompanyID, t.WorkspaceID, t.DomainID, string(op.State), op.Matched, op.Done,
			curAt, curID, op.UpdatedAt, nullTime(op.StartedAt), nullTime(op.FinishedAt)))
		return err
	})
	if err != nil {
		return recipient.BulkOperation{}, 0, fmt.Errorf("run bulk batch: %w", mapBulkError(err))
	}
	return op, applied, nil
}

// applyBulk applies op's action to the recipients ids (locked by the caller).
func applyBulk(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, op recipient.BulkOperation, ids []uuid.UUID, now time.Time) (int64, error) {
	var (
		sql  string
		args = []any{ids, t.CompanyID, t.WorkspaceID, t.DomainID}
	)
	switch op.Action {
	case recipient.BulkUpdateStatus:
		sql = `UPDATE recipient.recipients
			SET status = $5, status_reason = $6, status_changed_at = $7, updated_at = $7
			WHERE id = ANY($1) AND ` + tenantFilter
		args = append(args, string(op.Params.Status), op.Params.StatusReason, now)
	case recipient.BulkUpdateAttributes:
		set := map[string]any{}
		var remove []string
		for k, v := range op.Params.Attributes {
			if v == nil {
				remove = append(remove, k)
			} else {
				set[k] = v
			}
		}
		b, err := json.Marshal(set)
		if err != nil {
			return 0, fmt.Errorf("encode attributes: %w", err)
		}
		if remove == nil {
			remove = []string{}
		}
		sql = `UPDATE recipient.recipients
			SET attributes = (attributes || $5::jsonb) - $6::text[], updated_at = $7
			WHERE id = ANY($1) AND ` + tenantFilter
		args = append(args, string(b), remove, now)
	case recipient.BulkDelete:
		sql = `DELETE FROM recipient.recipients WHERE id = ANY($1) AND ` + tenantFilter
	default:
		return 0, fmt.Errorf("bulk operation %s: unknown action %q", op.ID, op.Action)
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("apply %s batch: %w", op.Action, err)
	}
	return tag.RowsAffected(), nil
}

func mapBulkError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return recipient.ErrOperationNotFound
	}
	return mapError(err)
}

func scanBulk(row pgx.Row) (recipient.BulkOperation, error) {
	var (
		op                       recipient.BulkOperation
		action, state            string
		filter, params           []byte
		curAt, started, finished *time.Time
		curID                    *uuid.UUID
	)
	err := row.Scan(&op.ID, &op.Tenant.CompanyID, &op.Tenant.WorkspaceID, &op.Tenant.DomainID,
		&action, &filter, &params, &state, &op.Matched, &op.Done, &op.BoundAt, &curAt, &curID,
		&op.Error, &op.CreatedAt, &op.UpdatedAt, &started, &finished)
	if err != nil {
		return recipient.BulkOperation{}, err
	}
	op.Action, op.State = recipient.BulkAction(action), recipient.BulkState(state)
	if err := json.Unmarshal(filter, &op.Filter); err != nil {
		return recipient.BulkOperation{}, errors.Join(errors.New("decode bulk operation filter"), err)
	}
	if err := json.Unmarshal(params, &op.Params); err != nil {
		return recipient.BulkOperation{}, errors.Join(errors.New("decode bulk operation params"), err)
	}
	if curAt != nil && curID != nil {
		op.Cursor = &recipient.Cursor{CreatedAt: *curAt, ID: *curID}
	}
	if started != nil {
		op.StartedAt = *started
	}
	if finished != nil {
		op.FinishedAt = *finished
	}
	return op, nil
}
