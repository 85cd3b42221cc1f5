package migrations

// The TimescaleDB path of the storage setup, kept in this one file. It runs
// where events.engagement_events was created as a plain table (the events
// migration found TimescaleDB usable): the table becomes a hypertable on
// created_at with 7-day chunks, a retention policy drops chunks older than
// 90 days, and the recipient index is built chunk by chunk. Every statement
// is idempotent (IF NOT EXISTS, if_not_exists).
//
// The daily rollup stays events.email_events_daily, kept by the worker's job
// as on plain PostgreSQL, rather than a continuous aggregate: TimescaleDB
// refuses a continuous aggregate on a hypertable with row-level security
// (timescale/timescaledb#6832), and every tenant table of Herald has it. So
// the read path is the same in both modes.

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// timescaleExtensionSQL installs the extension (it must be preloaded).
const timescaleExtensionSQL = `CREATE EXTENSION IF NOT EXISTS timescaledb`

// timescaleStep is one statement of the TimescaleDB setup.
type timescaleStep struct {
	// what is how plan shows the step.
	what string
	sql  string
	// done says whether the step already ran; it reads TimescaleDB's catalog.
	done string
}

// timescaleSteps are the statements after CREATE EXTENSION, in order. The
// functions are TimescaleDB's (2.13 and later), found on the search_path as
// the extension installed them.
func timescaleSteps() []timescaleStep {
	return []timescaleStep{
		{
			what: "hypertable events.engagement_events on created_at, 7-day chunks",
			sql: `SELECT create_hypertable('events.engagement_events',
				by_range('created_at', INTERVAL '7 days'),
				create_default_indexes => false, if_not_exists => true)`,
			done: `SELECT EXISTS (SELECT FROM timescaledb_information.hypertables
				WHERE hypertable_schema = 'events' AND hypertable_name = 'engagement_events')`,
		},
		{
			what: "retention policy: drop chunks older than 90 days",
			sql: `SELECT add_retention_policy('events.engagement_events',
				drop_after => INTERVAL '90 days', if_not_exists => true)`,
			done: `SELECT EXISTS (SELECT FROM timescaledb_information.jobs
				WHERE proc_name = 'policy_retention'
				  AND hypertable_schema = 'events' AND hypertable_name = 'engagement_events')`,
		},
	}
}

// timescaleIndex is the recipient index (RecipientIndex, see storage.go) on
// the hypertable. A hypertable refuses CREATE INDEX CONCURRENTLY; TimescaleDB's
// transaction_per_chunk builds the index one chunk at a time, each in a
// transaction of its own, so that only the chunk being indexed waits for it,
// and marks the hypertable's index valid once every chunk has it. New chunks
// get it as they are created. It cannot run inside a transaction block, so it
// comes after the transaction of the other steps. IF NOT EXISTS keeps an
// index left invalid by an interrupted build, which is why
// setupTimescaleIndex drops such a one first.
var timescaleIndex = timescaleStep{
	what: "index " + RecipientIndex + " (" + recipientIndexColumns + "), one transaction per chunk",
	sql: `CREATE INDEX IF NOT EXISTS ` + RecipientIndex + ` ON events.engagement_events (` + recipientIndexColumns + `)
		WITH (timescaledb.transaction_per_chunk)`,
	done: `SELECT coalesce((SELECT x.indisvalid FROM pg_catalog.pg_index AS x
		WHERE x.indexrelid = to_regclass('events.` + RecipientIndex + `')), false)`,
}

// setupTimescaleIndex builds the recipient index on the hypertable
// (timescaleIndex), outside a transaction. An index left invalid by an
// interrupted build is dropped first: TimescaleDB drops a hypertable's index
// only with a plain DROP INDEX, which waits at most lock_timeout for its
// lock and then holds it for a moment.
func setupTimescaleIndex(ctx context.Context, conn *pgx.Conn) error {
	return withIndexSession(ctx, conn, func() error {
		index := pgx.Identifier{"events", RecipientIndex}.Sanitize()
		if _, err := dropIfInvalid(ctx, conn, index, "DROP INDEX IF EXISTS "+index); err != nil {
			return fmt.Errorf("storage setup: %w", err)
		}
		if _, err := conn.Exec(ctx, timescaleIndex.sql); err != nil {
			return fmt.Errorf("storage setup: %s: %w", timescaleIndex.what, err)
		}
		return nil
	})
}

// setupTimescale runs the TimescaleDB setup in one transaction: the
// extension (when createExtension), then every step.
func setupTimescale(ctx context.Context, conn *pgx.Conn, createExtension bool) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if createExtension {
			if _, err := tx.Exec(ctx, timescaleExtensionSQL); err != nil {
				return fmt.Errorf("storage setup: %s: %w", timescaleExtensionSQL, err)
			}
		}
		for _, st := range timescaleSteps() {
			if _, err := tx.Exec(ctx, st.sql); err != nil {
				return fmt.Errorf("storage setup: %s: %w", st.what, err)
			}
		}
		return nil
	})
}

// timescalePending lists what setupTimescale would still do.
func timescalePending(ctx context.Context, q querier, tableExists bool) ([]string, error) {
	var installed bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'timescaledb')`).Scan(&installed); err != nil {
		return nil, fmt.Errorf("look for timescaledb: %w", err)
	}
	var todo []string
	if !installed {
		todo = append(todo, "create extension timescaledb")
	}
	for _, st := range append(timescaleSteps(), timescaleIndex) {
		if !installed || !tableExists {
			todo = append(todo, st.what)
			continue
		}
		var done bool
		if err := q.QueryRow(ctx, st.done).Scan(&done); err != nil {
			return nil, fmt.Errorf("read timescaledb catalog: %w", err)
		}
		if !done {
			todo = append(todo, st.what)
		}
	}
	return todo, nil
}

func joinSteps(steps []string) string {
	return strings.Join(steps, "; ")
}
