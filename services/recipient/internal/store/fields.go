package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
)

// fieldColumns is the select list of field definitions, in the order scanDefinition reads it.
const fieldColumns = `id, company_id, workspace_id, key, label, type, required, default_value,
	options, retired_at, created_at, updated_at`

// workspaceFilter matches definitions of the workspace whose company and workspace are $1, $2.
const workspaceFilter = `company_id = $1 AND workspace_id = $2`

// uniqueKey is the constraint that keeps one key per workspace.
const uniqueKey = "field_definitions_workspace_id_key_key"

// Fields implements fields.Store and recipient.Fields.
type Fields struct {
	db tenancy.Beginner
}

// NewFields returns a Fields on db (a *pgxpool.Pool).
func NewFields(db tenancy.Beginner) *Fields { return &Fields{db: db} }

// inWorkspaceTx runs fn in a transaction scoped to a workspace: app.company_id and
// app.workspace_id are set for the transaction only, app.domain_id is empty, so the
// workspace policy of field_definitions admits the rows and every domain policy none.
func inWorkspaceTx(ctx context.Context, db tenancy.Beginner, ws fields.Workspace, fn func(pgx.Tx) error) error {
	if !ws.Valid() {
		return fmt.Errorf("workspace transaction: %w", tenancy.ErrInvalidTenant)
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin workspace transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx,
		`SELECT set_config('app.company_id', $1, true),
		        set_config('app.workspace_id', $2, true),
		        set_config('app.domain_id', '', true)`,
		ws.CompanyID.String(), ws.WorkspaceID.String()); err != nil {
		return fmt.Errorf("set workspace: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit workspace transaction: %w", err)
	}
	return nil
}

// List implements fields.Store and recipient.Fields.
func (f *Fields) List(ctx context.Context, ws fields.Workspace) (fields.Definitions, error) {
	var ds fields.Definitions
	err := inWorkspaceTx(ctx, f.db, ws, func(tx pgx.Tx) error {
		var err error
		ds, err = DefinitionsTx(ctx, tx, ws)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// DefinitionsTx returns the field definitions of ws, retired ones included, oldest first,
// inside a transaction the caller opened, scoped to ws or to any tenant of it
// (tenancy.InTx).
func DefinitionsTx(ctx context.Context, tx pgx.Tx, ws fields.Workspace) (fields.Definitions, error) {
	rows, err := tx.Query(ctx, `SELECT `+fieldColumns+` FROM recipient.field_definitions
		WHERE `+workspaceFilter+` ORDER BY created_at, key`, ws.CompanyID, ws.WorkspaceID)
	if err != nil {
		return nil, fmt.Errorf("select field definitions: %w", err)
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fields.Definition, error) { return scanDefinition(r) })
	if err != nil {
		return nil, fmt.Errorf("select field definitions: %w", err)
	}
	return ds, nil
}

// Create implements fields.Store.
func (f *Fields) Create(ctx context.Context, ws fields.Workspace, d fields.Definition) (fields.Definition, error) {
	var out fields.Definition
	err := inWorkspaceTx(ctx, f.db, ws, func(tx pgx.Tx) error {
		// One writer per workspace at a time, so the limit holds under concurrent creates.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('recipient.field_definitions:' || $1::text, 0))`, ws.WorkspaceID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM recipient.field_definitions WHERE `+workspaceFilter,
			ws.CompanyID, ws.WorkspaceID).Scan(&n); err != nil {
			return err
		}
		if n >= fields.MaxDefinitions {
			return fields.ErrTooMany
		}
		def, err := defaultJSON(d.Default)
		if err != nil {
			return err
		}
		out, err = scanDefinition(tx.QueryRow(ctx, `INSERT INTO recipient.field_definitions
			(company_id, workspace_id, key, label, type, required, default_value, options)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING `+fieldColumns,
			ws.CompanyID, ws.WorkspaceID, d.Key, d.Label, string(d.Type), d.Required, def, optionsOf(d)))
		return err
	})
	if err != nil {
		return fields.Definition{}, fmt.Errorf("insert field definition: %w", mapFieldError(err))
	}
	return out, nil
}

// Get implements fields.Store.
func (f *Fields) Get(ctx context.Context, ws fields.Workspace, key string) (fields.Definition, error) {
	var out fields.Definition
	err := inWorkspaceTx(ctx, f.db, ws, func(tx pgx.Tx) error {
		var err error
		out, err = scanDefinition(tx.QueryRow(ctx, `SELECT `+fieldColumns+` FROM recipient.field_definitions
			WHERE `+workspaceFilter+` AND key = $3`, ws.CompanyID, ws.WorkspaceID, key))
		return err
	})
	if err != nil {
		return fields.Definition{}, fmt.Errorf("select field definition: %w", mapFieldError(err))
	}
	return out, nil
}

// Update implements fields.Store.
func (f *Fields) Update(ctx context.Context, ws fields.Workspace, key string, apply func(fields.Definition) (fields.Definition, error)) (fields.Definition, error) {
	var out fields.Definition
	err := inWorkspaceTx(ctx, f.db, ws, func(tx pgx.Tx) error {
		cur, err := scanDefinition(tx.QueryRow(ctx, `SELECT `+fieldColumns+` FROM recipient.field_definitions
			WHERE `+workspaceFilter+` AND key = $3 FOR UPDATE`, ws.CompanyID, ws.WorkspaceID, key))
		if err != nil {
			return err
		}
		next, err := apply(cur)
		if err != nil {
			return err
		}
		def, err := defaultJSON(next.Default)
		if err != nil {
			return err
		}
		out, err = scanDefinition(tx.QueryRow(ctx, `UPDATE recipient.field_definitions
			SET label = $4, default_value = $5, options = $6, retired_at = $7, updated_at = $8
			WHERE `+workspaceFilter+` AND key = $3
			RETURNING `+fieldColumns,
			ws.CompanyID, ws.WorkspaceID, key, next.Label, def, optionsOf(next),
			nullTime(next.RetiredAt), next.UpdatedAt))
		return err
	})
	if err != nil {
		return fields.Definition{}, fmt.Errorf("update field definition: %w", mapFieldError(err))
	}
	return out, nil
}

func scanDefinition(row pgx.Row) (fields.Definition, error) {
	var (
		d       fields.Definition
		typ     string
		def     []byte
		retired *time.Time
	)
	err := row.Scan(&d.ID, &d.Workspace.CompanyID, &d.Workspace.WorkspaceID, &d.Key, &d.Label, &typ,
		&d.Required, &def, &d.Options, &retired, &d.CreatedAt, &d.UpdatedAt)
	if err != nil {
		return fields.Definition{}, err
	}
	d.Type = fields.Type(typ)
	if retired != nil {
		d.RetiredAt = *retired
	}
	if len(def) > 0 {
		if err := json.Unmarshal(def, &d.Default); err != nil {
			return fields.Definition{}, fmt.Errorf("decode default of field %s: %w", d.Key, err)
		}
	}
	if len(d.Options) == 0 {
		d.Options = nil
	}
	return d, nil
}

// defaultJSON is the jsonb of a default, or NULL for none.
func defaultJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode default: %w", err)
	}
	return b, nil
}

func optionsOf(d fields.Definition) []string {
	if d.Options == nil {
		return []string{}
	}
	return d.Options
}

func mapFieldError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fields.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == pgerrcode.UniqueViolation && pgErr.ConstraintName == uniqueKey:
			return fields.ErrAlreadyExists
		case pgErr.Code == pgerrcode.UntranslatableCharacter || pgErr.Code == pgerrcode.CharacterNotInRepertoire:
			return &fields.ValidationError{Field: "request", Reason: "must not contain NUL characters"}
		}
	}
	return err
}
