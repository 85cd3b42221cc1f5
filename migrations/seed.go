package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

//go:embed seed
var seedFS embed.FS

// SeedFiles returns the embedded seed data files, at seed/NNNNNN_name.sql.
func SeedFiles() fs.FS {
	return seedFS
}

// Seed applies the development seed data: a company, workspace and domain, a
// user without a password, and a few rows in them (see the files under seed/).
// Callers refuse it when APP_ENV=production; it is meant for development,
// test and staging databases.
//
// It runs after Up, as the role that ran it: each file in a transaction of
// its own, in the order of its name, under the migration lock. Every insert
// is ON CONFLICT DO NOTHING, so seeding again changes nothing. The files set
// the tenant (app.company_id, ...) inside their transaction before they touch
// a table with FORCE ROW LEVEL SECURITY, which holds its owner to the
// policies too.
func Seed(ctx context.Context, databaseURL string, log *zap.Logger) error {
	if _, err := parseDatabaseURL(databaseURL); err != nil {
		return err
	}
	names, err := fs.Glob(seedFS, "seed/*.sql")
	if err != nil {
		return fmt.Errorf("list seed files: %w", err)
	}
	slices.Sort(names)

	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if err := lock(ctx, conn, log); err != nil {
		return err
	}

	start := time.Now()
	for _, name := range names {
		body, err := seedFS.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// No arguments: pgx sends the file as one simple-protocol query, which
			// may hold several statements.
			_, err := tx.Exec(ctx, string(body))
			return err
		})
		if err != nil {
			return fmt.Errorf("seed %s: %w", path.Base(name), err)
		}
	}

	if err := unlock(ctx, conn); err != nil {
		return err
	}
	log.Info("seed data applied", zap.Int("files", len(names)), zap.Duration("duration", time.Since(start)))
	return nil
}
