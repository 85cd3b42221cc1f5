package migrations_test

import (
	"path/filepath"
	"slices"
	"testing"

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
	var owning, river []migrations.Migration
	for _, m := range plan {
		if m.Schema == migrations.RiverSchema {
			river = append(river, m)
		} else {
			require.Empty(t, river, "River's migrations come after the owning schemas'")
			owning = append(owning, m)
		}
	}
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
