package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgx/v5"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// CountSlots is the number of counter rows per domain (see migration recipient/000005).
const CountSlots = 16

// where builds the conditions of a list query: the tenant, then f. args holds the values
// already bound; where appends its own and refers to them by position.
type where struct {
	conds []string
	args  []any
}

func newWhere(t tenancy.Tenant) *where {
	return &where{
		conds: []string{"company_id = $1", "workspace_id = $2", "domain_id = $3"},
		args:  []any{t.CompanyID, t.WorkspaceID, t.DomainID},
	}
}

func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string { return strings.Join(w.conds, " AND ") }

// filter adds f's conditions. Equality on a custom field is containment (attributes @>
// '{"key": value}'), which the GIN index on attributes answers; ranges are jsonpath
// comparisons, which are false for a stored value of another JSON type instead of failing.
func (w *where) filter(f recipient.Filter) error {
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	if f.EmailPrefix != "" {
		w.add(`email LIKE ? ESCAPE '\'`, likePrefix(f.EmailPrefix))
	}
	if !f.CreatedAfter.IsZero() {
		w.add("created_at >= ?", f.CreatedAfter)
	}
	if !f.CreatedBefore.IsZero() {
		w.add("created_at < ?", f.CreatedBefore)
	}
	for _, c := range f.Attributes {
		if c.Op == recipient.OpEq {
			b, err := json.Marshal(map[string]any{c.Key: c.Value})
			if err != nil {
				return fmt.Errorf("encode condition on %s: %w", c.Key, err)
			}
			w.add("attributes @> ?::jsonb", string(b))
			continue
		}
		// Keys are lower-case snake_case (fields.ValidateKey), safe inside a quoted path step.
		path := fmt.Sprintf(`$.%q ? (@ %s $v)`, c.Key, c.Op)
		vars, err := json.Marshal(map[string]any{"v": c.Value})
		if err != nil {
			return fmt.Errorf("encode condition on %s: %w", c.Key, err)
		}
		w.add("jsonb_path_exists(attributes, ?::jsonpath, ?::jsonb)", path, string(vars))
	}
	return nil
}

func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}

// List implements recipient.Store.
func (s *Store) List(ctx context.Context, t tenancy.Tenant, q recipient.Query) (recipient.Page, error) {
	var p recipient.Page
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		w := newWhere(t)
		if err := w.filter(q.Filter); err != nil {
			return err
		}
		total, exact, err := s.count(ctx, tx, t, q.Filter, w)
		if err != nil {
			return err
		}
		p.Total, p.TotalExact = total, exact
		if q.After != nil {
			w.add("(created_at, id) > (?, ?)", q.After.CreatedAt, q.After.ID)
		}
		w.args = append(w.args, q.Limit+1)
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM recipient.recipients
			WHERE `+w.String()+`
			ORDER BY created_at, id
			LIMIT $`+strconv.Itoa(len(w.args)), w.args...)
		if err != nil {
			return err
		}
		p.Recipients, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (recipient.Recipient, error) { return scan(r) })
		if err != nil {
			return err
		}
		if len(p.Recipients) > q.Limit {
			p.Recipients = p.Recipients[:q.Limit]
			last := p.Recipients[len(p.Recipients)-1]
			p.Next = &recipient.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		return nil
	})
	if err != nil {
		return recipient.Page{}, fmt.Errorf("list recipients: %w", mapError(err))
	}
	return p, nil
}

// count answers how many recipients match: from the domain's counters when f filters on the
// status at most, else by counting matching rows up to recipient.CountCap.
func (s *Store) count(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, f recipient.Filter, w *where) (int64, bool, error) {
	if f.StatusOnly() {
		c, err := DomainCountsTx(ctx, tx, t)
		if err != nil {
			return 0, false, err
		}
		return c.Of(f.Status), true, nil
	}
	var n int64
	args := append(append([]any{}, w.args...), recipient.CountCap+1)
	err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM recipient.recipients
		WHERE `+w.String()+` LIMIT $`+strconv.Itoa(len(args))+`) AS capped`, args...).Scan(&n)
	if err != nil {
		return 0, false, fmt.Errorf("count recipients: %w", err)
	}
	if n > recipient.CountCap {
		return recipient.CountCap, false, nil
	}
	return n, true, nil
}

// Counts are a domain's recipients in total and per status.
type Counts struct {
	Total, Subscribed, Unsubscribed, Bounced, Complained int64
}

// Of returns the count of status s, or the total for "".
func (c Counts) Of(s recipient.Status) int64 {
	switch s {
	case recipient.StatusSubscribed:
		return c.Subscribed
	case recipient.StatusUnsubscribed:
		return c.Unsubscribed
	case recipient.StatusBounced:
		return c.Bounced
	case recipient.StatusComplained:
		return c.Complained
	}
	return c.Total
}

// DomainCountsTx returns t's domain's counts from recipient.domain_counts, inside a
// transaction scoped to t. The first call for a domain counts its rows once and writes the
// baseline under the domain's advisory lock (see migration recipient/000005), which the
// triggers on recipient.recipients take shared.
func DomainCountsTx(ctx context.Context, tx pgx.Tx, t tenancy.Tenant) (Counts, error) {
	c, ok, err := readCounts(ctx, tx, t)
	if err != nil || ok {
		return c, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('recipient.domain_counts:' || $1::text, 0))`, t.DomainID); err != nil {
		return Counts{}, fmt.Errorf("lock domain counts: %w", err)
	}
	// Another transaction may have written the baseline while this one waited.
	if c, ok, err = readCounts(ctx, tx, t); err != nil || ok {
		return c, err
	}
	err = tx.QueryRow(ctx, `SELECT count(*),
			count(*) FILTER (WHERE status = 'subscribed'),
			count(*) FILTER (WHERE status = 'unsubscribed'),
			count(*) FILTER (WHERE status = 'bounced'),
			count(*) FILTER (WHERE status = 'complained')
		FROM recipient.recipients WHERE `+tenantFilter3,
		t.CompanyID, t.WorkspaceID, t.DomainID).Scan(&c.Total, &c.Subscribed, &c.Unsubscribed, &c.Bounced, &c.Complained)
	if err != nil {
		return Counts{}, fmt.Errorf("count domain recipients: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO recipient.domain_counts
		(company_id, workspace_id, domain_id, slot, total, subscribed, unsubscribed, bounced, complained)
		SELECT $1, $2, $3, slot,
			CASE WHEN slot = 0 THEN $4::bigint ELSE 0 END,
			CASE WHEN slot = 0 THEN $5::bigint ELSE 0 END,
			CASE WHEN slot = 0 THEN $6::bigint ELSE 0 END,
			CASE WHEN slot = 0 THEN $7::bigint ELSE 0 END,
			CASE WHEN slot = 0 THEN $8::bigint ELSE 0 END
		FROM generate_series(0, $9::bigint - 1) AS slot
		ON CONFLICT (domain_id, slot) DO NOTHING`,
		t.CompanyID, t.WorkspaceID, t.DomainID, c.Total, c.Subscribed, c.Unsubscribed, c.Bounced, c.Complained, CountSlots)
	if err != nil {
		return Counts{}, fmt.Errorf("write domain counts baseline: %w", err)
	}
	return c, nil
}

// tenantFilter3 is tenantFilter with the tenant at $1..$3.
const tenantFilter3 = `company_id = $1 AND workspace_id = $2 AND domain_id = $3`

func readCounts(ctx context.Context, tx pgx.Tx, t tenancy.Tenant) (Counts, bool, error) {
	var (
		c     Counts
		slots int
	)
	err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(total), 0), coalesce(sum(subscribed), 0),
			coalesce(sum(unsubscribed), 0), coalesce(sum(bounced), 0), coalesce(sum(complained), 0)
		FROM recipient.domain_counts WHERE `+tenantFilter3,
		t.CompanyID, t.WorkspaceID, t.DomainID).Scan(&slots, &c.Total, &c.Subscribed, &c.Unsubscribed, &c.Bounced, &c.Complained)
	if err != nil {
		return Counts{}, false, fmt.Errorf("read domain counts: %w", err)
	}
	return c, slots > 0, nil
}
