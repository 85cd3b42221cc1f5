package migrations_test

import (
	"context"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/lint/sqlfile"
	"github.com/heraldmail/herald/migrations/pgtest"
)

// The development tenant of the seed files.
const (
	seedCompanyID   = "00000000-0000-4000-8000-00000000c0de"
	seedWorkspaceID = "00000000-0000-4000-8000-0000000000a1"
	seedDomainID    = "00000000-0000-4000-8000-0000000000b1"
	seedUserID      = "00000000-0000-4000-8000-0000000000d1"
)

// TestSeedFiles keeps the seed files idempotent: every INSERT does nothing on
// a conflict.
func TestSeedFiles(t *testing.T) {
	t.Parallel()
	names, err := fs.Glob(migrations.SeedFiles(), "seed/*")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for _, name := range names {
		require.Regexp(t, `^seed/\d{6}_[a-z0-9_]+\.sql$`, name)
		body, err := fs.ReadFile(migrations.SeedFiles(), name)
		require.NoError(t, err)
		file, err := sqlfile.Parse(string(body))
		require.NoError(t, err, name)
		for _, st := range file.Statements {
			text := strings.ToUpper(strings.Join(strings.Fields(st.Text), " "))
			if strings.HasPrefix(text, "INSERT") {
				require.Contains(t, text, "ON CONFLICT DO NOTHING", "%s:%d", name, st.Line)
			}
			require.NotRegexp(t, regexp.MustCompile(`^(UPDATE|DELETE|TRUNCATE|DROP|ALTER)`), text, "%s:%d: seed data only inserts", name, st.Line)
		}
	}
}

// seedOwnerURL returns the URLs of a new, empty database: as the superuser,
// and as the database's owner, a new role that is neither a superuser nor
// BYPASSRLS, as on a managed server: row-level security binds it.
func seedOwnerURL(t *testing.T) (superURL, ownerURL string) {
	t.Helper()
	pgtest.URL(t) // the template build creates the service roles with the superuser
	ctx := t.Context()
	owner := "herald_seed_owner_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
	ident := pgx.Identifier{owner}.Sanitize()
	serverExec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, os.Getenv(pgtest.EnvDatabaseURL))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
		_, err = conn.Exec(ctx, sql)
		return err
	}
	require.NoError(t, serverExec(ctx, "CREATE ROLE "+ident+" LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS"))
	// Runs after EmptyURL's cleanup has dropped the database the role owns.
	t.Cleanup(func() {
		require.NoError(t, serverExec(context.Background(), "DROP ROLE IF EXISTS "+ident))
	})
	dbURL := pgtest.EmptyURL(t)
	admin := pgtest.Open(t, dbURL)
	var dbName string
	require.NoError(t, admin.QueryRow(ctx, "SELECT current_database()").Scan(&dbName))
	_, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{dbName}.Sanitize()+" OWNER TO "+ident)
	require.NoError(t, err)
	return dbURL, pgtest.URLAs(t, dbURL, owner)
}

// tableDigests returns, for every table the seed files fill, its row count
// and a digest of its rows, read as the superuser (who bypasses row-level
// security): equal digests, equal data.
func tableDigests(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range []string{
		"identity.companies", "identity.users", "identity.workspaces", "identity.domains",
		"identity.memberships", "recipient.recipients", "campaign.campaigns",
	} {
		var digest string
		require.NoError(t, pool.QueryRow(t.Context(),
			"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM "+table+" AS t").Scan(&digest))
		out[table] = digest
	}
	return out
}

func TestSeed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	log := zaptest.NewLogger(t)
	superURL, ownerURL := seedOwnerURL(t)
	require.NoError(t, migrations.Up(ctx, ownerURL, log))
	super := pgtest.Open(t, superURL)
	owner := pgtest.Open(t, ownerURL)

	empty := tableDigests(t, super)
	require.NoError(t, migrations.Seed(ctx, ownerURL, log))
	seeded := tableDigests(t, super)
	for table, digest := range seeded {
		require.NotEqual(t, empty[table], digest, "the seed data fills %s", table)
	}

	require.NoError(t, migrations.Seed(ctx, ownerURL, log))
	require.Equal(t, seeded, tableDigests(t, super), "seeding twice changes nothing")

	var (
		email    string
		password *string
	)
	require.NoError(t, owner.QueryRow(ctx, `SELECT email, password_hash FROM identity.users WHERE id = $1`, seedUserID).Scan(&email, &password))
	require.Equal(t, "dev@herald.localhost", email)
	require.Nil(t, password, "the development user has no password: none lives in the repository")

	// The rows behind FORCE ROW LEVEL SECURITY belong to the development tenant:
	// its owner sees them once scoped to it, and only then.
	var unscoped int
	require.NoError(t, owner.QueryRow(ctx, `SELECT count(*) FROM recipient.recipients`).Scan(&unscoped))
	require.Zero(t, unscoped)
	err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('app.company_id', $1, true), set_config('app.workspace_id', $2, true),
			set_config('app.domain_id', $3, true)`, seedCompanyID, seedWorkspaceID, seedDomainID); err != nil {
			return err
		}
		var domain, role string
		if err := tx.QueryRow(ctx, `SELECT name FROM identity.domains WHERE id = $1 AND workspace_id = $2`, seedDomainID, seedWorkspaceID).Scan(&domain); err != nil {
			return err
		}
		require.Equal(t, "mail.herald.localhost", domain)
		if err := tx.QueryRow(ctx, `SELECT role FROM identity.memberships WHERE user_id = $1 AND workspace_id IS NULL`, seedUserID).Scan(&role); err != nil {
			return err
		}
		require.Equal(t, "owner", role)
		var recipients, campaigns int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM recipient.recipients`).Scan(&recipients); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM campaign.campaigns`).Scan(&campaigns); err != nil {
			return err
		}
		require.Positive(t, recipients)
		require.Positive(t, campaigns)
		return nil
	})
	require.NoError(t, err)
}

// TestSeedKeepsATakenAddress seeds a database where a sign-up took the
// development user's address first: seeding still succeeds and leaves that
// account alone.
func TestSeedKeepsATakenAddress(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := t.Context()
	var companyID string
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO identity.companies (name) VALUES ('Early') RETURNING id`).Scan(&companyID))
	_, err := pool.Exec(ctx, `INSERT INTO identity.users (company_id, email, password_hash) VALUES ($1, 'dev@herald.localhost', 'x')`, companyID)
	require.NoError(t, err)

	require.NoError(t, migrations.Seed(ctx, pool.Config().ConnString(), zaptest.NewLogger(t)))

	var owner string
	require.NoError(t, pool.QueryRow(ctx, `SELECT company_id::text FROM identity.users WHERE email = 'dev@herald.localhost'`).Scan(&owner))
	require.Equal(t, companyID, owner)
	var members int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM identity.memberships WHERE company_id = $1`, seedCompanyID).Scan(&members))
	require.Zero(t, members, "no membership for a user of another company")
}
