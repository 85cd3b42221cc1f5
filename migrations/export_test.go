package migrations

import (
	"context"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// MigrateSchemaFS applies the migrations under sql/<schema> of files to
// databaseURL the way Up applies those of one owning schema, so that tests
// can run the runner on migrations of their own.
func MigrateSchemaFS(ctx context.Context, databaseURL string, files fs.FS, schema string, log *zap.Logger) error {
	base, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return err
	}
	return migrateSchema(ctx, base, files, schema, 0, log)
}

// UpSteps does what Up does for the owning schemas, applying at most steps
// migrations of each, and leaves River alone: a database migrated step by
// step, as successive releases would have left it.
func UpSteps(ctx context.Context, databaseURL string, steps int, log *zap.Logger) error {
	base, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if err := ensureRoles(ctx, conn, log); err != nil {
		return err
	}
	for _, schema := range Schemas() {
		if err := createSchema(ctx, conn, schema); err != nil {
			return err
		}
		if err := migrateSchema(ctx, base, sqlFS, schema, steps, log); err != nil {
			return err
		}
	}
	return nil
}

// UpAt is Up with the storage setup's clock at now.
func UpAt(ctx context.Context, databaseURL string, now time.Time, log *zap.Logger) error {
	return upAt(ctx, databaseURL, now, log)
}

// PlanAt is Plan with the storage setup's clock at now.
func PlanAt(ctx context.Context, databaseURL string, now time.Time) ([]Migration, error) {
	return planAt(ctx, databaseURL, now)
}

// SetupTimescale runs the TimescaleDB setup, CREATE EXTENSION left out,
// whatever the mode of the database: tests run it against stand-ins of
// TimescaleDB's functions.
func SetupTimescale(ctx context.Context, databaseURL string) error {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return setupTimescale(ctx, conn, false)
}

// TimescaleUsable runs the test of whether TimescaleDB can be used.
func TimescaleUsable(ctx context.Context, databaseURL string) (bool, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var usable bool
	err = conn.QueryRow(ctx, timescaleUsableSQL).Scan(&usable)
	return usable, err
}

// TimescaleIndexSQL is the statement that builds the recipient index on the
// hypertable, and TimescaleIndexDoneSQL the query that says it is there and
// valid.
var (
	TimescaleIndexSQL     = timescaleIndex.sql
	TimescaleIndexDoneSQL = timescaleIndex.done
)
