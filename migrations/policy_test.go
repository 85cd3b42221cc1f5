package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
)

// The tenant policies of the event tables, which take every ingested row, read the tenant
// settings once per statement (initplans), not once per row: the plan of an insert as
// events-ingest's role checks the rows against the initplans' values.
func TestEventPoliciesReadTenantOncePerStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Open(t, pgtest.URLAs(t, pgtest.URL(t), migrations.RoleEvents))
	for _, tc := range []struct{ table, time string }{
		{"events.email_events", "occurred_at"},
		{"events.engagement_events", "created_at"},
	} {
		t.Run(tc.table, func(t *testing.T) {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT set_config('app.company_id', $1, true),
					set_config('app.workspace_id', $2, true), set_config('app.domain_id', $3, true)`,
					uuid.NewString(), uuid.NewString(), uuid.NewString())
				require.NoError(t, err)
				var plan []string
				rows, err := tx.Query(ctx, `EXPLAIN (VERBOSE, COSTS OFF) INSERT INTO `+tc.table+`
					(id, company_id, workspace_id, domain_id, type, `+tc.time+`)
					SELECT gen_random_uuid(), $1, $2, $3, 'open', now() FROM generate_series(1, 1000)`,
					uuid.New(), uuid.New(), uuid.New())
				require.NoError(t, err)
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
				require.NoError(t, err)
				text := strings.Join(plan, "\n")
				require.Equal(t, 3, strings.Count(text, "InitPlan"), "one initplan per setting:\n%s", text)
				for _, setting := range []string{"app.company_id", "app.workspace_id", "app.domain_id"} {
					require.Contains(t, text, "current_setting('"+setting+"'::text, true)", text)
				}
				return nil
			})
			require.NoError(t, err)
		})
	}
}
