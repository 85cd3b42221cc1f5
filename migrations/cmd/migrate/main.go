// Command migrate applies Herald's database migrations (`migrate up`),
// reports how far each schema is migrated (`migrate status`), or checks the
// migrations against the zero-downtime rules (`migrate lint`).
//
// up and status read the database URL from DATABASE_URL, or from the file
// named by DATABASE_URL_FILE. Logs go to stderr: JSON when
// APP_ENV=production, a console format otherwise, at LOG_LEVEL (default
// info). `migrate status` prints its table on stdout, `migrate lint` its
// findings; lint exits 1 when there is any.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
  up      apply every pending migration (owning schemas, then River)
  status  print each schema's version, latest known version and dirty flag
  lint [-code-root DIR]... [PATH]...
          check migrations against the zero-downtime rules (docs/migrations.md);
          exits 1 on any finding. PATHs are .sql files or directories on disk
          (default: the migrations built into this binary). -code-root names a
          directory searched for Go references to the flag of a contract step
          (repeatable; default: the repository root, where go.work is)

environment (up and status):
  DATABASE_URL       postgres:// URL of the database
  DATABASE_URL_FILE  file holding that URL (used when DATABASE_URL is unset)
  APP_ENV            production for JSON logs
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
	if len(args) != 1 || (args[0] != "up" && args[0] != "status") {
		return errUsage
	}
	databaseURL, err := loadDatabaseURL(os.Getenv, os.ReadFile)
	if err != nil {
		return err
	}
	return execute(ctx, log, args[0], databaseURL, os.Stdout)
}

// execute runs command against databaseURL, writing status tables to out.
func execute(ctx context.Context, log *zap.Logger, command, databaseURL string, out io.Writer) error {
	switch command {
	case "up":
		if err := migrations.Up(ctx, databaseURL, log); err != nil {
			return fmt.Errorf("up: %w", err)
		}
		return nil
	case "status":
		statuses, err := migrations.Status(ctx, databaseURL)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		return writeStatus(out, statuses)
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

// writeStatus prints one row per schema.
func writeStatus(out io.Writer, statuses []migrations.SchemaStatus) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SCHEMA\tVERSION\tLATEST\tDIRTY")
	for _, s := range statuses {
		fmt.Fprintf(w, "%s\t%d\t%d\t%t\n", s.Schema, s.Version, s.Latest, s.Dirty)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
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
