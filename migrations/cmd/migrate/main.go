// Command migrate applies Herald's database migrations (`migrate up`) or
// reports how far each schema is migrated (`migrate status`).
//
// It reads the database URL from DATABASE_URL, or from the file named by
// DATABASE_URL_FILE. Logs go to stderr: JSON when APP_ENV=production, a
// console format otherwise, at LOG_LEVEL (default info). `migrate status`
// prints its table on stdout.
package main

import (
	"context"
	"errors"
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
)

const usage = `usage: migrate <command>

commands:
  up      apply every pending migration (owning schemas, then River)
  status  print each schema's version, latest known version and dirty flag

environment:
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
