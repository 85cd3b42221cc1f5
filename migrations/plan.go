package migrations

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Migration names one migration of one schema.
type Migration struct {
	// Schema is an owning schema (see Schemas), RiverSchema or StorageStep.
	Schema string
	// Version is the migration's version within its schema.
	Version uint
	// File is the migration's file name: under sql/<schema>/ for an owning
	// schema (the .up.sql file in a plan, the .down.sql file in what Down
	// rolled back), or the name of the file in River's own migration line
	// (main) for RiverSchema; for StorageStep, what the setup would do.
	File string
}

// Plan lists, without changing anything, the migrations Up would apply to
// the database, in the order Up would apply them: each owning schema in the
// order of Schemas, oldest first, then River's, then the storage setup (one
// entry of Schema StorageStep, Version 0, whose File says what it would do)
// when it would change something. An empty plan means the database is up to
// date.
//
// Plan fails where Up would: a dirty schema, or a schema migrated further
// than this binary knows (a newer release migrated the database).
func Plan(ctx context.Context, databaseURL string) ([]Migration, error) {
	return planAt(ctx, databaseURL, time.Now())
}

// planAt is Plan with the storage setup's clock.
func planAt(ctx context.Context, databaseURL string, now time.Time) ([]Migration, error) {
	if _, err := parseDatabaseURL(databaseURL); err != nil {
		return nil, err
	}
	pool, err := newPool(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	var plan []Migration
	for _, schema := range Schemas() {
		version, dirty, err := schemaVersion(ctx, pool, schema)
		if err != nil {
			return nil, err
		}
		if dirty {
			return nil, fmt.Errorf("schema %s is dirty at version %d: up refuses to run until it is repaired by hand", schema, version)
		}
		files, err := migrationFiles(schema)
		if err != nil {
			return nil, err
		}
		if version > 0 && !slices.ContainsFunc(files, func(f migrationFile) bool { return f.Version == version }) {
			return nil, fmt.Errorf("schema %s is at version %d, which this binary does not know: a newer release migrated the database", schema, version)
		}
		for _, f := range files {
			if f.Version > version && f.Up != "" {
				plan = append(plan, Migration{Schema: schema, Version: f.Version, File: f.Up})
			}
		}
	}

	migrator, err := newRiverMigrator(pool)
	if err != nil {
		return nil, err
	}
	existing, err := migrator.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read river migrations: %w", err)
	}
	applied := make(map[int]bool, len(existing))
	for _, m := range existing {
		applied[m.Version] = true
	}
	for _, m := range migrator.AllVersions() {
		if !applied[m.Version] {
			plan = append(plan, Migration{Schema: RiverSchema, Version: uint(m.Version), File: riverFileName(m.Version, m.Name)})
		}
	}

	storage, err := planStorage(ctx, pool, now)
	if err != nil {
		return nil, err
	}
	return append(plan, storage...), nil
}

// riverFileName rebuilds the file name of a River migration from its version
// and the name River derives from that file name ("002_initial_schema" gives
// "initial schema").
func riverFileName(version int, name string) string {
	return fmt.Sprintf("%03d_%s.up.sql", version, strings.ReplaceAll(name, " ", "_"))
}
