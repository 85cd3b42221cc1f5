package migrations_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/migrations"
)

// embeddedUps lists the up files of every owning schema in the order Up
// applies them.
func embeddedUps(t *testing.T) []migrations.Migration {
	t.Helper()
	var out []migrations.Migration
	for _, schema := range migrations.Schemas() {
		names, err := filepath.Glob(filepath.Join("sql", schema, "*.up.sql"))
		require.NoError(t, err)
		slices.Sort(names)
		for i, name := range names {
			out = append(out, migrations.Migration{Schema: schema, Version: uint(i + 1), File: filepath.Base(name)})
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()

	plan, err := migrations.Plan(ctx, b.url)
	require.NoError(t, err)
	var owning, river, storage []migrations.Migration
	for _, m := range plan {
		switch m.Schema {
		case migrations.StorageStep:
			storage = append(storage, m)
		case migrations.RiverSchema:
			require.Empty(t, storage, "the storage setup comes after River's migrations")
			river = append(river, m)
		default:
			require.Empty(t, river, "River's migrations come after the owning schemas'")
			owning = append(owning, m)
		}
	}
	require.Len(t, storage, 1, "the storage setup is planned last")
	require.Contains(t, storage[0].File, "partitioned: weekly partitions of events.engagement_events from ")
	require.Equal(t, embeddedUps(t), owning, "a fresh database gets every migration, in order")
	require.Len(t, river, int(latestRiverVersion(t)))
	for i, m := range river {
		require.Equal(t, uint(i+1), m.Version)
		require.Regexp(t, `^\d{3}_[a-z0-9_]+\.up\.sql$`, m.File)
	}
	require.Equal(t, "001_create_river_migration.up.sql", river[0].File)

	statuses, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)
	for _, s := range statuses {
		require.Zero(t, s.Version, "plan applied nothing to %s", s.Schema)
	}

	require.NoError(t, migrations.Up(ctx, b.url, b.log))
	plan, err = migrations.Plan(ctx, b.url)
	require.NoError(t, err)
	require.Empty(t, plan, "nothing to apply once migrated")

	done, err := migrations.Down(ctx, b.url, 1, migrations.DownOptions{Schema: "recipient"}, b.log)
	require.NoError(t, err)
	plan, err = migrations.Plan(ctx, b.url)
	require.NoError(t, err)
	require.Len(t, plan, 1)
	require.Equal(t, "recipient", plan[0].Schema)
	require.Equal(t, done[0].Version, plan[0].Version)
	require.FileExists(t, filepath.Join("sql", "recipient", plan[0].File))
}

func TestPlanRefusesWhatUpRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	require.NoError(t, migrations.Up(ctx, b.url, b.log))
	pool := connect(t, b.url)

	_, err := pool.Exec(ctx, "UPDATE campaign.schema_migrations SET dirty = true")
	require.NoError(t, err)
	_, err = migrations.Plan(ctx, b.url)
	require.ErrorContains(t, err, "schema campaign is dirty at version")

	_, err = pool.Exec(ctx, "UPDATE campaign.schema_migrations SET dirty = false, version = 999999")
	require.NoError(t, err)
	_, err = migrations.Plan(ctx, b.url)
	require.ErrorContains(t, err, "schema campaign is at version 999999, which this binary does not know")
}

// TestPlanStorage shows the storage setup in the plan when partitions of the
// window are missing, and nothing once up made them.
func TestPlanStorage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	now := time.Date(2026, time.March, 4, 12, 0, 0, 0, time.UTC) // a Wednesday
	require.NoError(t, migrations.UpAt(ctx, b.url, now, b.log))

	plan, err := migrations.PlanAt(ctx, b.url, now)
	require.NoError(t, err)
	require.Empty(t, plan)

	// Three weeks later, the last partitions of the window are missing.
	plan, err = migrations.PlanAt(ctx, b.url, now.AddDate(0, 0, 21))
	require.NoError(t, err)
	require.Equal(t, []migrations.Migration{{
		Schema: migrations.StorageStep,
		File:   "partitioned: weekly partitions of events.engagement_events from 2026-03-16 to 2026-04-27 (3 missing)",
	}}, plan)

	require.NoError(t, migrations.UpAt(ctx, b.url, now.AddDate(0, 0, 21), b.log))
	plan, err = migrations.PlanAt(ctx, b.url, now.AddDate(0, 0, 21))
	require.NoError(t, err)
	require.Empty(t, plan)
}
