package migrations

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// DownOptions narrows what Down rolls back.
type DownOptions struct {
	// Schema, when set, limits Down to that owning schema.
	Schema string
}

// Down rolls back the last n applied migrations of the owning schemas, for
// development databases only (the caller refuses it elsewhere), and returns
// them in the order it rolled them back. River's migrations are never rolled
// back: River's tables belong to River and hold the jobs.
//
// The order is the reverse of the order Up applies migrations: the owning
// schemas in the reverse order of Schemas (maintenance first, identity last),
// and within a schema the newest migration first. So `down 1` rolls back the
// newest migration of the last schema of Schemas that has one applied; with
// opts.Schema, the newest migration of that schema. golang-migrate keeps only
// a schema's current version, not when each migration ran, so this order is
// defined by position, not by time.
//
// Down changes nothing when fewer than n migrations are applied, or when a
// schema in its way is dirty. It holds the migration lock like Up.
func Down(ctx context.Context, databaseURL string, n int, opts DownOptions, log *zap.Logger) ([]Migration, error) {
	if n < 1 {
		return nil, fmt.Errorf("down: the number of migrations must be at least 1, not %d", n)
	}
	schemas := slices.Clone(Schemas())
	slices.Reverse(schemas)
	if opts.Schema != "" {
		if opts.Schema == RiverSchema {
			return nil, fmt.Errorf("down: %s's migrations are never rolled back", RiverSchema)
		}
		if !slices.Contains(schemas, opts.Schema) {
			return nil, fmt.Errorf("down: unknown schema %q (one of %v)", opts.Schema, Schemas())
		}
		schemas = []string{opts.Schema}
	}

	base, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if err := lock(ctx, conn, log); err != nil {
		return nil, err
	}

	var applied []Migration
	for _, schema := range schemas {
		version, dirty, err := schemaVersion(ctx, conn, schema)
		if err != nil {
			return nil, err
		}
		if dirty {
			return nil, fmt.Errorf("down: schema %s is dirty at version %d: repair it by hand first", schema, version)
		}
		files, err := migrationFiles(schema)
		if err != nil {
			return nil, err
		}
		for _, f := range slices.Backward(files) {
			if f.Version > version {
				continue
			}
			if f.Down == "" {
				return nil, fmt.Errorf("down: %s/%s has no down migration", schema, f.Up)
			}
			applied = append(applied, Migration{Schema: schema, Version: f.Version, File: f.Down})
		}
	}
	if n > len(applied) {
		return nil, fmt.Errorf("down: only %d migration(s) applied in %v, cannot roll back %d", len(applied), schemas, n)
	}
	todo := applied[:n]

	for i := 0; i < len(todo); {
		schema := todo[i].Schema
		j := i
		for j < len(todo) && todo[j].Schema == schema {
			j++
		}
		if err := migrateSchema(ctx, base, sqlFS, schema, -(j - i), log); err != nil {
			return todo[:i], err
		}
		i = j
	}

	if err := unlock(ctx, conn); err != nil {
		return todo, err
	}
	return todo, nil
}
