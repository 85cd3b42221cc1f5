// Command migrate applies Herald's database migrations and seed data
// (`migrate up`), shows what up would apply (`migrate plan`), reports how far
// each schema is migrated (`migrate status`), rolls migrations back on a
// development database (`migrate down N`), applies the development seed data
// alone (`migrate seed`), or checks the migrations against the zero-downtime
// rules (`migrate lint`).
//
// Every command but lint reads the database URL from DATABASE_URL, or from
// the file named by DATABASE_URL_FILE, and APP_ENV: up skips the seed data
// when APP_ENV=production, seed is refused there, and down is refused when
// APP_ENV is production or staging. Logs go to stderr: JSON when
// APP_ENV=production, a console format otherwise, at LOG_LEVEL (default
// info). Tables (status, plan, down) go to stdout, and so do lint's findings.
// Exit status: 0 done, 1 failed (lint: any finding), 2 bad command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/lint"
)

const usage = `usage: migrate <command>

commands:
  up      apply every pending migration: the service roles, the owning schemas,
          River's migrations, the storage setup of events (TimescaleDB where
          usable, weekly partitions otherwise), then the seed data unless
          APP_ENV=production
  plan    print the migrations up would apply, per schema and in order, with
          their files, and what the storage setup would do; applies nothing
  status  print each schema's version, latest known version and dirty flag,
          and how events are stored
  down [-schema NAME] N
          roll back the last N migrations of the owning schemas, newest first,
          the schemas in the reverse order of up (maintenance, events,
          campaign, recipient, identity); -schema limits it to one schema.
          River's migrations are never rolled back. Development only: refused
          when APP_ENV is production or staging
  seed    apply the development seed data (idempotent); refused when
          APP_ENV=production
  lint [-code-root DIR]... [PATH]...
          check migrations against the zero-downtime rules (docs/migrations.md);
          exits 1 on any finding. PATHs are .sql files or directories on disk
          (default: the migrations built into this binary). -code-root names a
          directory searched for Go references to the flag of a contract step
          (repeatable; default: the repository root, where go.work is)

environment (every command but lint):
  DATABASE_URL       postgres:// URL of the database
  DATABASE_URL_FILE  file holding that URL (used when DATABASE_URL is unset)
  APP_ENV            development (default), test, staging or production
  LOG_LEVEL          debug, info (default), warn or error
`

// errUsage means the command line names no known command.
var errUsage = errors.New("usage")

func main() {
	log, err := newLogger(os.Getenv("APP_ENV"), os.Getenv("LOG_LEVEL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, log, os.Args[1:])
	stop()
	_ = log.Sync()

	switch {
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "migrate:", oneLine(err.Error()))
		os.Exit(1)
	}
}

// run carries out the command named by args (without the program name).
func run(ctx context.Context, log *zap.Logger, args []string) error {
	if len(args) > 0 && args[0] == "lint" {
		return runLint(args[1:], os.Stdout, os.Getwd)
	}
	cmd, err := parseCommand(args)
	if err != nil {
		return err
	}
	cmd.appEnv = os.Getenv("APP_ENV")
	if err := cmd.allowed(); err != nil {
		return err
	}
	databaseURL, err := loadDatabaseURL(os.Getenv, os.ReadFile)
	if err != nil {
		return err
	}
	return execute(ctx, log, cmd, databaseURL, os.Stdout)
}

// command is a parsed command line (every command but lint).
type command struct {
	name string
	// n and schema are down's arguments.
	n      int
	schema string
	// appEnv is APP_ENV.
	appEnv string
}

// parseCommand parses args (without the program name); errUsage when they
// make no sense.
func parseCommand(args []string) (command, error) {
	if len(args) == 0 {
		return command{}, errUsage
	}
	cmd := command{name: args[0]}
	switch cmd.name {
	case "up", "plan", "status", "seed":
		if len(args) != 1 {
			return command{}, errUsage
		}
	case "down":
		fset := flag.NewFlagSet("down", flag.ContinueOnError)
		fset.SetOutput(io.Discard)
		fset.StringVar(&cmd.schema, "schema", "", "roll back migrations of this schema only")
		if err := fset.Parse(args[1:]); err != nil || fset.NArg() != 1 {
			return command{}, errUsage
		}
		n, err := strconv.Atoi(fset.Arg(0))
		if err != nil || n < 1 {
			return command{}, errUsage
		}
		cmd.n = n
	default:
		return command{}, errUsage
	}
	return cmd, nil
}

// allowed checks APP_ENV, and refuses the commands that have no place in it:
// seed in production, down in production and staging. It needs no database,
// so a refusal never connects.
func (c command) allowed() error {
	switch c.appEnv {
	case "", "development", "test", "staging", "production":
	default:
		// A typo (APP_ENV=prod) must not pass for development and seed a
		// production database.
		return fmt.Errorf("APP_ENV must be development, test, staging or production, not %q", c.appEnv)
	}
	switch {
	case c.name == "seed" && c.appEnv == "production":
		return errors.New("seed data is refused when APP_ENV=production")
	case c.name == "down" && (c.appEnv == "production" || c.appEnv == "staging"):
		return fmt.Errorf("down is refused when APP_ENV=%s: rolling back is for development databases only", c.appEnv)
	}
	return nil
}

// execute runs cmd against databaseURL, writing tables to out.
func execute(ctx context.Context, log *zap.Logger, cmd command, databaseURL string, out io.Writer) error {
	if err := cmd.allowed(); err != nil {
		return err
	}
	switch cmd.name {
	case "up":
		if err := migrations.Up(ctx, databaseURL, log); err != nil {
			return fmt.Errorf("up: %w", err)
		}
		if cmd.appEnv == "production" {
			log.Info("seed data skipped: APP_ENV=production")
			return nil
		}
		if err := migrations.Seed(ctx, databaseURL, log); err != nil {
			return fmt.Errorf("up: %w", err)
		}
		return nil
	case "seed":
		if err := migrations.Seed(ctx, databaseURL, log); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		return nil
	case "plan":
		plan, err := migrations.Plan(ctx, databaseURL)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		if len(plan) == 0 {
			if _, err := fmt.Fprintln(out, "nothing to apply: every schema is up to date"); err != nil {
				return fmt.Errorf("plan: write: %w", err)
			}
			return nil
		}
		return writeMigrations(out, plan)
	case "down":
		done, err := migrations.Down(ctx, databaseURL, cmd.n, migrations.DownOptions{Schema: cmd.schema}, log)
		if len(done) > 0 {
			if werr := writeMigrations(out, done); werr != nil && err == nil {
				err = werr
			}
		}
		if err != nil {
			return fmt.Errorf("down: %w", err)
		}
		return nil
	case "status":
		statuses, err := migrations.Status(ctx, databaseURL)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		storage, err := migrations.StorageStatus(ctx, databaseURL)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		return writeStatus(out, statuses, storage)
	default:
		return errUsage
	}
}

// runLint lints the migrations named by args (the embedded ones when args
// names none) and prints every finding to out. It fails when there is any.
func runLint(args []string, out io.Writer, getwd func() (string, error)) error {
	fset := flag.NewFlagSet("lint", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	var roots stringList
	fset.Var(&roots, "code-root", "directory searched for references to a contract step's flag (repeatable)")
	if err := fset.Parse(args); err != nil {
		return errUsage
	}

	if len(roots) == 0 {
		// Without go.work above, no root: only a contract step needs one,
		// and the linter says so when it meets one.
		if wd, err := getwd(); err == nil {
			if root, err := lint.RepoRoot(wd); err == nil {
				roots = stringList{root}
			}
		}
	}
	linter := lint.New(lint.Options{CodeRoots: roots})

	var (
		findings []lint.Finding
		err      error
	)
	if paths := fset.Args(); len(paths) > 0 {
		findings, err = linter.LintPaths(paths...)
	} else {
		findings, err = linter.LintFS(migrations.Files())
	}
	if err != nil {
		return fmt.Errorf("lint: %w", err)
	}
	for _, f := range findings {
		if _, err := fmt.Fprintf(out, "%s\n\n", f); err != nil {
			return fmt.Errorf("lint: write findings: %w", err)
		}
	}
	if len(findings) > 0 {
		return fmt.Errorf("lint: %d finding(s)", len(findings))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

// String implements flag.Value.
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// writeStatus prints one row per schema, then one line on the storage of
// events.
func writeStatus(out io.Writer, statuses []migrations.SchemaStatus, storage migrations.StorageState) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SCHEMA\tVERSION\tLATEST\tDIRTY")
	for _, s := range statuses {
		fmt.Fprintf(w, "%s\t%d\t%d\t%t\n", s.Schema, s.Version, s.Latest, s.Dirty)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if _, err := fmt.Fprintln(out, storageLine(storage)); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// storageLine says how events are stored, in one line.
func storageLine(s migrations.StorageState) string {
	switch {
	case s.Mode == "":
		return "storage: not set up (the events migrations did not run)"
	case s.Mode == migrations.StorageTimescale && s.Hypertable:
		return "storage: timescaledb, events.engagement_events is a hypertable with its retention policy"
	case s.Mode == migrations.StorageTimescale:
		return "storage: timescaledb, setup pending (migrate up)"
	case len(s.Partitions) == 0:
		return "storage: partitioned, no partition yet (migrate up)"
	}
	return fmt.Sprintf("storage: partitioned, %d weekly partitions, %s to %s",
		len(s.Partitions), s.Partitions[0], s.Partitions[len(s.Partitions)-1])
}

// writeMigrations prints one row per migration, in order.
func writeMigrations(out io.Writer, ms []migrations.Migration) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SCHEMA\tVERSION\tFILE")
	for _, m := range ms {
		version := strconv.FormatUint(uint64(m.Version), 10)
		if m.Schema == migrations.StorageStep {
			version = "-" // a setup step, not a versioned migration
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", m.Schema, version, m.File)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write migrations: %w", err)
	}
	return nil
}

// loadDatabaseURL reads DATABASE_URL, or else the file named by
// DATABASE_URL_FILE. Its errors name the variable, never its value.
func loadDatabaseURL(getenv func(string) string, readFile func(string) ([]byte, error)) (string, error) {
	if v := getenv("DATABASE_URL"); v != "" {
		return v, nil
	}
	file := getenv("DATABASE_URL_FILE")
	if file == "" {
		return "", errors.New("DATABASE_URL is not set (nor DATABASE_URL_FILE)")
	}
	body, err := readFile(file)
	if err != nil {
		return "", fmt.Errorf("read DATABASE_URL_FILE: %w", err)
	}
	v := strings.TrimSpace(string(body))
	if v == "" {
		return "", errors.New("DATABASE_URL_FILE names an empty file")
	}
	return v, nil
}

// newLogger builds the logger: production JSON when appEnv is production,
// the development console format otherwise, at level (default info).
func newLogger(appEnv, level string) (*zap.Logger, error) {
	cfg := zap.NewDevelopmentConfig()
	if appEnv == "production" {
		cfg = zap.NewProductionConfig()
	}
	lvl := zapcore.InfoLevel
	if level != "" {
		var err error
		if lvl, err = zapcore.ParseLevel(level); err != nil {
			return nil, fmt.Errorf("LOG_LEVEL: %w", err)
		}
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log, nil
}

// oneLine folds a multi-line error (SQL errors can carry a detail line) so
// that the failure reads as one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
