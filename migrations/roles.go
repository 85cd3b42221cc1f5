package migrations

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// The database roles, one per service. Each may log in and is nothing more:
// no superuser, no BYPASSRLS, no CREATEDB, no CREATEROLE, no replication, and
// it owns no object, so row-level security and the grants of the schema
// migrations bind it. Up creates them without a password: operators set one
// (or use certificates) outside the migrations, see docs/security.md.
const (
	RoleGateway   = "herald_gateway"
	RoleCampaign  = "herald_campaign"
	RoleRecipient = "herald_recipient"
	RoleEvents    = "herald_events"
	RoleWorker    = "herald_worker"
)

// ServiceRoles maps each service (the name of its cmd/ directory) to the
// database role it connects as.
func ServiceRoles() map[string]string {
	return map[string]string{
		"gateway":       RoleGateway,
		"campaign":      RoleCampaign,
		"recipient":     RoleRecipient,
		"events-ingest": RoleEvents,
		"worker":        RoleWorker,
	}
}

// roles lists the service roles in a fixed order.
func roles() []string {
	return []string{RoleGateway, RoleCampaign, RoleRecipient, RoleEvents, RoleWorker}
}

// riverEnqueuers are the roles that insert River jobs inside their own
// transactions (transactional enqueue), the one grant outside their schema.
func riverEnqueuers() []string {
	return []string{RoleCampaign, RoleRecipient, RoleEvents}
}

// roleAttributes are the attributes every service role has; Up puts them
// back on a role that drifted.
const roleAttributes = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"

// RoleURL returns databaseURL, a postgres:// URL, with its user replaced by
// role and its password dropped (from the user info and from the query), so
// that a service connects to the same database as its own role. The password
// comes from the environment of the connection instead (PGPASSWORD, a
// .pgpass file, a client certificate) or is not needed at all where the
// server trusts the loopback, as in development and tests. Errors never
// repeat the URL.
func RoleURL(databaseURL, role string) (string, error) {
	u, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return "", err
	}
	u.User = url.User(role)
	q := u.Query()
	if q.Has("user") || q.Has("password") {
		q.Del("user")
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// rolesSQL creates each service role that is missing and puts back the
// attributes of one that drifted; it changes nothing when every role is as it
// should be, so it needs no privilege then.
//
// Roles belong to the cluster while the migration lock belongs to one
// database: runs on two databases of a cluster (test databases, say) may
// create a role at the same moment, and the loser of that race finds it
// created.
func rolesSQL() string {
	var b strings.Builder
	for _, role := range roles() {
		ident := pgx.Identifier{role}.Sanitize()
		literal := "'" + role + "'"
		fmt.Fprintf(&b, `DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %[2]s) THEN
		BEGIN
			CREATE ROLE %[1]s %[3]s;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN
			NULL; -- created meanwhile by a run on another database of the cluster
		END;
	END IF;
	IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %[2]s
		AND (rolsuper OR rolbypassrls OR rolcreatedb OR rolcreaterole OR rolreplication OR NOT rolcanlogin)) THEN
		ALTER ROLE %[1]s %[3]s;
	END IF;
END
$roles$;
`, ident, literal, roleAttributes)
	}
	return b.String()
}

// ensureRoles runs rolesSQL on conn.
func ensureRoles(ctx context.Context, conn *pgx.Conn, log *zap.Logger) error {
	if _, err := conn.Exec(ctx, rolesSQL()); err != nil {
		return fmt.Errorf("ensure service roles: %w", err)
	}
	log.Info("service roles ensured", zap.Strings("roles", roles()))
	return nil
}

// riverGrantsSQL grants River's schema: everything in it to the worker, which
// runs the jobs, and to the services that enqueue inside their own
// transactions only what inserting a job takes: SELECT and INSERT on
// river_job, UPDATE of its kind column (a unique insert that finds its
// duplicate answers with ON CONFLICT DO UPDATE SET kind = kind, so that the
// row is returned), its id sequence and River's functions.
//
// River's migrations are River's own SQL, so the grants are given here after
// them, every run (GRANT is idempotent), and as default privileges, so that a
// table a later River release creates is the worker's too.
func riverGrantsSQL() string {
	schema := pgx.Identifier{RiverSchema}.Sanitize()
	job := pgx.Identifier{RiverSchema, "river_job"}.Sanitize()
	seq := pgx.Identifier{RiverSchema, "river_job_id_seq"}.Sanitize()
	worker := pgx.Identifier{RoleWorker}.Sanitize()
	enqueuers := identList(riverEnqueuers())
	all := identList(append([]string{RoleWorker}, riverEnqueuers()...))

	return strings.Join([]string{
		"GRANT USAGE ON SCHEMA " + schema + " TO " + all,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + schema + " TO " + worker,
		"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA " + schema + " TO " + worker,
		"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA " + schema + " TO " + all,
		"GRANT SELECT, INSERT ON " + job + " TO " + enqueuers,
		"GRANT UPDATE (kind) ON " + job + " TO " + enqueuers,
		"GRANT USAGE ON SEQUENCE " + seq + " TO " + enqueuers,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + worker,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO " + worker,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT EXECUTE ON FUNCTIONS TO " + all,
	}, ";\n") + ";\n"
}

// grantRiver runs riverGrantsSQL on conn, as one transaction.
func grantRiver(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, riverGrantsSQL()); err != nil {
		return fmt.Errorf("grant %s: %w", RiverSchema, err)
	}
	return nil
}

func identList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}
