// Package store writes engagement events with pgx: a batch is copied into a staging table,
// inserted from there skipping known events, and the recipient status jobs of the new rows are
// enqueued in the same transaction, so a job exists if and only if its event row does.
//
// The insert from the staging table is optimistic: almost every batch is new events, so it
// first runs as a plain INSERT, in a savepoint; only when that meets an event already stored
// (a retried batch) does it roll back to the savepoint and insert again with ON CONFLICT DO
// NOTHING RETURNING, which names the rows it stored. The plain insert costs about three
// quarters of the other (no speculative insertion, no rows sent back).
//
// Where the rows go is decided per batch by the flag events_partitioned_storage: on, the
// time-partitioned events.engagement_events, whose key is (id, created_at) with created_at the
// event's own time as its producer gave it (an event's id and time are fixed by its producer,
// so a retried event is the same row); off, the legacy events.email_events, keyed by id alone,
// as the previous release writes it. The previous release never reads either table, so there
// is no dual write: the backfill events_engagement_events copies the legacy rows over.
//
// On the partitioned storage a batch's opens and clicks are classified as machine traffic or
// not before they are written (events.ClassifyMachine), with the deliveries and recent clicks
// of their recipients looked up in the same transaction, and the verdict is stored in
// is_machine. The legacy table has no column for it: there nothing is classified.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/machine"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
)

// stagingTable is a temporary table: each connection has its own, so concurrent batches
// never see each other's rows. It is made once per connection and emptied at every commit
// (ON COMMIT DELETE ROWS; a rollback discards its rows as any other): made and dropped in
// every transaction, it cost catalog writes and a new plan of the insert per batch.
const stagingTable = "email_events_staging"

// stagingColumns are the columns of stagingTable, in the order a batch is copied in.
var stagingColumns = [...]string{
	"id", "type", "campaign_id", "recipient_id", "occurred_at", "user_agent", "ip", "url", "bounce_class", "is_machine",
}

const createStaging = `CREATE TEMP TABLE IF NOT EXISTS ` + stagingTable + ` (
	id           uuid        NOT NULL,
	type         text        NOT NULL,
	campaign_id  uuid,
	recipient_id uuid,
	occurred_at  timestamptz NOT NULL,
	user_agent   text        NOT NULL,
	ip           text        NOT NULL,
	url          text        NOT NULL,
	bounce_class text        NOT NULL,
	is_machine   boolean     NOT NULL
) ON COMMIT DELETE ROWS`

// insertSQL is the insert of a storage: all the staged rows (plain), or those not stored yet,
// named (dedup).
type insertSQL struct{ plain, dedup string }

// The tenant ids come from the verified request, never from the events themselves. The
// legacy table has no is_machine column.
const insertLegacyPlain = `INSERT INTO events.email_events
	(id, company_id, workspace_id, domain_id, type, campaign_id, recipient_id, occurred_at,
	 user_agent, ip, url, bounce_class)
SELECT id, $1, $2, $3, type, campaign_id, recipient_id, occurred_at,
	 user_agent, ip, url, bounce_class
FROM ` + stagingTable

var insertLegacy = insertSQL{
	plain: insertLegacyPlain,
	dedup: insertLegacyPlain + `
ON CONFLICT (id) DO NOTHING
RETURNING id, type, recipient_id, bounce_class`,
}

// The partitioned storage takes the event's time as created_at, the partition key.
const insertPartitionedPlain = `INSERT INTO events.engagement_events
	(id, company_id, workspace_id, domain_id, type, campaign_id, recipient_id, created_at,
	 user_agent, ip, url, bounce_class, is_machine)
SELECT id, $1, $2, $3, type, campaign_id, recipient_id, occurred_at,
	 user_agent, ip, url, bounce_class, is_machine
FROM ` + stagingTable

var insertPartitioned = insertSQL{
	plain: insertPartitionedPlain,
	dedup: insertPartitionedPlain + `
ON CONFLICT (id, created_at) DO NOTHING
RETURNING id, type, recipient_id, bounce_class`,
}

// The savepoint of the optimistic insert.
const (
	insertBeginSQL    = `SAVEPOINT insert_plain`
	insertRollbackSQL = `ROLLBACK TO SAVEPOINT insert_plain`
	insertReleaseSQL  = `RELEASE SAVEPOINT insert_plain`
)

// historySQL reads what the timing rules of libs/machine need about the pairs of a batch
// (events.Lookups): the delivered, sent and click events of their recipients ($2) in the
// domain ($1) from the earliest bound of the batch ($3) on, of their campaigns ($4), at most
// $5 of them; the store keeps those within each pair's bounds. It is one index scan of the
// recipient index (domain_id, recipient_id, created_at), one range per recipient, in the
// partitions from the bound on: with a generic plan (historyBeginSQL) the planner knows
// neither the recipients nor the bound and never prefers a scan of the domain's recent
// events (engagement_events_domain_id_created_at_idx), which a batch of many recipients
// could otherwise look cheaper by. Row-level security keeps it to the tenant.
const historySQL = `SELECT e.campaign_id, e.recipient_id, e.type, e.created_at, e.url
FROM events.engagement_events AS e
WHERE e.domain_id = $1
	AND e.recipient_id = ANY ($2::uuid[])
	AND e.created_at >= $3
	AND e.campaign_id = ANY ($4::uuid[])
	AND e.type IN ('delivered', 'sent', 'click')
LIMIT $5`

// The look-up runs in a savepoint, which leaves the transaction usable after a failure,
// with settings of its own made with SET LOCAL and undone by rolling back to the savepoint:
// a statement timeout, and a generic plan (the same plan every time, made once per
// connection, see historySQL). One round trip each way (the simple protocol takes several
// statements).
const (
	historySettingsSQL = `SET LOCAL plan_cache_mode = force_generic_plan`
	historyBeginSQL    = `SAVEPOINT machine_history; SET LOCAL statement_timeout = %d; ` + historySettingsSQL
	historyEndSQL      = `ROLLBACK TO SAVEPOINT machine_history; RELEASE SAVEPOINT machine_history`
)

// Bounds of the look-up.
const (
	// DefaultHistoryTimeout is the longest the look-up of a batch may take; past it the
	// batch is classified by user agent only.
	DefaultHistoryTimeout = 200 * time.Millisecond
	// historyPerPair bounds the events read, per pair of the batch: a delivery, a sent
	// event and the clicks of a burst need far fewer.
	historyPerPair = 50
)

// createPartitions makes sure the weekly partitions of a time range exist; events-ingest may
// call it (SECURITY DEFINER, see the events migrations), and does only when an insert finds
// no partition for an event: the worker creates them ahead of time.
const createPartitions = `SELECT count(*) FROM events.create_engagement_partitions($1, $2)`

// Store implements events.Store on PostgreSQL.
type Store struct {
	db       tenancy.Beginner
	inserter *jobs.Inserter
	flags    flags.Provider
	rules    machine.Rules
	// historyTimeout bounds the look-up of a batch's history.
	historyTimeout time.Duration
	// historySQL is the look-up; tests replace it.
	historySQL string
	// noMarking skips classification (benchmarks compare with it).
	noMarking bool
	metrics   *Metrics
}

// Look-up results, the values of the label result of herald_ingest_machine_lookups_total.
const (
	lookupOK      = "ok"
	lookupTimeout = "timeout"
	lookupFailed  = "failed"
)

// Metrics counts what the store does besides writing rows: the machine-traffic look-ups of
// the batches it writes, by result. A look-up that times out or fails costs no event (the
// batch is classified by its user agents alone), so only this counter tells that the timing
// rules were skipped.
type Metrics struct {
	lookups *prometheus.CounterVec
}

// NewMetrics returns the store's metrics, registered with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_ingest_machine_lookups_total",
		Help: "Machine-traffic look-ups of written batches, by result: ok, timeout (past its statement " +
			"timeout) or failed; a batch whose look-up did not answer is classified by user agent only.",
	}, []string{"result"})}
	for _, r := range []string{lookupOK, lookupTimeout, lookupFailed} {
		m.lookups.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(m.lookups); err != nil {
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return m, nil
}

// count counts a look-up that ended with err (nil: it answered) while ctx was the batch's.
func (m *Metrics) count(ctx context.Context, err error) {
	if m == nil {
		return
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		m.lookups.WithLabelValues(lookupOK).Inc()
	case ctx.Err() == nil && errors.As(err, &pgErr) && pgErr.Code == pgerrcode.QueryCanceled:
		m.lookups.WithLabelValues(lookupTimeout).Inc()
	default:
		m.lookups.WithLabelValues(lookupFailed).Inc()
	}
}

// Option configures a Store.
type Option func(*Store)

// WithFlags checks events_partitioned_storage with p. Without it the flag is off, its
// registry default: events go to the legacy table.
func WithFlags(p flags.Provider) Option {
	return func(s *Store) { s.flags = p }
}

// WithMetrics counts the look-ups with m.
func WithMetrics(m *Metrics) Option {
	return func(s *Store) { s.metrics = m }
}

// New returns a store on db (a pool) that enqueues jobs with inserter.
func New(db tenancy.Beginner, inserter *jobs.Inserter, opts ...Option) *Store {
	s := &Store{
		db: db, inserter: inserter, rules: machine.DefaultRules(),
		historyTimeout: DefaultHistoryTimeout, historySQL: historySQL,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Partitioned reports whether the events of t go to the time-partitioned table.
func (s *Store) Partitioned(ctx context.Context, t tenancy.Tenant) bool {
	if s.flags == nil {
		return false
	}
	return s.flags.Enabled(ctx, flags.EventsPartitionedStorage, flags.Scope{CompanyID: t.CompanyID, WorkspaceID: t.WorkspaceID})
}

// Insert implements events.Store.
func (s *Store) Insert(ctx context.Context, t tenancy.Tenant, evs []events.Event) (int, error) {
	ids, err := s.InsertIDs(ctx, t, evs)
	return len(ids), err
}

// InsertIDs implements events.IDStore: it returns the ids of the events newly stored, so
// that the batcher tells each caller exactly which of its events were duplicates.
func (s *Store) InsertIDs(ctx context.Context, t tenancy.Tenant, evs []events.Event) ([]uuid.UUID, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	if !s.Partitioned(ctx, t) {
		return s.insert(ctx, t, evs, false)
	}
	ids, err := s.insert(ctx, t, evs, true)
	if !noPartition(err) {
		return ids, err
	}
	// The transaction rolled back whole: make the partitions and write the batch again.
	if err := s.createPartitions(ctx, evs); err != nil {
		return nil, err
	}
	return s.insert(ctx, t, evs, true)
}

// insert writes evs in one transaction, to the partitioned table, after classifying them,
// or to the legacy one, and returns the ids of those it stored.
func (s *Store) insert(ctx context.Context, t tenancy.Tenant, evs []events.Event, partitioned bool) ([]uuid.UUID, error) {
	sql := insertLegacy
	if partitioned {
		sql = insertPartitioned
	}
	var inserted []uuid.UUID
	err := tenancy.InTx(ctx, s.db, t, func(tx pgx.Tx) error {
		if partitioned && !s.noMarking {
			if err := events.ClassifyMachine(s.rules, evs, func(ls []events.Lookup) (*events.History, error) {
				return s.history(ctx, tx, t, ls)
			}); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, createStaging); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		buf := copyBuffers.Get().(*[]byte)
		*buf = encodeStaging((*buf)[:0], evs)
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(*buf), copyStagingSQL)
		if err != nil {
			// Not back to the pool: on a broken connection pgconn may return before its
			// sending goroutine stopped reading the buffer.
			return fmt.Errorf("copy events: %w", err)
		}
		copyBuffers.Put(buf)
		var params []river.InsertManyParams
		inserted, params, err = s.insertStaged(ctx, tx, t, sql, evs)
		if err != nil {
			return err
		}
		if len(params) > 0 {
			if _, err := s.inserter.InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("enqueue recipient status jobs: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return inserted, nil
}

// insertStaged inserts the staged rows of evs with sql, and returns the ids stored and the
// status jobs of those: all of evs if none was stored before, else those the insert with ON
// CONFLICT names.
func (s *Store) insertStaged(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, sql insertSQL, evs []events.Event) ([]uuid.UUID, []river.InsertManyParams, error) {
	if _, err := tx.Exec(ctx, insertBeginSQL); err != nil {
		return nil, nil, fmt.Errorf("insert events: %w", err)
	}
	_, err := tx.Exec(ctx, sql.plain, t.CompanyID, t.WorkspaceID, t.DomainID)
	if err == nil {
		if _, err := tx.Exec(ctx, insertReleaseSQL); err != nil {
			return nil, nil, fmt.Errorf("insert events: %w", err)
		}
		ids := make([]uuid.UUID, len(evs))
		var params []river.InsertManyParams
		for i, e := range evs {
			ids[i] = e.ID
			if p, ok := statusJob(t, e.ID, e.Type, e.RecipientID, e.BounceClass); ok {
				params = append(params, p)
			}
		}
		return ids, params, nil
	}
	if !duplicate(err) {
		return nil, nil, fmt.Errorf("insert events: %w", err)
	}
	// Some were stored before: insert the others.
	if _, err := tx.Exec(ctx, insertRollbackSQL); err != nil {
		return nil, nil, fmt.Errorf("insert events: %w", err)
	}
	rows, err := tx.Query(ctx, sql.dedup, t.CompanyID, t.WorkspaceID, t.DomainID)
	if err != nil {
		return nil, nil, fmt.Errorf("insert events: %w", err)
	}
	var (
		ids           []uuid.UUID
		params        []river.InsertManyParams
		id, recipient pgtype.UUID
		typ           string
		bounceClass   string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &typ, &recipient, &bounceClass}, func() error {
		ids = append(ids, id.Bytes)
		if p, ok := statusJob(t, id.Bytes, events.Type(typ), uuid.NullUUID{UUID: recipient.Bytes, Valid: recipient.Valid}, bounceClass); ok {
			params = append(params, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("insert events: %w", err)
	}
	return ids, params, nil
}

// statusJob is the recipient status job of a stored event, if its type changes the status of
// its recipient.
func statusJob(t tenancy.Tenant, id uuid.UUID, typ events.Type, recipient uuid.NullUUID, bounceClass string) (river.InsertManyParams, bool) {
	status, reason, ok := events.StatusChange(typ, bounceClass)
	if !ok || !recipient.Valid {
		return river.InsertManyParams{}, false
	}
	return river.InsertManyParams{Args: jobs.RecipientStatusArgs{
		CompanyID:   t.CompanyID,
		WorkspaceID: t.WorkspaceID,
		DomainID:    t.DomainID,
		RecipientID: recipient.UUID,
		EventID:     id,
		Status:      status,
		Reason:      reason,
	}}, true
}

// history looks up, in tx, what the timing rules need about the pairs ls of a batch, in one
// query bounded by historyTimeout, inside a savepoint. A failed or timed-out look-up is a nil
// history (classify by user agent only), not an error: an error means tx itself is unusable
// (the savepoint could not be made or rolled back to), and fails the batch as any statement
// would.
func (s *Store) history(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, ls []events.Lookup) (*events.History, error) {
	byPair := make(map[events.Pair]events.Lookup, len(ls))
	recipients := make([]pgtype.UUID, 0, len(ls))
	var campaigns []pgtype.UUID
	seen := map[uuid.UUID]bool{}
	from := ls[0].From
	for _, l := range ls {
		byPair[l.Pair] = l
		recipients = append(recipients, pgUUID(l.RecipientID))
		if !seen[l.CampaignID] {
			seen[l.CampaignID] = true
			campaigns = append(campaigns, pgUUID(l.CampaignID))
		}
		if l.From.Before(from) {
			from = l.From
		}
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(historyBeginSQL, max(1, s.historyTimeout.Milliseconds()))); err != nil {
		return nil, fmt.Errorf("look up the history of the batch: %w", err)
	}
	h := events.NewHistory()
	lookupErr := func() error {
		rows, err := tx.Query(ctx, s.historySQL, t.DomainID, recipients, from, campaigns, historyPerPair*len(ls))
		if err != nil {
			return err
		}
		defer rows.Close()
		var (
			p   events.Pair
			typ string
			at  time.Time
			url string
		)
		_, err = pgx.ForEachRow(rows, []any{&p.CampaignID, &p.RecipientID, &typ, &at, &url}, func() error {
			if l, ok := byPair[p]; ok && l.Wants(events.Type(typ), at) {
				h.Add(p, events.Type(typ), at, url)
			}
			return nil
		})
		return err
	}()
	if _, err := tx.Exec(ctx, historyEndSQL); err != nil {
		return nil, fmt.Errorf("look up the history of the batch: %w", err)
	}
	s.metrics.count(ctx, lookupErr)
	if lookupErr != nil {
		return nil, nil
	}
	return h, nil
}

// createPartitions creates the partitions that the times of evs need, in a transaction of
// its own: one call per week (ISO weeks start on Monday, as the partitions do).
func (s *Store) createPartitions(ctx context.Context, evs []events.Event) error {
	type week struct{ year, week int }
	seen := map[week]bool{}
	err := pgx.BeginFunc(ctx, beginner{s.db}, func(tx pgx.Tx) error {
		for _, e := range evs {
			y, w := e.OccurredAt.UTC().ISOWeek()
			if seen[week{y, w}] {
				continue
			}
			seen[week{y, w}] = true
			if _, err := tx.Exec(ctx, createPartitions, e.OccurredAt, e.OccurredAt); err != nil {
				return fmt.Errorf("create the partition for %s: %w", e.OccurredAt.UTC().Format(time.RFC3339), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create partitions: %w", err)
	}
	return nil
}

// duplicate reports whether err is PostgreSQL's refusal of a row whose key is stored.
func duplicate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation
}

// noPartition reports whether err is PostgreSQL's refusal of a row for which the
// partitioned table has no partition.
func noPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.CheckViolation && strings.HasPrefix(pgErr.Message, "no partition of relation")
}

// pgUUID is a uuid as pgx encodes and decodes it in binary directly. uuid.UUID and
// uuid.NullUUID go through their driver.Valuer (a string to parse back) after pgx has tried
// and given up on other plans, building an error each time: for arrays of thousands of ids
// that adds up.
func pgUUID(id uuid.UUID) pgtype.UUID {
	return pgtype.UUID{Bytes: id, Valid: true}
}

// beginner adapts a tenancy.Beginner to pgx.BeginFunc.
type beginner struct{ db tenancy.Beginner }

// Begin starts a transaction with the default options.
func (b beginner) Begin(ctx context.Context) (pgx.Tx, error) {
	return b.db.BeginTx(ctx, pgx.TxOptions{})
}
