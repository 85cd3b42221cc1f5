// Package migrations owns Herald's database schema: the SQL of every owning
// schema (identity, recipient, campaign, events, maintenance), embedded in the
// binary, the runner that applies it together with River's own migrations
// (Up, Plan, Down) and the development seed data (Seed).
//
// Each schema has its own linear golang-migrate history in
// <schema>.schema_migrations, so a service's schema can move on without the
// others. River's tables live in schema river and are migrated by River's own
// migrator. A whole run holds one PostgreSQL advisory lock, so two deploys
// running it at once apply every migration exactly once.
//
// A migration file runs as one multi-statement Exec, which PostgreSQL runs as
// one (implicit) transaction: it applies whole or not at all. A file headed
// `-- herald:no-transaction` runs one statement per Exec instead, each in its
// own transaction, because CREATE INDEX CONCURRENTLY and its kin refuse to
// run inside a transaction block; the linter (package lint) keeps such a file
// to one statement besides its SETs.
package migrations

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"

	// Registers the pgx5:// database driver used by migrateSchema.
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/heraldmail/herald/migrations/lint/sqlfile"
)

//go:embed sql
var sqlFS embed.FS

// RiverSchema is the schema that holds River's tables (river_job, ...).
const RiverSchema = "river"

// historyTable is the golang-migrate history table inside each owning schema.
const historyTable = "schema_migrations"

// lockName names the advisory lock held for a whole Up run; the key is derived
// on the server with hashtextextended so that it is stable and readable.
const lockName = "herald.migrations"

// riverModulePath is the module whose version is part of Fingerprint.
const riverModulePath = "github.com/riverqueue/river"

// Files returns the embedded migration files, at
// sql/<schema>/NNNNNN_name.up.sql and .down.sql.
func Files() fs.FS {
	return sqlFS
}

// Schemas returns the owning schemas in the order Up migrates them. Schema
// maintenance holds no service's data: it is the migrations' own, for the
// bookkeeping of maintenance jobs (the progress of backfills, used by the
// worker).
func Schemas() []string {
	return []string{"identity", "recipient", "campaign", "events", "maintenance"}
}

// SchemaStatus is the migration state of one schema.
type SchemaStatus struct {
	// Schema is the schema name; the last entry of Status is RiverSchema.
	Schema string
	// Version is the last applied version, 0 when none is applied.
	Version uint
	// Dirty is true when a migration started but did not finish: the schema
	// needs a look by hand before migrations can go on.
	Dirty bool
	// Latest is the highest version this binary knows; Version < Latest means
	// that Up has migrations to apply.
	Latest uint
}

// Up applies every pending migration: it makes sure the service roles exist
// (see ServiceRoles), migrates each owning schema in the order of Schemas,
// then applies River's migrations in RiverSchema and grants River's tables to
// the roles that use them, then sets up the time-partitioned storage of
// events (StorageStep: TimescaleDB where the events migration found it
// usable, weekly partitions otherwise; see storage.go). It creates the schemas it needs and holds an
// advisory lock for the whole run, so concurrent calls on the same database
// wait for each other and the later ones find nothing to do. databaseURL must
// be a postgres:// URL (golang-migrate takes no other form) of a role allowed
// to create schemas, and to create roles while any service role is missing.
func Up(ctx context.Context, databaseURL string, log *zap.Logger) error {
	return upAt(ctx, databaseURL, time.Now(), log)
}

// upAt is Up with the storage setup's clock.
func upAt(ctx context.Context, databaseURL string, now time.Time, log *zap.Logger) error {
	base, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return err
	}

	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Closing the session releases the advisory lock too.
		_ = conn.Close(context.WithoutCancel(ctx))
	}()

	start := time.Now()
	if err := lock(ctx, conn, log); err != nil {
		return err
	}

	if err := ensureRoles(ctx, conn, log); err != nil {
		return err
	}

	for _, schema := range Schemas() {
		if err := createSchema(ctx, conn, schema); err != nil {
			return err
		}
		if err := migrateSchema(ctx, base, sqlFS, schema, 0, log); err != nil {
			return err
		}
	}

	if err := createSchema(ctx, conn, RiverSchema); err != nil {
		return err
	}
	if err := migrateRiver(ctx, databaseURL, log); err != nil {
		return err
	}
	if err := grantRiver(ctx, conn); err != nil {
		return err
	}

	if err := setupStorage(ctx, conn, now, log); err != nil {
		return err
	}

	if err := unlock(ctx, conn); err != nil {
		return err
	}
	log.Info("migrations applied", zap.Duration("duration", time.Since(start)))
	return nil
}

// lockPoll is how often lock tries the migration lock while another run holds it.
const lockPoll = 200 * time.Millisecond

// lock takes the migration lock on conn's session, waiting for a run that
// holds it. Closing the session releases it too. It polls instead of blocking
// in pg_advisory_lock: a session blocked in a statement holds a snapshot, and
// CREATE INDEX CONCURRENTLY in the run that holds the lock would wait for it.
func lock(ctx context.Context, conn *pgx.Conn, log *zap.Logger) error {
	start := time.Now()
	log.Info("waiting for migration lock", zap.String("lock", lockName))
	tick := time.NewTicker(lockPoll)
	defer tick.Stop()
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", lockName).Scan(&ok); err != nil {
			return fmt.Errorf("acquire migration lock: %w", err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("acquire migration lock: %w", ctx.Err())
		case <-tick.C:
		}
	}
	log.Info("migration lock acquired", zap.Duration("waited", time.Since(start)))
	return nil
}

// unlock releases the migration lock taken by lock.
func unlock(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", lockName); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	return nil
}

// Status reports the migration state of every owning schema, then of River.
// It only reads: a database never migrated reports version 0 everywhere.
func Status(ctx context.Context, databaseURL string) ([]SchemaStatus, error) {
	if _, err := parseDatabaseURL(databaseURL); err != nil {
		return nil, err
	}

	pool, err := newPool(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	statuses := make([]SchemaStatus, 0, len(Schemas())+1)
	for _, schema := range Schemas() {
		latest, err := latestVersion(schema)
		if err != nil {
			return nil, err
		}
		st := SchemaStatus{Schema: schema, Latest: latest}
		if st.Version, st.Dirty, err = schemaVersion(ctx, pool, schema); err != nil {
			return nil, err
		}
		statuses = append(statuses, st)
	}

	migrator, err := newRiverMigrator(pool)
	if err != nil {
		return nil, err
	}
	st := SchemaStatus{Schema: RiverSchema}
	if all := migrator.AllVersions(); len(all) > 0 {
		st.Latest = uint(all[len(all)-1].Version)
	}
	existing, err := migrator.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read river migrations: %w", err)
	}
	if len(existing) > 0 {
		st.Version = uint(existing[len(existing)-1].Version)
	}
	return append(statuses, st), nil
}

// querier is what schemaVersion needs of a connection or a pool.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion reads the golang-migrate history of schema: the applied
// version (0 when none, or when the schema or its history does not exist
// yet) and the dirty flag.
func schemaVersion(ctx context.Context, q querier, schema string) (uint, bool, error) {
	table := pgx.Identifier{schema, historyTable}.Sanitize()
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return 0, false, fmt.Errorf("look up %s: %w", table, err)
	}
	if !exists {
		return 0, false, nil
	}
	var (
		version int64
		dirty   bool
	)
	err := q.QueryRow(ctx, "SELECT version, dirty FROM "+table+" LIMIT 1").Scan(&version, &dirty)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read %s: %w", table, err)
	case version > 0:
		return uint(version), dirty, nil
	}
	return 0, dirty, nil
}

// Fingerprint is a hex SHA-256 over every embedded SQL file and River's
// version and migrations: two binaries with the same fingerprint build the
// same schema, so a database migrated by one can stand in for the other.
func Fingerprint() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(sqlFS, "sql", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := sqlFS.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(body))
		h.Write(body)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}

	// The roles and River's grants are part of the schema a database gets.
	fmt.Fprintf(h, "roles\x00%s\x00%s\x00", rolesSQL(), riverGrantsSQL())
	// So is the index the storage setup makes.
	fmt.Fprintf(h, "storage\x00%s\x00", storageSchemaSQL())

	fmt.Fprintf(h, "river\x00%s\x00", riverVersion())
	migrator, err := newRiverMigrator(nil)
	if err != nil {
		return "", err
	}
	for _, m := range migrator.AllVersions() {
		fmt.Fprintf(h, "%d\x00%s\x00%s\x00", m.Version, m.SQLUp, m.SQLDown)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// riverVersion is the version of the River module linked into this binary,
// or "unknown" when the binary carries no module information.
func riverVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path != riverModulePath {
			continue
		}
		if dep.Replace != nil {
			return dep.Replace.Path + "@" + dep.Replace.Version
		}
		return dep.Version
	}
	return "unknown"
}

// parseDatabaseURL checks that databaseURL is a postgres:// URL, the only form
// golang-migrate accepts. Errors never repeat the URL: it holds a password.
func parseDatabaseURL(databaseURL string) (*url.URL, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, errors.New("parse database url: scheme must be postgres:// or postgresql://")
	}
	return u, nil
}

func createSchema(ctx context.Context, conn *pgx.Conn, schema string) error {
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	return nil
}

// migrateSchema moves one owning schema along its migrations, read from
// sql/<schema> in files, with golang-migrate: steps 0 applies every pending
// migration, steps > 0 applies at most that many, steps < 0 rolls back that
// many (running the .down.sql files). search_path puts the history table (and
// nothing else: the SQL names its schema) in the schema itself.
func migrateSchema(ctx context.Context, base *url.URL, files fs.FS, schema string, steps int, log *zap.Logger) (err error) {
	log = log.With(zap.String("schema", schema))

	source, err := iofs.New(files, path.Join("sql", schema))
	if err != nil {
		return fmt.Errorf("open migrations of %s: %w", schema, err)
	}

	u := *base
	u.Scheme = "pgx5"
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("x-migrations-table", historyTable)
	u.RawQuery = q.Encode()

	db, err := database.Open(u.String())
	if err != nil {
		_ = source.Close()
		return fmt.Errorf("open database for %s: %w", schema, redactURLError(err))
	}
	m, err := migrate.NewWithInstance("iofs", source, "pgx5", fileRunner{Driver: db})
	if err != nil {
		_ = source.Close()
		_ = db.Close()
		return fmt.Errorf("open migrator of %s: %w", schema, redactURLError(err))
	}
	defer func() {
		srcErr, dbErr := m.Close()
		if closeErr := errors.Join(srcErr, dbErr); closeErr != nil && err == nil {
			err = fmt.Errorf("close migrator of %s: %w", schema, closeErr)
		}
	}()
	m.Log = migrateLogger{log: log}

	// golang-migrate has no context: stop it between migrations on cancel.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			select {
			case m.GracefulStop <- true:
			default:
			}
		case <-done:
		}
	}()

	from, err := currentVersion(m)
	if err != nil {
		return fmt.Errorf("read version of %s: %w", schema, err)
	}

	start := time.Now()
	if steps == 0 {
		err = m.Up()
	} else {
		err = m.Steps(steps)
	}
	var dirty migrate.ErrDirty
	switch {
	case errors.Is(err, migrate.ErrNoChange):
		log.Info("schema up to date", zap.Uint("version", from))
		return nil
	case errors.As(err, &dirty):
		return fmt.Errorf("migrate %s: version %d is dirty: repair it by hand, then force the version: %w", schema, dirty.Version, err)
	case err != nil:
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}

	to, err := currentVersion(m)
	if err != nil {
		return fmt.Errorf("read version of %s: %w", schema, err)
	}
	msg := "schema migrated"
	if steps < 0 {
		msg = "schema rolled back"
	}
	log.Info(msg,
		zap.Uint("from_version", from),
		zap.Uint("version", to),
		zap.Duration("duration", time.Since(start)),
	)
	return nil
}

// fileRunner is golang-migrate's database driver with one change: it runs a
// file headed `-- herald:no-transaction` one statement at a time. The
// driver's Run sends the whole file as one Exec, which PostgreSQL runs as an
// implicit transaction, and CREATE INDEX CONCURRENTLY (DROP INDEX
// CONCURRENTLY, REINDEX CONCURRENTLY, ...) refuses to run in one. One Exec
// per statement on the driver's single connection runs each statement in a
// transaction of its own, while session settings (SET lock_timeout) carry
// over from one to the next.
type fileRunner struct {
	database.Driver
}

// Run runs one migration file.
func (r fileRunner) Run(migration io.Reader) error {
	body, err := io.ReadAll(migration)
	if err != nil {
		return fmt.Errorf("read migration: %w", err)
	}
	if !sqlfile.NoTransaction(string(body)) {
		return r.Driver.Run(bytes.NewReader(body))
	}
	file, err := sqlfile.Parse(string(body))
	if err != nil {
		// Nothing has run yet: the file is left for a person to fix.
		return fmt.Errorf("split no-transaction migration: %w", err)
	}
	for _, st := range file.Statements {
		if err := r.Driver.Run(strings.NewReader(st.Text)); err != nil {
			return fmt.Errorf("no-transaction migration, statement at line %d: %w", st.Line, err)
		}
	}
	return nil
}

func currentVersion(m *migrate.Migrate) (uint, error) {
	version, _, err := m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, nil
	}
	return version, err
}

// migrateRiver applies River's pending migrations in RiverSchema.
func migrateRiver(ctx context.Context, databaseURL string, log *zap.Logger) error {
	log = log.With(zap.String("schema", RiverSchema))

	pool, err := newPool(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	migrator, err := newRiverMigrator(pool)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", RiverSchema, err)
	}
	if len(res.Versions) == 0 {
		existing, err := migrator.ExistingVersions(ctx)
		if err != nil {
			return fmt.Errorf("read %s migrations: %w", RiverSchema, err)
		}
		var version int
		if len(existing) > 0 {
			version = existing[len(existing)-1].Version
		}
		log.Info("schema up to date", zap.Int("version", version))
		return nil
	}
	for _, v := range res.Versions {
		log.Debug("river migration applied", zap.Int("version", v.Version), zap.String("name", v.Name), zap.Duration("duration", v.Duration))
	}
	log.Info("schema migrated",
		zap.Int("version", res.Versions[len(res.Versions)-1].Version),
		zap.Int("applied", len(res.Versions)),
		zap.Duration("duration", time.Since(start)),
	)
	return nil
}

// newRiverMigrator returns River's migrator for RiverSchema; pool may be nil
// when only the embedded migrations are read.
func newRiverMigrator(pool *pgxpool.Pool) (*rivermigrate.Migrator[pgx.Tx], error) {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
		// Up logs River's progress itself, with zap.
		Logger: slog.New(slog.DiscardHandler),
		Schema: RiverSchema,
	})
	if err != nil {
		return nil, fmt.Errorf("new river migrator: %w", err)
	}
	return migrator, nil
}

func newPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("new pool: %w", err)
	}
	return pool, nil
}

// latestVersion is the highest version among the embedded migrations of
// schema.
func latestVersion(schema string) (uint, error) {
	files, err := migrationFiles(schema)
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, nil
	}
	return files[len(files)-1].Version, nil
}

// migrationFile is one embedded migration of an owning schema.
type migrationFile struct {
	Version uint
	// Up and Down are the file names, e.g. 000002_identity_accounts.up.sql;
	// Down is empty when the migration has no down file.
	Up, Down string
}

// migrationFiles lists the embedded migrations of schema, oldest first.
func migrationFiles(schema string) ([]migrationFile, error) {
	entries, err := sqlFS.ReadDir(path.Join("sql", schema))
	if err != nil {
		return nil, fmt.Errorf("list migrations of %s: %w", schema, err)
	}
	byVersion := map[uint]*migrationFile{}
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(prefix, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("version of %s/%s: %w", schema, name, err)
		}
		f := byVersion[uint(v)]
		if f == nil {
			f = &migrationFile{Version: uint(v)}
			byVersion[uint(v)] = f
		}
		switch {
		case strings.HasSuffix(name, ".up.sql"):
			f.Up = name
		case strings.HasSuffix(name, ".down.sql"):
			f.Down = name
		}
	}
	files := make([]migrationFile, 0, len(byVersion))
	for _, f := range byVersion {
		files = append(files, *f)
	}
	slices.SortFunc(files, func(a, b migrationFile) int { return cmp.Compare(a.Version, b.Version) })
	return files, nil
}

// redactURLError drops the text of a *url.Error, which repeats the URL and
// so the password in it.
func redactURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}

// migrateLogger sends golang-migrate's messages to zap at debug level.
type migrateLogger struct {
	log *zap.Logger
}

// Printf logs one golang-migrate message.
func (l migrateLogger) Printf(format string, v ...any) {
	l.log.Debug("golang-migrate", zap.String("detail", strings.TrimSpace(fmt.Sprintf(format, v...))))
}

// Verbose reports whether golang-migrate should send its verbose messages.
func (l migrateLogger) Verbose() bool {
	return l.log.Core().Enabled(zapcore.DebugLevel)
}
