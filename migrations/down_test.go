package migrations_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/migrations"
)

// TestDownOrder rolls back in the reverse of Up's order: the last schema of
// Schemas first, newest migration first, then the schema before it.
func TestDownOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	require.NoError(t, migrations.Up(ctx, b.url, b.log))

	ups := embeddedUps(t)
	before, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)

	// Everything in the last two schemas, and one more.
	schemas := migrations.Schemas()
	last, beforeLast := schemas[len(schemas)-1], schemas[len(schemas)-2]
	var want []migrations.Migration
	for _, schema := range []string{last, beforeLast, schemas[len(schemas)-3]} {
		for i := len(ups) - 1; i >= 0; i-- {
			if ups[i].Schema == schema {
				m := ups[i]
				m.File = m.File[:len(m.File)-len(".up.sql")] + ".down.sql"
				want = append(want, m)
			}
		}
	}
	n := 0
	for _, m := range want {
		if m.Schema == last || m.Schema == beforeLast {
			n++
		}
	}
	want = want[:n+1]

	done, err := migrations.Down(ctx, b.url, n+1, migrations.DownOptions{}, b.log)
	require.NoError(t, err)
	require.Equal(t, want, done)

	after, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)
	for i, s := range after {
		switch s.Schema {
		case last, beforeLast:
			require.Zero(t, s.Version, s.Schema)
		case want[n].Schema:
			require.Equal(t, before[i].Version-1, s.Version, s.Schema)
		default:
			require.Equal(t, before[i], s, "%s is untouched (River's migrations are never rolled back)", s.Schema)
		}
	}
}

func TestDownOneSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	require.NoError(t, migrations.Up(ctx, b.url, b.log))

	done, err := migrations.Down(ctx, b.url, 1, migrations.DownOptions{Schema: "identity"}, b.log)
	require.NoError(t, err)
	require.Len(t, done, 1)
	require.Equal(t, "identity", done[0].Schema)
	require.Regexp(t, `^\d{6}_[a-z0-9_]+\.down\.sql$`, done[0].File)

	statuses, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)
	for _, s := range statuses {
		if s.Schema == "identity" {
			require.Equal(t, done[0].Version-1, s.Version)
		} else {
			require.Equal(t, s.Latest, s.Version, s.Schema)
		}
	}
}

func TestDownRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	require.NoError(t, migrations.Up(ctx, b.url, b.log))
	before, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		n       int
		opts    migrations.DownOptions
		wantErr string
	}{
		"zero":                     {n: 0, wantErr: "at least 1"},
		"river":                    {n: 1, opts: migrations.DownOptions{Schema: migrations.RiverSchema}, wantErr: "river's migrations are never rolled back"},
		"unknown":                  {n: 1, opts: migrations.DownOptions{Schema: "public"}, wantErr: `unknown schema "public"`},
		"more than up":             {n: len(embeddedUps(t)) + 1, wantErr: "cannot roll back"},
		"more than the schema has": {n: 3, opts: migrations.DownOptions{Schema: "maintenance"}, wantErr: "cannot roll back 3"},
	} {
		_, err := migrations.Down(ctx, b.url, tc.n, tc.opts, b.log)
		require.ErrorContains(t, err, tc.wantErr, name)
	}

	_, err = connect(t, b.url).Exec(ctx, "UPDATE maintenance.schema_migrations SET dirty = true")
	require.NoError(t, err)
	_, err = migrations.Down(ctx, b.url, 1, migrations.DownOptions{}, b.log)
	require.ErrorContains(t, err, "schema maintenance is dirty")

	after, err := migrations.Status(ctx, b.url)
	require.NoError(t, err)
	for i := range after {
		after[i].Dirty = false
	}
	require.Equal(t, before, after, "a refused down changes nothing")
}
