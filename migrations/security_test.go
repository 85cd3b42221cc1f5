package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
)

// appSchemas are the owning schemas, where row-level security is required.
func appSchemas() []string { return migrations.Schemas() }

// ownSchema maps each role to the schema it owns.
func ownSchema() map[string]string {
	return map[string]string{
		migrations.RoleGateway:   "identity",
		migrations.RoleCampaign:  "campaign",
		migrations.RoleRecipient: "recipient",
		migrations.RoleEvents:    "events",
		migrations.RoleWorker:    migrations.RiverSchema,
	}
}

// requireCode fails unless err is a PostgreSQL error with SQLSTATE code.
func requireCode(t *testing.T, err error, code string, msgAndArgs ...any) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want PostgreSQL error %s, got %v", code, err)
	require.Equal(t, code, pgErr.Code, msgAndArgs...)
}

// queryStrings runs a query returning one text column.
func queryStrings(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func newTenant() tenancy.Tenant {
	return tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
}

func TestCatalogRowLevelSecurity(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	// The template may be older than the partitions of this week.
	_, err := pool.Exec(t.Context(), "SELECT events.create_engagement_partitions(now(), now())")
	require.NoError(t, err)

	// Every table (partitioned or not, partitions included) of the owning
	// schemas with a workspace_id or domain_id column, and identity.workspaces.
	tenantTables := queryStrings(t, pool, `
		SELECT DISTINCT n.nspname || '.' || c.relname
		FROM pg_class AS c
		JOIN pg_namespace AS n ON n.oid = c.relnamespace
		LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND NOT a.attisdropped
			AND a.attname IN ('workspace_id', 'domain_id')
		WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY ($1)
			AND (a.attname IS NOT NULL OR (n.nspname, c.relname) = ('identity', 'workspaces'))
		ORDER BY 1`, appSchemas())
	for _, want := range []string{
		"campaign.campaigns", "events.campaign_engagement_uniques", "events.campaign_recipient_engagement",
		"events.email_events", "events.email_events_daily", "events.engagement_events",
		"events." + migrations.PartitionName(time.Now()), "identity.api_keys", "identity.domains",
		"identity.invitations", "identity.memberships", "identity.workspaces", "recipient.recipients",
	} {
		require.Contains(t, tenantTables, want)
	}

	var unprotected []string
	for _, table := range tenantTables {
		var enabled, forced bool
		var policies int
		require.NoError(t, pool.QueryRow(t.Context(), `
			SELECT c.relrowsecurity, c.relforcerowsecurity,
				(SELECT count(*) FROM pg_policy AS p WHERE p.polrelid = c.oid)
			FROM pg_class AS c WHERE c.oid = $1::regclass`, table).Scan(&enabled, &forced, &policies))
		if !enabled || !forced || policies == 0 {
			unprotected = append(unprotected, fmt.Sprintf("%s (enabled %t, forced %t, %d policies)", table, enabled, forced, policies))
		}
	}
	require.Empty(t, unprotected, "tables with tenant columns need ENABLE and FORCE ROW LEVEL SECURITY and a policy")

	// The authentication tables are the gateway's and carry no workspace.
	for _, table := range []string{"identity.users", "identity.refresh_tokens", "identity.platform_operators", "identity.companies"} {
		require.NotContains(t, tenantTables, table)
	}
}

func TestCatalogRoles(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := t.Context()

	require.Len(t, migrations.ServiceRoles(), 5)
	for service, role := range migrations.ServiceRoles() {
		var super, bypass, createRole, createDB, replication, login bool
		err := pool.QueryRow(ctx, `
			SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin
			FROM pg_roles WHERE rolname = $1`, role).
			Scan(&super, &bypass, &createRole, &createDB, &replication, &login)
		require.NoError(t, err, "role %s of %s", role, service)
		require.False(t, super, "%s is a superuser", role)
		require.False(t, bypass, "%s has BYPASSRLS", role)
		require.False(t, createRole, "%s has CREATEROLE", role)
		require.False(t, createDB, "%s has CREATEDB", role)
		require.False(t, replication, "%s has REPLICATION", role)
		require.True(t, login, "%s cannot log in", role)

		owned := queryStrings(t, pool, `
			SELECT 'table ' || c.oid::regclass::text FROM pg_class AS c WHERE c.relowner = $1::regrole
			UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = $1::regrole
			UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc AS p WHERE p.proowner = $1::regrole
			UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type AS t WHERE t.typowner = $1::regrole
			UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datdba = $1::regrole`, role)
		require.Empty(t, owned, "%s owns objects", role)

		memberOf := queryStrings(t, pool, `
			SELECT m.roleid::regrole::text FROM pg_auth_members AS m WHERE m.member = $1::regrole`, role)
		require.Empty(t, memberOf, "%s inherits the privileges of other roles", role)
	}
}

// TestCatalogPrivileges compares every privilege the service roles hold in
// the application schemas and River's with the list below: each role its own
// schema, and River's job table for the services that enqueue jobs.
func TestCatalogPrivileges(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)

	dml := []string{"SELECT", "INSERT", "UPDATE", "DELETE"}
	var want []string
	grantTables := func(role, schema string, privs []string) {
		for _, table := range queryStrings(t, pool, `
			SELECT n.nspname || '.' || c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'`, schema) {
			for _, p := range privs {
				want = append(want, role+" "+p+" "+table)
			}
		}
	}
	for role, schema := range ownSchema() {
		want = append(want, role+" USAGE schema "+schema)
		grantTables(role, schema, dml)
	}
	// The flag audit is append-only: the gateway reads and inserts, never rewrites.
	want = slices.DeleteFunc(want, func(p string) bool {
		return p == migrations.RoleGateway+" UPDATE identity.flag_audit" || p == migrations.RoleGateway+" DELETE identity.flag_audit"
	})
	for _, seq := range queryStrings(t, pool, `
		SELECT n.nspname || '.' || c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
		WHERE n.nspname = 'river' AND c.relkind = 'S'`) {
		for _, p := range []string{"USAGE", "SELECT", "UPDATE"} {
			want = append(want, migrations.RoleWorker+" "+p+" sequence "+seq)
		}
	}
	for _, role := range []string{migrations.RoleCampaign, migrations.RoleRecipient, migrations.RoleEvents} {
		want = append(want,
			role+" USAGE schema river",
			role+" SELECT river.river_job",
			role+" INSERT river.river_job",
			role+" UPDATE river.river_job(kind)",
			role+" USAGE sequence river.river_job_id_seq",
		)
	}
	want = append(want,
		migrations.RoleGateway+" EXECUTE identity.api_key_by_prefix(text)",
		migrations.RoleGateway+" EXECUTE identity.invitation_by_token_hash(text)",
		// The storage of events: events-ingest creates a missing partition for an
		// event, the worker keeps them (partitions, retention), the rollup and the
		// backfill from the legacy table; it never rewrites an event.
		migrations.RoleEvents+" EXECUTE events.create_engagement_partitions(timestamp with time zone,timestamp with time zone)",
		migrations.RoleWorker+" EXECUTE events.create_engagement_partitions(timestamp with time zone,timestamp with time zone)",
		migrations.RoleWorker+" EXECUTE events.drop_engagement_partitions(timestamp with time zone)",
		migrations.RoleWorker+" USAGE schema events",
		migrations.RoleWorker+" SELECT events.email_events",
		migrations.RoleWorker+" SELECT events.engagement_events",
		migrations.RoleWorker+" INSERT events.engagement_events",
		migrations.RoleWorker+" SELECT events.email_events_daily",
		migrations.RoleWorker+" INSERT events.email_events_daily",
		migrations.RoleWorker+" DELETE events.email_events_daily",
		// The campaigns' unique opens and clicks: the rollup moves first times earlier and
		// recounts, never deletes.
		migrations.RoleWorker+" SELECT events.campaign_recipient_engagement",
		migrations.RoleWorker+" INSERT events.campaign_recipient_engagement",
		migrations.RoleWorker+" UPDATE events.campaign_recipient_engagement",
		migrations.RoleWorker+" SELECT events.campaign_engagement_uniques",
		migrations.RoleWorker+" INSERT events.campaign_engagement_uniques",
		migrations.RoleWorker+" UPDATE events.campaign_engagement_uniques",
		// The progress of backfills: the worker runs them and never deletes one.
		migrations.RoleWorker+" USAGE schema maintenance",
		migrations.RoleWorker+" SELECT maintenance.backfills",
		migrations.RoleWorker+" INSERT maintenance.backfills",
		migrations.RoleWorker+" UPDATE maintenance.backfills",
	)

	schemas := append(appSchemas(), migrations.RiverSchema, "public")
	var got []string
	for _, role := range migrations.ServiceRoles() {
		got = append(got, queryStrings(t, pool, `
			SELECT $1 || ' ' || p || ' schema ' || n.nspname
			FROM pg_namespace AS n, unnest(ARRAY['USAGE', 'CREATE']) AS p
			WHERE n.nspname = ANY ($2) AND has_schema_privilege($1, n.oid, p)
			  AND NOT (n.nspname = 'public' AND p = 'USAGE')
			UNION ALL
			SELECT $1 || ' ' || p || ' ' || n.nspname || '.' || c.relname
			FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace,
				unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p
			WHERE n.nspname = ANY ($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
			  AND has_table_privilege($1, c.oid, p)
			UNION ALL
			SELECT $1 || ' ' || p || ' ' || n.nspname || '.' || c.relname || '(' || a.attname || ')'
			FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
				JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped,
				unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS p
			WHERE n.nspname = ANY ($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
			  AND has_column_privilege($1, c.oid, a.attnum, p) AND NOT has_table_privilege($1, c.oid, p)
			UNION ALL
			SELECT $1 || ' ' || p || ' sequence ' || n.nspname || '.' || c.relname
			FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace,
				unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p
			WHERE n.nspname = ANY ($2) AND c.relkind = 'S' AND has_sequence_privilege($1, c.oid, p)
			UNION ALL
			SELECT $1 || ' EXECUTE ' || p.oid::regprocedure::text
			FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
			WHERE n.nspname = ANY ($2) AND n.nspname <> 'river' AND has_function_privilege($1, p.oid, 'EXECUTE')`,
			role, schemas)...)
	}
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, want, got)

	// River's functions: the worker and the enqueuers may run them (PUBLIC may too,
	// PostgreSQL's default for functions), and River never makes one SECURITY DEFINER.
	for _, role := range []string{migrations.RoleWorker, migrations.RoleCampaign, migrations.RoleRecipient, migrations.RoleEvents} {
		var missing []string
		require.NoError(t, pool.QueryRow(t.Context(), `
			SELECT coalesce(array_agg(p.oid::regprocedure::text), '{}') FROM pg_proc AS p
			WHERE p.pronamespace = 'river'::regnamespace AND NOT has_function_privilege($1, p.oid, 'EXECUTE')`, role).
			Scan(&missing))
		require.Empty(t, missing, role)
	}
}

// TestCatalogDefinerFunctions checks every SECURITY DEFINER function of the
// application schemas: a pinned search_path, and no EXECUTE for PUBLIC.
func TestCatalogDefinerFunctions(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)

	rows, err := pool.Query(t.Context(), `
		SELECT p.oid::regprocedure::text, coalesce(array_to_string(p.proconfig, ','), ''),
			EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
			        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
		FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
		WHERE n.nspname = ANY ($1) AND p.prosecdef
		ORDER BY 1`, appSchemas())
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var name, config string
		var public bool
		require.NoError(t, rows.Scan(&name, &config, &public))
		names = append(names, name)
		schema, _, _ := strings.Cut(name, ".")
		require.Contains(t, config, "search_path=pg_catalog, "+schema+", pg_temp", name)
		require.False(t, public, "PUBLIC may execute %s", name)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{
		"events.create_engagement_partitions(timestamp with time zone,timestamp with time zone)",
		"events.drop_engagement_partitions(timestamp with time zone)",
		"identity.api_key_by_prefix(text)", "identity.invitation_by_token_hash(text)",
	}, names)
}

// tenantTable is a service table under the tenant policy.
type tenantTable struct {
	name string
	role string
	// insert inserts one row of the tenant $1, $2, $3 (company, workspace,
	// domain) and returns its id.
	insert string
}

func tenantTables() []tenantTable {
	return []tenantTable{
		{
			name: "recipient.recipients",
			role: migrations.RoleRecipient,
			insert: `INSERT INTO recipient.recipients (company_id, workspace_id, domain_id, email)
				VALUES ($1, $2, $3, gen_random_uuid() || '@example.com') RETURNING id`,
		},
		{
			name: "campaign.campaigns",
			role: migrations.RoleCampaign,
			insert: `INSERT INTO campaign.campaigns (company_id, workspace_id, domain_id, name)
				VALUES ($1, $2, $3, 'spring') RETURNING id`,
		},
		{
			name: "events.email_events",
			role: migrations.RoleEvents,
			insert: `INSERT INTO events.email_events (id, company_id, workspace_id, domain_id, type, occurred_at)
				VALUES (gen_random_uuid(), $1, $2, $3, 'open', now()) RETURNING id`,
		},
		{
			name: "events.engagement_events",
			role: migrations.RoleEvents,
			insert: `INSERT INTO events.engagement_events (id, company_id, workspace_id, domain_id, type, created_at)
				VALUES (gen_random_uuid(), $1, $2, $3, 'open', now()) RETURNING id`,
		},
		{
			name: "events." + migrations.PartitionName(time.Now()),
			role: migrations.RoleEvents,
			insert: `INSERT INTO events.` + migrations.PartitionName(time.Now()) + ` (id, company_id, workspace_id, domain_id, type, created_at)
				VALUES (gen_random_uuid(), $1, $2, $3, 'open', now()) RETURNING id`,
		},
	}
}

// insertRow inserts a row of tn into tt with q.
func insertRow(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, tt tenantTable, tn tenancy.Tenant) (uuid.UUID, error) {
	var id uuid.UUID
	err := q.QueryRow(ctx, tt.insert, tn.CompanyID, tn.WorkspaceID, tn.DomainID).Scan(&id)
	return id, err
}

// tenantsOf returns the tenants of the rows of table that q sees.
func tenantsOf(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, table string) ([]tenancy.Tenant, error) {
	rows, err := q.Query(ctx, "SELECT company_id, workspace_id, domain_id FROM "+table)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenancy.Tenant, error) {
		var tn tenancy.Tenant
		err := row.Scan(&tn.CompanyID, &tn.WorkspaceID, &tn.DomainID)
		return tn, err
	})
}

func TestRowLevelSecurityIsolatesTenants(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	admin := pgtest.Open(t, dbURL)
	// The template may be older than the partitions of this week.
	_, err := admin.Exec(t.Context(), "SELECT events.create_engagement_partitions(now(), now())")
	require.NoError(t, err)

	for _, tt := range tenantTables() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, tt.role))
			a, b := newTenant(), newTenant()
			for _, tn := range []tenancy.Tenant{a, a, b} {
				_, err := insertRow(ctx, admin, tt, tn)
				require.NoError(t, err)
			}
			var bID uuid.UUID
			require.NoError(t, admin.QueryRow(ctx, "SELECT id FROM "+tt.name+" WHERE company_id = $1", b.CompanyID).Scan(&bID))

			seen, err := tenantsOf(ctx, pool, tt.name)
			require.NoError(t, err)
			require.Empty(t, seen, "with no tenant set, %s sees no row", tt.role)

			err = tenancy.InTx(ctx, pool, a, func(tx pgx.Tx) error {
				seen, err := tenantsOf(ctx, tx, tt.name)
				require.NoError(t, err)
				require.Equal(t, []tenancy.Tenant{a, a}, seen)

				// Another tenant's row cannot be changed or deleted: it is not there.
				tag, err := tx.Exec(ctx, "UPDATE "+tt.name+" SET company_id = company_id WHERE id = $1", bID)
				require.NoError(t, err)
				require.Zero(t, tag.RowsAffected())
				tag, err = tx.Exec(ctx, "DELETE FROM "+tt.name+" WHERE id = $1", bID)
				require.NoError(t, err)
				require.Zero(t, tag.RowsAffected())
				return nil
			})
			require.NoError(t, err)

			// Writing a row of B while A is set fails the policy's WITH CHECK.
			err = tenancy.InTx(ctx, pool, a, func(tx pgx.Tx) error {
				_, err := insertRow(ctx, tx, tt, b)
				return err
			})
			requireCode(t, err, "42501", "insert of another tenant's row")

			// So does moving one of A's rows to B.
			err = tenancy.InTx(ctx, pool, a, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "UPDATE "+tt.name+" SET domain_id = $1 WHERE company_id = $2", b.DomainID, a.CompanyID)
				return err
			})
			requireCode(t, err, "42501", "update into another tenant")

			// A half-set tenant is no tenant.
			err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SELECT set_config('app.company_id', $1, true)", a.CompanyID.String()); err != nil {
					return err
				}
				seen, err := tenantsOf(ctx, tx, tt.name)
				require.NoError(t, err)
				require.Empty(t, seen)
				return nil
			})
			require.NoError(t, err)

			var n int
			require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM "+tt.name+" WHERE company_id IN ($1, $2)", a.CompanyID, b.CompanyID).Scan(&n))
			require.Equal(t, 3, n, "nothing was written through the policy")
		})
	}
}

func TestRolesStayInTheirSchemas(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	ctx := t.Context()

	for _, tc := range []struct{ role, table string }{
		{migrations.RoleRecipient, "campaign.campaigns"},
		{migrations.RoleRecipient, "events.email_events"},
		{migrations.RoleRecipient, "identity.companies"},
		{migrations.RoleCampaign, "recipient.recipients"},
		{migrations.RoleEvents, "recipient.recipients"},
		{migrations.RoleWorker, "recipient.recipients"},
		{migrations.RoleGateway, "river.river_job"},
		{migrations.RoleRecipient, "river.river_queue"},
		{migrations.RoleRecipient, "recipient.schema_migrations"},
		{migrations.RoleRecipient, "maintenance.backfills"},
		{migrations.RoleGateway, "maintenance.backfills"},
		{migrations.RoleWorker, "maintenance.schema_migrations"},
	} {
		pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, tc.role))
		_, err := tenantsOrCount(ctx, pool, tc.table)
		requireCode(t, err, "42501", "%s reading %s", tc.role, tc.table)
	}
}

// tenantsOrCount counts the rows of table.
func tenantsOrCount(ctx context.Context, pool *pgxpool.Pool, table string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
	return n, err
}

// TestRowLevelSecurityUnderAPool runs many scoped transactions of three
// tenants at once on a small pool, so that every connection serves every
// tenant in turn: no transaction ever sees another tenant's row, and no
// setting outlives its transaction.
func TestRowLevelSecurityUnderAPool(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	cfg, err := pgxpool.ParseConfig(pgtest.URLAs(t, dbURL, migrations.RoleRecipient))
	require.NoError(t, err)
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	const (
		goroutines = 32
		iterations = 100 // per goroutine
	)
	table := tenantTables()[0]
	tenants := []tenancy.Tenant{newTenant(), newTenant(), newTenant()}
	var inserted [3]atomic.Int64

	iteration := func(ctx context.Context, g, i int) error {
		k := (g + i) % len(tenants)
		tn := tenants[k]
		switch i % 8 {
		case 0, 3:
			return tenancy.InTx(ctx, pool, tn, func(tx pgx.Tx) error {
				if _, err := insertRow(ctx, tx, table, tn); err != nil {
					return fmt.Errorf("insert: %w", err)
				}
				inserted[k].Add(1)
				return nil
			})
		case 5:
			// Outside any scoped transaction, on a connection that just served one.
			n, err := tenantsOrCount(ctx, pool, table.name)
			if err != nil {
				return err
			}
			if n != 0 {
				return fmt.Errorf("%d rows seen with no tenant set", n)
			}
			return nil
		default:
			return tenancy.InTx(ctx, pool, tn, func(tx pgx.Tx) error {
				seen, err := tenantsOf(ctx, tx, table.name)
				if err != nil {
					return err
				}
				for _, s := range seen {
					if s != tn {
						return fmt.Errorf("tenant %v saw a row of %v", tn, s)
					}
				}
				return nil
			})
		}
	}

	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range iterations {
				if err := iteration(t.Context(), g, i); err != nil {
					errs <- fmt.Errorf("goroutine %d, iteration %d: %w", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []string
	for err := range errs {
		all = append(all, err.Error())
	}
	require.Empty(t, all, strings.Join(all, "\n"))

	for k, tn := range tenants {
		var n int64
		err := tenancy.InTx(t.Context(), pool, tn, func(tx pgx.Tx) error {
			return tx.QueryRow(t.Context(), "SELECT count(*) FROM "+table.name).Scan(&n)
		})
		require.NoError(t, err)
		require.Positive(t, n)
		require.Equal(t, inserted[k].Load(), n, "rows of tenant %d", k)
	}
}

// identityFixture is one company's rows in schema identity.
type identityFixture struct {
	company, workspace, user, apiKey, invitation uuid.UUID
	prefix, tokenHash                            string
}

// seedIdentity inserts a company with a workspace, a domain, an owner, an API
// key and an invitation, as the superuser behind admin.
func seedIdentity(t *testing.T, admin *pgxpool.Pool) identityFixture {
	t.Helper()
	ctx := t.Context()
	f := identityFixture{prefix: "hk_" + uuid.NewString()[:8], tokenHash: "th-" + uuid.NewString()}
	require.NoError(t, admin.QueryRow(ctx, `INSERT INTO identity.companies (name) VALUES ('Acme') RETURNING id`).Scan(&f.company))
	require.NoError(t, admin.QueryRow(ctx, `INSERT INTO identity.workspaces (company_id, name) VALUES ($1, 'Main') RETURNING id`, f.company).Scan(&f.workspace))
	_, err := admin.Exec(ctx, `INSERT INTO identity.domains (company_id, workspace_id, name) VALUES ($1, $2, $3)`,
		f.company, f.workspace, "mail-"+uuid.NewString()[:8]+".acme.test")
	require.NoError(t, err)
	require.NoError(t, admin.QueryRow(ctx, `INSERT INTO identity.users (company_id, email, name) VALUES ($1, $2, 'Ada') RETURNING id`,
		f.company, "ada-"+uuid.NewString()[:8]+"@acme.test").Scan(&f.user))
	_, err = admin.Exec(ctx, `INSERT INTO identity.memberships (company_id, user_id, role) VALUES ($1, $2, 'owner')`, f.company, f.user)
	require.NoError(t, err)
	require.NoError(t, admin.QueryRow(ctx, `
		INSERT INTO identity.api_keys (company_id, workspace_id, name, prefix, secret_hash, role)
		VALUES ($1, $2, 'ci', $3, 'hash', 'editor') RETURNING id`, f.company, f.workspace, f.prefix).Scan(&f.apiKey))
	require.NoError(t, admin.QueryRow(ctx, `
		INSERT INTO identity.invitations (company_id, workspace_id, user_id, role, token_hash, expires_at)
		VALUES ($1, $2, $3, 'viewer', $4, now() + interval '1 day') RETURNING id`,
		f.company, f.workspace, f.user, f.tokenHash).Scan(&f.invitation))
	return f
}

// requireLookups checks the SECURITY DEFINER look-ups as the gateway: they
// find f's rows that a plain query with no company set does not see.
func requireLookups(t *testing.T, gateway *pgxpool.Pool, f identityFixture) {
	t.Helper()
	ctx := t.Context()

	var id, company uuid.UUID
	var role string
	require.NoError(t, gateway.QueryRow(ctx, `SELECT id, company_id, role FROM identity.api_key_by_prefix($1)`, f.prefix).Scan(&id, &company, &role))
	require.Equal(t, f.apiKey, id)
	require.Equal(t, f.company, company)
	require.Equal(t, "editor", role)

	require.NoError(t, gateway.QueryRow(ctx, `SELECT id, company_id FROM identity.invitation_by_token_hash($1)`, f.tokenHash).Scan(&id, &company))
	require.Equal(t, f.invitation, id)
	require.Equal(t, f.company, company)

	err := gateway.QueryRow(ctx, `SELECT id FROM identity.api_key_by_prefix('hk_unknown')`).Scan(&id)
	require.ErrorIs(t, err, pgx.ErrNoRows)

	for _, table := range []string{"identity.api_keys", "identity.invitations", "identity.workspaces", "identity.domains", "identity.memberships"} {
		n, err := tenantsOrCount(ctx, gateway, table)
		require.NoError(t, err)
		require.Zero(t, n, "%s with no company set", table)
	}
}

func TestIdentityPoliciesAndLookups(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	ctx := t.Context()
	admin := pgtest.Open(t, dbURL)
	gateway := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleGateway))
	mine, theirs := seedIdentity(t, admin), seedIdentity(t, admin)

	requireLookups(t, gateway, mine)

	// The authentication tables have no policy: the gateway reads them before
	// it knows the company.
	var email string
	require.NoError(t, gateway.QueryRow(ctx, `SELECT email FROM identity.users WHERE id = $1`, mine.user).Scan(&email))

	// Inside a company, the gateway sees that company's rows only, and cannot
	// write another's.
	scope := tenancy.Tenant{CompanyID: mine.company, WorkspaceID: mine.workspace, DomainID: uuid.New()}
	err := tenancy.InTx(ctx, gateway, scope, func(tx pgx.Tx) error {
		for _, table := range []string{"identity.workspaces", "identity.domains", "identity.memberships", "identity.invitations", "identity.api_keys"} {
			companies := queryTx(t, tx, "SELECT DISTINCT company_id::text FROM "+table)
			require.Equal(t, []string{mine.company.String()}, companies, table)
		}
		return nil
	})
	require.NoError(t, err)
	err = tenancy.InTx(ctx, gateway, scope, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO identity.workspaces (company_id, name) VALUES ($1, 'Theirs')`, theirs.company)
		return err
	})
	requireCode(t, err, "42501", "insert into another company")

	// No other role may run the look-ups.
	for _, role := range []string{migrations.RoleRecipient, migrations.RoleCampaign, migrations.RoleEvents, migrations.RoleWorker} {
		pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, role))
		_, err := pool.Exec(ctx, `SELECT * FROM identity.api_key_by_prefix($1)`, mine.prefix)
		requireCode(t, err, "42501", "%s calling api_key_by_prefix", role)
		_, err = pool.Exec(ctx, `SELECT * FROM identity.invitation_by_token_hash($1)`, mine.tokenHash)
		requireCode(t, err, "42501", "%s calling invitation_by_token_hash", role)
	}
}

func queryTx(t *testing.T, tx pgx.Tx, sql string) []string {
	t.Helper()
	rows, err := tx.Query(t.Context(), sql)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// TestUpAsOwnerWithoutSuperuser runs the migrations as a plain role that owns
// the database, as on a managed server: the roles already exist, so Up needs
// no CREATEROLE; FORCE binds the owner of the tables to the policies; and the
// SECURITY DEFINER look-ups, which run as that owner, still find their rows.
func TestUpAsOwnerWithoutSuperuser(t *testing.T) {
	t.Parallel()
	pgtest.URL(t) // builds the template, and so the service roles, with the superuser
	ctx := t.Context()

	owner := "herald_owner_" + uuid.NewString()[:8]
	ownerIdent := pgx.Identifier{owner}.Sanitize()
	serverExec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, os.Getenv(pgtest.EnvDatabaseURL))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
		_, err = conn.Exec(ctx, sql)
		return err
	}
	require.NoError(t, serverExec(ctx, "CREATE ROLE "+ownerIdent+" LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS"))
	// Runs after EmptyURL's cleanup has dropped the database the role owns.
	t.Cleanup(func() {
		require.NoError(t, serverExec(context.Background(), "DROP ROLE IF EXISTS "+ownerIdent))
	})

	dbURL := pgtest.EmptyURL(t)
	var dbName string
	admin := pgtest.Open(t, dbURL)
	require.NoError(t, admin.QueryRow(ctx, "SELECT current_database()").Scan(&dbName))
	_, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{dbName}.Sanitize()+" OWNER TO "+ownerIdent)
	require.NoError(t, err)

	ownerURL := pgtest.URLAs(t, dbURL, owner)
	require.NoError(t, migrations.Up(ctx, ownerURL, zaptest.NewLogger(t)))
	require.NoError(t, migrations.Up(ctx, ownerURL, zaptest.NewLogger(t)), "a second run changes nothing and needs no more privilege")

	f := seedIdentity(t, admin)
	requireLookups(t, pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleGateway)), f)

	_, err = insertRow(ctx, admin, tenantTables()[0], newTenant())
	require.NoError(t, err)
	ownerPool := pgtest.Open(t, ownerURL)
	n, err := tenantsOrCount(ctx, ownerPool, "recipient.recipients")
	require.NoError(t, err)
	require.Zero(t, n, "FORCE ROW LEVEL SECURITY binds the tables' owner")

	// River's tables are granted to the worker in a database migrated by the owner too.
	worker := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleWorker))
	_, err = tenantsOrCount(ctx, worker, "river.river_job")
	require.NoError(t, err)
}

func TestRoleURL(t *testing.T) {
	t.Parallel()

	got, err := migrations.RoleURL("postgres://herald:s3cr3t@127.0.0.1:5432/herald?sslmode=disable&password=x&user=y", "herald_recipient")
	require.NoError(t, err)
	require.Equal(t, "postgres://herald_recipient@127.0.0.1:5432/herald?sslmode=disable", got)

	got, err = migrations.RoleURL("postgresql://herald@db/herald", "herald_worker")
	require.NoError(t, err)
	require.Equal(t, "postgresql://herald_worker@db/herald", got)

	for _, bad := range []string{"host=db password=s3cr3t", "mysql://herald:s3cr3t@db/herald", "postgres://herald:s3cr3t@db:bad/x"} {
		_, err := migrations.RoleURL(bad, "herald_worker")
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cr3t")
	}

	require.Equal(t, map[string]string{
		"gateway":       "herald_gateway",
		"campaign":      "herald_campaign",
		"recipient":     "herald_recipient",
		"events-ingest": "herald_events",
		"worker":        "herald_worker",
	}, migrations.ServiceRoles())
}

// TestEnqueuersInsertRiverJobs inserts River jobs the way the services do,
// inside their own scoped transactions and as their own roles: a unique job
// inserted twice is skipped the second time (River's ON CONFLICT DO UPDATE
// needs UPDATE of river_job.kind), and the job is there for the worker.
func TestEnqueuersInsertRiverJobs(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	ctx := t.Context()
	worker := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleWorker))

	for _, role := range []string{migrations.RoleCampaign, migrations.RoleRecipient, migrations.RoleEvents} {
		pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, role))
		ins, err := jobs.NewInserter(pool)
		require.NoError(t, err)
		tn := newTenant()
		args := jobs.RecipientStatusArgs{
			CompanyID: tn.CompanyID, WorkspaceID: tn.WorkspaceID, DomainID: tn.DomainID,
			RecipientID: uuid.New(), EventID: uuid.New(), Status: "bounced", Reason: "hard",
		}
		for attempt := range 2 {
			err := tenancy.InTx(ctx, pool, tn, func(tx pgx.Tx) error {
				res, err := ins.InsertTx(ctx, tx, args, nil)
				if err != nil {
					return err
				}
				require.Equal(t, attempt == 1, res.UniqueSkippedAsDuplicate, "%s, attempt %d", role, attempt)
				return nil
			})
			require.NoError(t, err, role)
		}

		var n int
		require.NoError(t, worker.QueryRow(ctx, `SELECT count(*) FROM river.river_job WHERE args->>'event_id' = $1`, args.EventID.String()).Scan(&n))
		require.Equal(t, 1, n, role)

		// An enqueuer reads back what it inserts, and changes nothing else.
		_, err = pool.Exec(ctx, `DELETE FROM river.river_job WHERE args->>'event_id' = $1`, args.EventID.String())
		requireCode(t, err, "42501", "%s deleting a job", role)
		_, err = pool.Exec(ctx, `UPDATE river.river_job SET state = 'cancelled' WHERE args->>'event_id' = $1`, args.EventID.String())
		requireCode(t, err, "42501", "%s changing a job's state", role)
	}
}
