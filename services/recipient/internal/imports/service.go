package imports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgx/v5"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// Rules are the recipient rules an import applies inside its transactions, provided by the
// service's wiring (field definitions and suppressed addresses live in the recipient store).
type Rules struct {
	// Definitions returns the custom field definitions of the workspace, inside tx.
	Definitions func(ctx context.Context, tx pgx.Tx, ws fields.Workspace) (fields.Definitions, error)
	// Suppressed returns which of emails (normalized) may not be created again (erased
	// addresses), inside tx; nil means none is.
	Suppressed func(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, emails []string) (map[string]bool, error)
}

// Service runs imports on PostgreSQL.
type Service struct {
	db       tenancy.Beginner
	inserter *jobs.Inserter
	rules    Rules
	now      func() time.Time
}

// NewService returns a Service on db that enqueues import jobs with inserter.
func NewService(db tenancy.Beginner, inserter *jobs.Inserter, rules Rules, now func() time.Time) *Service {
	return &Service{db: db, inserter: inserter, rules: rules, now: now}
}

// Source yields the pieces of an uploaded file in order, then io.EOF.
type Source interface {
	Next() ([]byte, error)
}

// Upload stores the file src yields and creates its import, pending, with its job enqueued,
// all in one transaction: a failed upload leaves nothing behind. The mapping and the header
// are checked before anything is stored.
func (s *Service) Upload(ctx context.Context, t tenancy.Tenant, mapEntries []string, src Source) (Import, error) {
	maps, err := parseMap(mapEntries)
	if err != nil {
		return Import{}, err
	}
	id := uuid.New()
	var im Import
	err = tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		defs, err := s.definitions(ctx, tx, t)
		if err != nil {
			return err
		}
		buf := make([]byte, 0, ChunkSize)
		eof := false
		fill := func() error {
			for len(buf) < ChunkSize && !eof {
				p, err := src.Next()
				if errors.Is(err, io.EOF) {
					eof = true
					break
				}
				if err != nil {
					return err
				}
				buf = append(buf, p...)
			}
			return nil
		}
		if err := fill(); err != nil {
			return err
		}
		h, err := parseHeader(buf, eof, maps, defs)
		if err != nil {
			return err
		}
		var total, seq int64
		flush := func(n int) error {
			if _, err := tx.Exec(ctx, `INSERT INTO recipient.import_chunks
				(import_id, seq, company_id, workspace_id, domain_id, start_offset, data)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				id, seq, t.CompanyID, t.WorkspaceID, t.DomainID, total, buf[:n]); err != nil {
				return fmt.Errorf("store import chunk: %w", err)
			}
			seq++
			total += int64(n)
			buf = append(buf[:0], buf[n:]...)
			return nil
		}
		for {
			if total+int64(len(buf)) > MaxFileBytes {
				return invalid("file", "is larger than %d bytes", int64(MaxFileBytes))
			}
			if len(buf) >= ChunkSize {
				if err := flush(ChunkSize); err != nil {
					return err
				}
				continue
			}
			if eof {
				break
			}
			if err := fill(); err != nil {
				return err
			}
		}
		if len(buf) > 0 {
			if err := flush(len(buf)); err != nil {
				return err
			}
		}
		cols, err := json.Marshal(h.columns)
		if err != nil {
			return fmt.Errorf("encode columns: %w", err)
		}
		row := tx.QueryRow(ctx, `INSERT INTO recipient.imports
			(id, company_id, workspace_id, domain_id, column_map, columns, column_count, total_bytes,
			 committed_offset, committed_line)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			RETURNING `+importColumns, id, t.CompanyID, t.WorkspaceID, t.DomainID, mapEntries, cols,
			h.columnCount, total, h.end, h.line)
		if im, err = scanImport(row); err != nil {
			return fmt.Errorf("create import: %w", err)
		}
		if _, err := s.inserter.InsertTx(ctx, tx, jobs.ImportArgs{
			CompanyID: t.CompanyID, WorkspaceID: t.WorkspaceID, DomainID: t.DomainID, ImportID: id,
		}, nil); err != nil {
			return fmt.Errorf("enqueue import job: %w", err)
		}
		return nil
	})
	if err != nil {
		return Import{}, err
	}
	return im, nil
}

func (s *Service) definitions(ctx context.Context, tx pgx.Tx, t tenancy.Tenant) (fields.Definitions, error) {
	if s.rules.Definitions == nil {
		return nil, nil
	}
	defs, err := s.rules.Definitions(ctx, tx, fields.Workspace{CompanyID: t.CompanyID, WorkspaceID: t.WorkspaceID})
	if err != nil {
		return nil, fmt.Errorf("load field definitions: %w", err)
	}
	return defs, nil
}

const importColumns = `id, company_id, workspace_id, domain_id, state, column_map, columns, column_count,
	total_bytes, committed_offset, committed_line, committed_sequence, rows_done, inserted, updated,
	rejected, duplicates, error, created_at, updated_at`

func scanImport(row pgx.Row) (Import, error) {
	var im Import
	var cols []byte
	var state string
	err := row.Scan(&im.ID, &im.Tenant.CompanyID, &im.Tenant.WorkspaceID, &im.Tenant.DomainID, &state,
		&im.Map, &cols, &im.ColumnCount, &im.TotalBytes, &im.Position.Offset, &im.Position.Line,
		&im.Position.Sequence, &im.RowsDone, &im.Inserted, &im.Updated, &im.Rejected, &im.Duplicates,
		&im.Error, &im.CreatedAt, &im.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Import{}, ErrNotFound
	}
	if err != nil {
		return Import{}, err
	}
	im.State = State(state)
	if err := json.Unmarshal(cols, &im.Columns); err != nil {
		return Import{}, fmt.Errorf("decode columns: %w", err)
	}
	return im, nil
}

func (s *Service) get(ctx context.Context, tx pgx.Tx, id uuid.UUID, lock bool) (Import, error) {
	q := `SELECT ` + importColumns + ` FROM recipient.imports WHERE id = $1`
	if lock {
		q += ` FOR UPDATE`
	}
	im, err := scanImport(tx.QueryRow(ctx, q, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Import{}, fmt.Errorf("read import: %w", err)
	}
	return im, err
}

// Get returns an import of the tenant.
func (s *Service) Get(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (Import, error) {
	var im Import
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		im, err = s.get(ctx, tx, id, false)
		return err
	})
	return im, err
}

// Cancel stops an import that has not ended: the batch being applied finishes, the next one
// is refused. The stored file is dropped.
func (s *Service) Cancel(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (Import, error) {
	var im Import
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		if im, err = s.get(ctx, tx, id, true); err != nil {
			return err
		}
		if im.State.Ended() {
			return nil
		}
		return s.end(ctx, tx, &im, StateCancelled, "")
	})
	return im, err
}

// end moves im to an ended state and drops its stored file.
func (s *Service) end(ctx context.Context, tx pgx.Tx, im *Import, st State, reason string) error {
	if err := tx.QueryRow(ctx, `UPDATE recipient.imports SET state = $2, error = $3, updated_at = $4
		WHERE id = $1 RETURNING updated_at`, im.ID, string(st), reason, s.now()).Scan(&im.UpdatedAt); err != nil {
		return fmt.Errorf("end import: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM recipient.import_chunks WHERE import_id = $1`, im.ID); err != nil {
		return fmt.Errorf("drop import file: %w", err)
	}
	im.State, im.Error = st, reason
	return nil
}

// BeginRun moves a pending import to running and returns it; an import that is running
// already (a resumed job) stays so. The caller goes on only when the state is running.
func (s *Service) BeginRun(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (Import, error) {
	var im Import
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		if im, err = s.get(ctx, tx, id, true); err != nil {
			return err
		}
		if im.State != StatePending {
			return nil
		}
		im.State = StateRunning
		if _, err := tx.Exec(ctx, `UPDATE recipient.imports SET state = 'running', updated_at = $2 WHERE id = $1`, id, s.now()); err != nil {
			return fmt.Errorf("start import: %w", err)
		}
		return nil
	})
	return im, err
}

// ReadFile sends the stored file of an import from offset to send, one stored piece at a time
// (each read in its own short transaction, so a slow reader holds no transaction open).
func (s *Service) ReadFile(ctx context.Context, t tenancy.Tenant, id uuid.UUID, offset int64, send func([]byte) error) error {
	if offset < 0 {
		return invalid("offset", "must not be negative")
	}
	if err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		_, err := s.get(ctx, tx, id, false)
		return err
	}); err != nil {
		return err
	}
	for seq := offset / ChunkSize; ; seq++ {
		var start int64
		var data []byte
		err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT start_offset, data FROM recipient.import_chunks
				WHERE import_id = $1 AND seq = $2`, id, seq).Scan(&start, &data)
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read import chunk: %w", err)
		}
		if skip := offset - start; skip > 0 {
			if skip >= int64(len(data)) {
				continue
			}
			data = data[skip:]
		}
		if err := send(data); err != nil {
			return err
		}
	}
}

// Rejections sends the rows an import rejected, in line order, to send.
func (s *Service) Rejections(ctx context.Context, t tenancy.Tenant, id uuid.UUID, send func([]Rejection) error) error {
	if _, err := s.Get(ctx, t, id); err != nil {
		return err
	}
	const page = 1000
	after := int64(-1)
	for {
		var out []Rejection
		err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT line, raw, reason FROM recipient.import_rejections
				WHERE import_id = $1 AND line > $2 ORDER BY line LIMIT $3`, id, after, page)
			if err != nil {
				return err
			}
			out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rejection, error) {
				var rj Rejection
				err := r.Scan(&rj.Line, &rj.Raw, &rj.Reason)
				return rj, err
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("read rejections: %w", err)
		}
		if len(out) > 0 {
			if err := send(out); err != nil {
				return err
			}
			after = out[len(out)-1].Line
		}
		if len(out) < page {
			return nil
		}
	}
}

// staged is a row ready to upsert.
type staged struct {
	email string
	attrs map[string]any
}

// Apply applies one batch of an import in one transaction: the rows are validated (email,
// custom fields, suppressed addresses), deduplicated (the last row of an address wins),
// copied into a staging table and upserted on (domain, email); rejected rows, the counters
// and the position after the batch are recorded with them. A batch whose sequence was
// already applied changes nothing; an import that is not running refuses every batch, and the
// import is returned as it is so that the caller stops.
func (s *Service) Apply(ctx context.Context, t tenancy.Tenant, id uuid.UUID, b Batch) (Import, error) {
	if len(b.Rows)+len(b.Rejections) > MaxBatchRows {
		return Import{}, invalid("rows", "a batch holds at most %d rows", MaxBatchRows)
	}
	var im Import
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		if im, err = s.get(ctx, tx, id, true); err != nil {
			return err
		}
		if im.State != StateRunning || b.Sequence <= im.Position.Sequence {
			return nil
		}
		if b.Sequence != im.Position.Sequence+1 {
			return fmt.Errorf("%w: batch %d after batch %d", ErrOutOfOrder, b.Sequence, im.Position.Sequence)
		}
		if b.EndOffset < im.Position.Offset || b.EndOffset > im.TotalBytes || b.EndLine < im.Position.Line {
			return invalid("end_offset", "the batch ends at %d, outside the file's unread part [%d, %d]", b.EndOffset, im.Position.Offset, im.TotalBytes)
		}
		c, err := s.applyRows(ctx, tx, t, &im, b)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `UPDATE recipient.imports SET
				committed_offset = $2, committed_line = $3, committed_sequence = $4,
				rows_done = rows_done + $5, inserted = inserted + $6, updated = updated + $7,
				rejected = rejected + $8, duplicates = duplicates + $9, updated_at = $10
			WHERE id = $1
			RETURNING committed_offset, committed_line, committed_sequence, rows_done, inserted,
				updated, rejected, duplicates, updated_at`,
			id, b.EndOffset, b.EndLine, b.Sequence, c.RowsDone, c.Inserted, c.Updated, c.Rejected,
			c.Duplicates, s.now()).Scan(&im.Position.Offset, &im.Position.Line, &im.Position.Sequence,
			&im.RowsDone, &im.Inserted, &im.Updated, &im.Rejected, &im.Duplicates, &im.UpdatedAt)
		if err != nil {
			return fmt.Errorf("record batch: %w", err)
		}
		if b.Last {
			st := StateSucceeded
			if b.Error != "" {
				st = StateFailed
			}
			return s.end(ctx, tx, &im, st, b.Error)
		}
		return nil
	})
	return im, err
}

// applyRows validates, stages and upserts the rows of b and records its rejections.
func (s *Service) applyRows(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, im *Import, b Batch) (Counters, error) {
	c := Counters{RowsDone: int64(len(b.Rows) + len(b.Rejections))}
	rejects := append([]Rejection(nil), b.Rejections...)
	reject := func(r Row, reason string) {
		rejects = append(rejects, Rejection{Line: r.Line, Raw: rawLine(r.Fields), Reason: reason})
	}

	emailCol, attrCols := -1, []Column(nil)
	for _, col := range im.Columns {
		if col.Target == TargetEmail {
			emailCol = col.Index
		} else {
			attrCols = append(attrCols, col)
		}
	}
	type candidate struct {
		row   Row
		email string
	}
	var cands []candidate
	var emails []string
	for _, r := range b.Rows {
		if len(r.Fields) != im.ColumnCount {
			reject(r, fmt.Sprintf("the row has %d fields, the header %d", len(r.Fields), im.ColumnCount))
			continue
		}
		addr, err := recipient.NormalizeEmail("email", r.Fields[emailCol])
		if err != nil {
			var verr *recipient.ValidationError
			if errors.As(err, &verr) {
				reject(r, "email: "+verr.Reason)
				continue
			}
			return Counters{}, err
		}
		cands = append(cands, candidate{row: r, email: addr})
		emails = append(emails, addr)
	}

	defs, err := s.definitions(ctx, tx, t)
	if err != nil {
		return Counters{}, err
	}
	var suppressed map[string]bool
	if s.rules.Suppressed != nil && len(emails) > 0 {
		if suppressed, err = s.rules.Suppressed(ctx, tx, t, emails); err != nil {
			return Counters{}, fmt.Errorf("check suppressed addresses: %w", err)
		}
	}
	// The recipients that exist already, and whether this import wrote them (an address seen
	// in an earlier batch of the same file is a duplicate, not an update).
	existing := map[string]bool{}
	if len(emails) > 0 {
		rows, err := tx.Query(ctx, `SELECT email, last_import_id IS NOT DISTINCT FROM $3
			FROM recipient.recipients WHERE domain_id = $1 AND email = ANY ($2)`, t.DomainID, emails, im.ID)
		if err != nil {
			return Counters{}, fmt.Errorf("read existing recipients: %w", err)
		}
		for rows.Next() {
			var e string
			var ours bool
			if err := rows.Scan(&e, &ours); err != nil {
				rows.Close()
				return Counters{}, fmt.Errorf("read existing recipients: %w", err)
			}
			existing[e] = ours
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return Counters{}, fmt.Errorf("read existing recipients: %w", err)
		}
	}

	byEmail := map[string]int{}
	var stage []staged
	for _, cd := range cands {
		if suppressed[cd.email] {
			reject(cd.row, "email: the address was erased and may not be imported again")
			continue
		}
		cells := make(map[string]string, len(attrCols))
		for _, col := range attrCols {
			cells[col.Key()] = cd.row.Fields[col.Index]
		}
		attrs, err := validateAttributes(defs, cells, existingHas(existing, cd.email))
		if err != nil {
			reject(cd.row, err.Error())
			continue
		}
		if i, dup := byEmail[cd.email]; dup {
			// The last row of an address wins; the earlier one counts as a duplicate.
			c.Duplicates++
			stage[i].attrs = attrs
			continue
		}
		byEmail[cd.email] = len(stage)
		stage = append(stage, staged{email: cd.email, attrs: attrs})
	}

	if len(stage) > 0 {
		ins, upd, err := upsert(ctx, tx, t, im.ID, stage)
		if err != nil {
			return Counters{}, err
		}
		var ours int64
		for _, st := range stage {
			if existing[st.email] {
				ours++
			}
		}
		c.Inserted = ins
		c.Duplicates += ours
		c.Updated = upd - ours
	}
	if len(rejects) > 0 {
		if err := insertRejections(ctx, tx, t, im.ID, rejects); err != nil {
			return Counters{}, err
		}
	}
	c.Rejected = int64(len(rejects))
	return c, nil
}

func existingHas(m map[string]bool, email string) bool {
	_, ok := m[email]
	return ok
}

// validateAttributes checks the attribute cells of a row. A new recipient gets complete
// attributes (required fields, defaults); an existing one only the cells the row sets, merged
// into what it has, so a file without a column never resets that attribute.
func validateAttributes(defs fields.Definitions, cells map[string]string, exists bool) (map[string]any, error) {
	if len(cells) == 0 && !exists {
		cells = map[string]string{}
	}
	if !exists {
		return defs.ValidateText(cells)
	}
	patch := make(map[string]any, len(cells))
	for k, v := range cells {
		if strings.TrimSpace(v) == "" {
			continue
		}
		d, ok := defs.Lookup(k)
		if !ok || d.Retired() {
			patch[k] = v // reported by ValidatePatch with the right reason
			continue
		}
		pv, err := d.ParseText(v)
		if err != nil {
			return nil, err
		}
		patch[k] = pv
	}
	if len(patch) == 0 {
		return map[string]any{}, nil
	}
	out, err := defs.ValidatePatch(map[string]any{}, patch)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// upsert copies rows into a staging table of the transaction and upserts them on
// (domain_id, email); it returns how many were inserted and how many existed.
func upsert(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, importID uuid.UUID, rows []staged) (inserted, existed int64, err error) {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE import_staging (email text NOT NULL, attributes jsonb NOT NULL) ON COMMIT DROP`); err != nil {
		return 0, 0, fmt.Errorf("create staging table: %w", err)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"import_staging"}, []string{"email", "attributes"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			return []any{rows[i].email, rows[i].attrs}, nil
		}))
	if err != nil {
		return 0, 0, fmt.Errorf("copy rows to staging: %w", err)
	}
	err = tx.QueryRow(ctx, `WITH up AS (
			INSERT INTO recipient.recipients AS r (company_id, workspace_id, domain_id, email, attributes, last_import_id)
			SELECT $1, $2, $3, email, attributes, $4 FROM import_staging
			ON CONFLICT (domain_id, email) DO UPDATE
				SET attributes = r.attributes || EXCLUDED.attributes,
				    last_import_id = EXCLUDED.last_import_id,
				    updated_at = now()
			RETURNING (xmax = 0) AS inserted
		)
		SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`,
		t.CompanyID, t.WorkspaceID, t.DomainID, importID).Scan(&inserted, &existed)
	if err != nil {
		return 0, 0, fmt.Errorf("upsert recipients: %w", err)
	}
	if _, err := tx.Exec(ctx, `DROP TABLE import_staging`); err != nil {
		return 0, 0, fmt.Errorf("drop staging table: %w", err)
	}
	return inserted, existed, nil
}

func insertRejections(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, importID uuid.UUID, rs []Rejection) error {
	lines := make([]int64, len(rs))
	raws := make([]string, len(rs))
	reasons := make([]string, len(rs))
	for i, r := range rs {
		lines[i], raws[i], reasons[i] = r.Line, strings.ToValidUTF8(strings.ReplaceAll(r.Raw, "\x00", ""), string(utf8.RuneError)), r.Reason
	}
	if _, err := tx.Exec(ctx, `INSERT INTO recipient.import_rejections
			(import_id, line, company_id, workspace_id, domain_id, raw, reason)
		SELECT $1, l, $2, $3, $4, raw, reason FROM unnest($5::bigint[], $6::text[], $7::text[]) AS x (l, raw, reason)
		ON CONFLICT (import_id, line) DO NOTHING`,
		importID, t.CompanyID, t.WorkspaceID, t.DomainID, lines, raws, reasons); err != nil {
		return fmt.Errorf("record rejected rows: %w", err)
	}
	return nil
}
