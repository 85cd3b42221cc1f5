package migrations

import (
	"context"
	"errors"
	"fmt"
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
// River's migrations: on the partitioned table it creates the partitions of
// the window at now (the worker keeps them going), on TimescaleDB it runs
// the TimescaleDB setup. Both are idempotent: a second run changes nothing.
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
		log.Info("storage set up", zap.Duration("duration", time.Since(start)))
		return nil
	default:
		from, to := partitionWindow(now)
		rows, err := conn.Query(ctx, "SELECT events.create_engagement_partitions($1, $2)", from, to)
		if err != nil {
			return fmt.Errorf("storage setup: create partitions: %w", err)
		}
		created, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("storage setup: create partitions: %w", err)
		}
		log.Info("storage set up", zap.Strings("partitions_created", created),
			zap.Time("from", WeekStart(from)), zap.Time("to", WeekStart(to).AddDate(0, 0, 7)),
			zap.Duration("duration", time.Since(start)))
		return nil
	}
}

// planStorage says what setupStorage would do at now, as one plan entry, or
// nothing when it would change nothing.
func planStorage(ctx context.Context, q querier, now time.Time) ([]Migration, error) {
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
	what := fmt.Sprintf("%s: weekly partitions of events.engagement_events from %s to %s",
		StoragePartitioned, WeekStart(from).Format(time.DateOnly), WeekStart(to).AddDate(0, 0, 7).Format(time.DateOnly))
	if !ok {
		return []Migration{{Schema: StorageStep, File: what}}, nil
	}
	missing, err := missingPartitions(ctx, q, now)
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	return []Migration{{Schema: StorageStep, File: fmt.Sprintf("%s (%d missing)", what, len(missing))}}, nil
}

// StorageState is what StorageStatus reports.
type StorageState struct {
	// Mode is the storage mode; empty before the events migrations ran.
	Mode StorageMode
	// Partitions lists the weekly partitions, oldest first (partitioned mode).
	Partitions []string
	// Hypertable is true once the table is a hypertable (TimescaleDB mode).
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
