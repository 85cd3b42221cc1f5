package migrations

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// StorageStep names the storage setup in a plan (Migration.Schema): it runs
// after River's migrations and before the seed data.
const StorageStep = "storage"

// StorageMode is how events.engagement_events is time-partitioned.
type StorageMode string

// The storage modes.
const (
	// StoragePartitioned is plain PostgreSQL: native weekly range partitions,
	// created ahead of time by the storage setup and the worker, dropped after
	// the retention period by the worker; the worker keeps the daily rollup.
	StoragePartitioned StorageMode = "partitioned"
	// StorageTimescale is TimescaleDB: a hypertable with 7-day chunks and a
	// retention policy (see timescale.go).
	StorageTimescale StorageMode = "timescaledb"
)

// Storage timing, shared with the worker's maintenance jobs.
const (
	// PartitionsBehind is how far back the setup makes sure partitions exist,
	// so that late events of the last days always find theirs.
	PartitionsBehind = 7 * 24 * time.Hour
	// PartitionsAhead is how far ahead partitions are created.
	PartitionsAhead = 28 * 24 * time.Hour
	// Retention is how long events are kept.
	Retention = 90 * 24 * time.Hour
)

// timescaleUsableSQL says whether TimescaleDB can be used on this database:
// installed in it, or available on the server and preloaded (CREATE
// EXTENSION fails without shared_preload_libraries). The migration that
// creates events.engagement_events (events/000003) makes the same test; keep
// the two alike. Reading shared_preload_libraries takes a superuser or
// pg_read_all_settings: a role without them is told "not preloaded".
const timescaleUsableSQL = `
SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'timescaledb')
	OR (EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'timescaledb')
		AND coalesce((SELECT setting FROM pg_catalog.pg_settings WHERE name = 'shared_preload_libraries'), '')
			~ '(^|[\s,])"?timescaledb"?([\s,]|$)')`

// storageMode reads the mode from the table the migration created: a
// partitioned table (relkind p) is StoragePartitioned, a plain one is meant
// to be a hypertable. ok is false when the table does not exist yet; then
// mode is what the migration will choose.
func storageMode(ctx context.Context, q querier) (mode StorageMode, ok bool, err error) {
	var kind *string
	if err := q.QueryRow(ctx, `SELECT c.relkind::text FROM pg_catalog.pg_class AS c
		WHERE c.oid = to_regclass('events.engagement_events')`).Scan(&kind); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", false, fmt.Errorf("read the kind of events.engagement_events: %w", err)
	}
	if kind != nil {
		if *kind == "p" {
			return StoragePartitioned, true, nil
		}
		return StorageTimescale, true, nil
	}
	var usable bool
	if err := q.QueryRow(ctx, timescaleUsableSQL).Scan(&usable); err != nil {
		return "", false, fmt.Errorf("look for timescaledb: %w", err)
	}
	if usable {
		return StorageTimescale, false, nil
	}
	return StoragePartitioned, false, nil
}

// partitionWindow is the range of event times the setup keeps partitioned at
// now.
func partitionWindow(now time.Time) (from, to time.Time) {
	return now.Add(-PartitionsBehind), now.Add(PartitionsAhead)
}

// PartitionName is the name of the weekly partition of
// events.engagement_events that holds t: engagement_events_pYYYYMMDD after
// the Monday (UTC) that starts its week.
func PartitionName(t time.Time) string {
	return "engagement_events_p" + WeekStart(t).Format("20060102")
}

// WeekStart is the Monday 00:00 UTC that starts the week of t, the lower
// bound of its partition.
func WeekStart(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	offset := (int(day.Weekday()) + 6) % 7 // Monday 0 ... Sunday 6
	return day.AddDate(0, 0, -offset)
}

// missingPartitions lists the weekly partitions of the window at now that do
// not exist yet, oldest first.
func missingPartitions(ctx context.Context, q querier, now time.Time) ([]string, error) {
	from, to := partitionWindow(now)
	var missing []string
	for week := WeekStart(from); !week.After(to); week = week.AddDate(0, 0, 7) {
		name := PartitionName(week)
		var exists bool
		if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "events."+name).Scan(&exists); err != nil {
			return nil, fmt.Errorf("look up events.%s: %w", name, err)
		}
		if !exists {
			missing = append(missing, name)
		}
	}
	return missing, nil
}

// setupStorage is the storage step of Up, run under the migration lock after
// River's migrations: on the partitioned table it makes sure of the recipient
// index (setupRecipientIndex), then creates the partitions of the window at
// now (the worker keeps them going), which get the index as they are
// attached; on TimescaleDB it runs the TimescaleDB setup, the hypertable's
// recipient index included. Both are idempotent: a second run changes
// nothing.
func setupStorage(ctx context.Context, conn *pgx.Conn, now time.Time, log *zap.Logger) error {
	mode, ok, err := storageMode(ctx, conn)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("storage setup: events.engagement_events does not exist: the events migrations did not run")
	}
	log = log.With(zap.String("step", StorageStep), zap.String("mode", string(mode)))
	start := time.Now()
	switch mode {
	case StorageTimescale:
		if err := setupTimescale(ctx, conn, true); err != nil {
			return err
		}
		if err := setupTimescaleIndex(ctx, conn); err != nil {
			return err
		}
		log.Info("storage set up", zap.Duration("duration", time.Since(start)))
		return nil
	default:
		built, err := setupRecipientIndex(ctx, conn, log)
		if err != nil {
			return err
		}
		from, to := partitionWindow(now)
		rows, err := conn.Query(ctx, "SELECT events.create_engagement_partitions($1, $2)", from, to)
		if err != nil {
			return fmt.Errorf("storage setup: create partitions: %w", err)
		}
		created, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("storage setup: create partitions: %w", err)
		}
		log.Info("storage set up", zap.Strings("partitions_created", created), zap.Strings("recipient_index_built", built),
			zap.Time("from", WeekStart(from)), zap.Time("to", WeekStart(to).AddDate(0, 0, 7)),
			zap.Duration("duration", time.Since(start)))
		return nil
	}
}

// planStorage says what setupStorage would do at now, as one plan entry, or
// nothing when it would change nothing.
func planStorage(ctx context.Context, q rowsQuerier, now time.Time) ([]Migration, error) {
	mode, ok, err := storageMode(ctx, q)
	if err != nil {
		return nil, err
	}
	if mode == StorageTimescale {
		todo, err := timescalePending(ctx, q, ok)
		if err != nil || len(todo) == 0 {
			return nil, err
		}
		return []Migration{{Schema: StorageStep, File: string(StorageTimescale) + ": " + joinSteps(todo)}}, nil
	}
	from, to := partitionWindow(now)
	what := fmt.Sprintf("weekly partitions of events.engagement_events from %s to %s",
		WeekStart(from).Format(time.DateOnly), WeekStart(to).AddDate(0, 0, 7).Format(time.DateOnly))
	if !ok {
		// The table comes with the events migrations, the index with its first storage
		// setup: created on the table before any partition, each partition gets it
		// when attached.
		return []Migration{{Schema: StorageStep, File: string(StoragePartitioned) + ": " + what}}, nil
	}
	var todo []string
	parent, lacking, err := recipientIndexPending(ctx, q)
	if err != nil {
		return nil, err
	}
	if !parent || len(lacking) > 0 {
		todo = append(todo, fmt.Sprintf("index %s on events.engagement_events (%s), built concurrently on %d partitions",
			RecipientIndex, recipientIndexColumns, len(lacking)))
	}
	missing, err := missingPartitions(ctx, q, now)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		todo = append(todo, fmt.Sprintf("%s (%d missing)", what, len(missing)))
	}
	if len(todo) == 0 {
		return nil, nil
	}
	return []Migration{{Schema: StorageStep, File: string(StoragePartitioned) + ": " + joinSteps(todo)}}, nil
}

// StorageState is what StorageStatus reports.
type StorageState struct {
	// Mode is the storage mode; empty before the events migrations ran.
	Mode StorageMode
	// Partitions lists the weekly partitions, oldest first (partitioned mode).
	Partitions []string
	// Hypertable is true once the table is a hypertable with its retention
	// policy and recipient index (TimescaleDB mode).
	Hypertable bool
}

// StorageStatus reports how events are stored, for `migrate status`. It only
// reads.
func StorageStatus(ctx context.Context, databaseURL string) (StorageState, error) {
	if _, err := parseDatabaseURL(databaseURL); err != nil {
		return StorageState{}, err
	}
	pool, err := newPool(ctx, databaseURL)
	if err != nil {
		return StorageState{}, err
	}
	defer pool.Close()
	mode, ok, err := storageMode(ctx, pool)
	if err != nil || !ok {
		return StorageState{}, err
	}
	st := StorageState{Mode: mode}
	if mode == StorageTimescale {
		todo, err := timescalePending(ctx, pool, true)
		if err != nil {
			return StorageState{}, err
		}
		st.Hypertable = len(todo) == 0
		return st, nil
	}
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_catalog.pg_inherits AS i
		JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events.engagement_events'::regclass ORDER BY 1`)
	if err != nil {
		return StorageState{}, fmt.Errorf("list partitions: %w", err)
	}
	if st.Partitions, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return StorageState{}, fmt.Errorf("list partitions: %w", err)
	}
	return st, nil
}

// The recipient index of events.engagement_events: a recipient's events in
// time order within a domain. events-ingest reads the recent events of a
// batch's recipients with it (machine traffic), a recipient's timeline reads
// it newest first. It is made by the storage setup rather than a migration,
// one part at a time: partition by partition (whose names depend on the
// date) on the partitioned table, each built concurrently, without blocking
// writes; chunk by chunk on a hypertable, where writes to the chunk being
// indexed, the current one included, wait for its build (timescale.go).
const (
	// RecipientIndex is the index's name on events.engagement_events.
	RecipientIndex = "engagement_events_domain_id_recipient_id_created_at_idx"
	// recipientIndexColumns are its columns, in this order: the domain first,
	// as on every hot table, and the time last, so that a recipient's events
	// come sorted either way.
	recipientIndexColumns = "domain_id, recipient_id, created_at"
	// maxIdentifier is PostgreSQL's longest name (NAMEDATALEN - 1).
	maxIdentifier = 63
)

// recipientIndexParentSQL creates the index on the partitioned table alone
// (ON ONLY): instant, it builds nothing. It stays invalid while a partition
// has no index attached to it; a partition attached afterwards (by
// events.create_engagement_partitions) gets one built as it is attached.
const recipientIndexParentSQL = `CREATE INDEX IF NOT EXISTS ` + RecipientIndex +
	` ON ONLY events.engagement_events (` + recipientIndexColumns + `)`

// lackingRecipientIndexSQL lists the partitions that have no index attached
// to the recipient index ($1, qualified; all of them while it does not exist).
const lackingRecipientIndexSQL = `SELECT c.relname
FROM pg_catalog.pg_inherits AS i
JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events.engagement_events'::regclass
	AND NOT EXISTS (
		SELECT FROM pg_catalog.pg_inherits AS ii
		JOIN pg_catalog.pg_index AS x ON x.indexrelid = ii.inhrelid
		WHERE ii.inhparent = to_regclass($1) AND x.indrelid = c.oid)
ORDER BY c.relname`

// indexValidSQL reads whether the index $1 (qualified) is valid; no row when
// it does not exist.
const indexValidSQL = `SELECT x.indisvalid FROM pg_catalog.pg_index AS x WHERE x.indexrelid = to_regclass($1)`

// storageSessionSQL sets the session of the storage setup's index builds as
// a migration file with CREATE INDEX CONCURRENTLY would (ZD008, ZD009): lock
// waits fail after 5 s rather than stall traffic behind them, and a build may
// take as long as it needs.
const (
	storageSessionSQL      = `SET lock_timeout = '5s'; SET statement_timeout = 0`
	storageSessionResetSQL = `RESET lock_timeout; RESET statement_timeout`
)

// withIndexSession runs fn in the session of the storage setup's index
// builds (storageSessionSQL) and resets the session after it, even when ctx
// is done, as conn goes on to other steps.
func withIndexSession(ctx context.Context, conn *pgx.Conn, fn func() error) (err error) {
	if _, err := conn.Exec(ctx, storageSessionSQL); err != nil {
		return fmt.Errorf("storage setup: %w", err)
	}
	defer func() {
		if _, rerr := conn.Exec(context.WithoutCancel(ctx), storageSessionResetSQL); rerr != nil && err == nil {
			err = fmt.Errorf("storage setup: %w", rerr)
		}
	}()
	return fn()
}

// dropIfInvalid reads whether the index (qualified) exists and is valid, and
// runs drop, a DROP INDEX ... IF EXISTS of it, when it exists but is invalid:
// left over by an interrupted build, it is unusable, and CREATE INDEX IF NOT
// EXISTS would keep it. valid says whether a valid index of that name is
// there.
func dropIfInvalid(ctx context.Context, conn *pgx.Conn, index, drop string) (valid bool, err error) {
	var v *bool
	if err := conn.QueryRow(ctx, indexValidSQL, index).Scan(&v); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("look up %s: %w", index, err)
	}
	if v != nil && !*v {
		if _, err := conn.Exec(ctx, drop); err != nil {
			return false, fmt.Errorf("drop the invalid %s: %w", index, err)
		}
		return false, nil
	}
	return v != nil, nil
}

// storageSchemaSQL is the SQL of the storage setup that shapes the schema
// beyond the partitions, for Fingerprint.
func storageSchemaSQL() string {
	return recipientIndexParentSQL + "\x00" + recipientIndexColumns + "\x00" + timescaleIndex.sql
}

// RecipientIndexOf is the name of the recipient index of partition: the name
// PostgreSQL gives the index it builds when a partition is attached
// (<partition>_<columns>_idx, the longer of the two parts cut until the whole
// fits in 63 bytes), so that the partitions built by the setup and those
// attached later are named alike.
func RecipientIndexOf(partition string) string {
	const label = "idx"
	name1, name2 := partition, strings.ReplaceAll(recipientIndexColumns, ", ", "_")
	avail := maxIdentifier - len(label) - 2
	n1, n2 := len(name1), len(name2)
	for n1+n2 > avail {
		if n1 > n2 {
			n1--
		} else {
			n2--
		}
	}
	return name1[:n1] + "_" + name2[:n2] + "_" + label
}

// rowsQuerier is what the storage setup's reads need of a connection or a
// pool.
type rowsQuerier interface {
	querier
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// recipientIndexPending says whether the recipient index exists on the
// partitioned table and lists the partitions without it, by name.
func recipientIndexPending(ctx context.Context, q rowsQuerier) (exists bool, lacking []string, err error) {
	parent := pgx.Identifier{"events", RecipientIndex}.Sanitize()
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", parent).Scan(&exists); err != nil {
		return false, nil, fmt.Errorf("look up index %s: %w", RecipientIndex, err)
	}
	rows, err := q.Query(ctx, lackingRecipientIndexSQL, parent)
	if err != nil {
		return false, nil, fmt.Errorf("list partitions without index %s: %w", RecipientIndex, err)
	}
	if lacking, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return false, nil, fmt.Errorf("list partitions without index %s: %w", RecipientIndex, err)
	}
	return exists, lacking, nil
}

// setupRecipientIndex gives every partition of the partitioned table the
// recipient index without blocking writes (ZD006 for a partitioned table,
// where PostgreSQL cannot build concurrently): the index on the parent alone,
// then, for each partition without it, CREATE INDEX CONCURRENTLY and ALTER
// INDEX ... ATTACH PARTITION; the last attach makes the parent's index valid.
// A partition's index left INVALID by an interrupted build is dropped
// (concurrently) and built again; one that was built but not attached is
// attached. It runs outside a transaction (CONCURRENTLY needs it) and returns
// the partitions whose index it built.
func setupRecipientIndex(ctx context.Context, conn *pgx.Conn, log *zap.Logger) (built []string, err error) {
	err = withIndexSession(ctx, conn, func() error {
		if _, err := conn.Exec(ctx, recipientIndexParentSQL); err != nil {
			return fmt.Errorf("storage setup: create index %s: %w", RecipientIndex, err)
		}
		_, lacking, err := recipientIndexPending(ctx, conn)
		if err != nil {
			return fmt.Errorf("storage setup: %w", err)
		}
		for _, part := range lacking {
			ok, err := attachRecipientIndex(ctx, conn, part)
			if err != nil {
				return fmt.Errorf("storage setup: index %s of events.%s: %w", RecipientIndex, part, err)
			}
			if !ok {
				// Dropped meanwhile by the retention job: nothing to index.
				log.Info("storage setup: partition dropped during the index build", zap.String("partition", part))
				continue
			}
			built = append(built, part)
		}
		var valid bool
		if err := conn.QueryRow(ctx, indexValidSQL, pgx.Identifier{"events", RecipientIndex}.Sanitize()).Scan(&valid); err != nil {
			return fmt.Errorf("storage setup: look up index %s: %w", RecipientIndex, err)
		}
		if !valid {
			// Only when a partition was dropped before its index was attached: every
			// partition has its index (the queries use those), but PostgreSQL marks the
			// parent's valid only on an attach that completes the set.
			log.Warn("storage setup: index stays marked invalid on events.engagement_events though every partition has its own",
				zap.String("index", RecipientIndex))
		}
		return nil
	})
	return built, err
}

// attachRecipientIndex builds the recipient index of partition concurrently,
// unless a valid one of its name is there, and attaches it to the parent's.
// ok is false when the partition no longer exists.
func attachRecipientIndex(ctx context.Context, conn *pgx.Conn, partition string) (ok bool, err error) {
	table := pgx.Identifier{"events", partition}.Sanitize()
	name := pgx.Identifier{RecipientIndexOf(partition)}.Sanitize() // CREATE INDEX takes no schema: the table's
	index := pgx.Identifier{"events", RecipientIndexOf(partition)}.Sanitize()
	gone := func(err error) (bool, error) {
		var exists bool
		if qerr := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); qerr == nil && !exists {
			return false, nil
		}
		return false, err
	}
	valid, err := dropIfInvalid(ctx, conn, index, "DROP INDEX CONCURRENTLY IF EXISTS "+index)
	if err != nil {
		return gone(err)
	}
	if !valid {
		if _, err := conn.Exec(ctx, "CREATE INDEX CONCURRENTLY IF NOT EXISTS "+name+" ON "+table+" ("+recipientIndexColumns+")"); err != nil {
			return gone(fmt.Errorf("build %s: %w", index, err))
		}
	}
	parent := pgx.Identifier{"events", RecipientIndex}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER INDEX "+parent+" ATTACH PARTITION "+index); err != nil {
		return gone(fmt.Errorf("attach %s: %w", index, err))
	}
	return true, nil
}
