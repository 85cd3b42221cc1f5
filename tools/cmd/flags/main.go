// Command flags manages Herald's feature flags.
//
//	flags check [-root DIR]       fail when a flag is past its expected removal date, when Go
//	                              code names a flag that is not registered, or when a
//	                              registered flag is referenced nowhere
//	flags list                    every registered flag, its definition and its values in Redis
//	flags set NAME true|false [-company ID | -workspace ID]
//	flags clear NAME [-company ID | -workspace ID]
//
// list, set and clear reach Redis through REDIS_HOST, REDIS_PORT, REDIS_PASSWORD
// (or REDIS_PASSWORD_FILE), REDIS_DB and REDIS_TLS, like the services; a change made by set or
// clear reaches every running process within milliseconds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/redisconn"
	"go.uber.org/zap"
)

// errUsage is a command line that cannot be run; the usage has been printed.
var errUsage = errors.New("usage")

// errCheckFailed is a check that found problems; they have been printed.
var errCheckFailed = errors.New("flags check failed")

func main() {
	e := env{
		source: config.OS(),
		stdout: os.Stdout,
		stderr: os.Stderr,
		defs:   flags.Registered(),
		now:    time.Now(),
	}
	if err := run(context.Background(), os.Args[1:], e); err != nil {
		if !errors.Is(err, errUsage) && !errors.Is(err, errCheckFailed) {
			fmt.Fprintf(os.Stderr, "flags: %s\n", err)
		}
		os.Exit(1)
	}
}

// env is what run reads besides its arguments; tests replace the registry and the key prefix.
type env struct {
	source         config.Source
	stdout, stderr io.Writer
	defs           []flags.Definition
	// prefix is put before every Redis key (tests only).
	prefix string
	now    time.Time
}

// redisConfig is the configuration of list, set and clear.
type redisConfig struct {
	config.Redis
}

func run(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		usage(e.stderr)
		return errUsage
	}
	switch args[0] {
	case "check":
		return runCheck(args[1:], e)
	case "list":
		return runList(ctx, args[1:], e)
	case "set", "clear":
		return runWrite(ctx, args[0], args[1:], e)
	}
	usage(e.stderr)
	return errUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  flags check [-root DIR]
  flags list
  flags set NAME true|false [-company ID | -workspace ID]
  flags clear NAME [-company ID | -workspace ID]
`)
}

func runCheck(args []string, e env) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	root := fs.String("root", "", "repository root (default: the directory of go.work above the working directory)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *root == "" {
		r, err := findRoot(".")
		if err != nil {
			return err
		}
		*root = r
	}
	res, err := check(*root, e.defs, e.now)
	if err != nil {
		return err
	}
	for _, w := range res.warnings {
		fmt.Fprintf(e.stdout, "warning: %s\n", w)
	}
	for _, p := range res.problems {
		fmt.Fprintf(e.stderr, "%s\n", p)
	}
	if len(res.problems) > 0 {
		fmt.Fprintf(e.stderr, "flags check: %d problem(s)\n", len(res.problems))
		return errCheckFailed
	}
	fmt.Fprintf(e.stdout, "flags check: %d flag(s) registered, %d Go file(s) scanned, no problem\n", len(e.defs), res.files)
	return nil
}

// provider connects to Redis and returns a provider that reads nothing until asked.
func provider(ctx context.Context, e env) (*flags.Redis, func(), error) {
	var cfg redisConfig
	if err := config.Load(&cfg, e.source); err != nil {
		return nil, nil, fmt.Errorf("configuration: %w", err)
	}
	log := zap.NewNop()
	rdb := redisconn.Connect(ctx, cfg.Redis, log)
	p, err := flags.NewRedis(rdb, nil, log, flags.WithDefinitions(e.defs...), flags.WithKeyPrefix(e.prefix))
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	return p, func() { _ = rdb.Close() }, nil
}

func runList(ctx context.Context, args []string, e env) error {
	if len(args) != 0 {
		usage(e.stderr)
		return errUsage
	}
	p, closeFn, err := provider(ctx, e)
	if err != nil {
		return err
	}
	defer closeFn()
	if len(e.defs) == 0 {
		fmt.Fprintln(e.stdout, "no flag registered")
		return nil
	}
	for _, d := range p.Registry().Definitions() {
		st, err := p.State(ctx, d.Flag)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s\n  %s\n  default %t, scope %s, owner %s, added %s, expected removal %s\n",
			d.Flag, d.Description, d.Default, d.Scope, d.Owner, day(d.Added), day(d.ExpectedRemoval))
		if st.Global != nil {
			fmt.Fprintf(e.stdout, "  global: %t\n", *st.Global)
		}
		printTargets(e.stdout, "company", st.Companies)
		printTargets(e.stdout, "workspace", st.Workspaces)
	}
	return nil
}

func printTargets(w io.Writer, level string, m map[uuid.UUID]bool) {
	ids := make([]uuid.UUID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	for _, id := range ids {
		fmt.Fprintf(w, "  %s %s: %t\n", level, id, m[id])
	}
}

func day(t time.Time) string { return t.Format(time.DateOnly) }

func runWrite(ctx context.Context, verb string, args []string, e env) error {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	company := fs.String("company", "", "set for this company id only")
	workspace := fs.String("workspace", "", "set for this workspace id only")
	// Flags may come after the positional arguments.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	want := 1
	if verb == "set" {
		want = 2
	}
	if len(pos) != want || (*company != "" && *workspace != "") {
		usage(e.stderr)
		return errUsage
	}
	reg, err := flags.NewRegistry(e.defs...)
	if err != nil {
		return fmt.Errorf("flags registry: %w", err)
	}
	def, ok := reg.ByName(pos[0])
	if !ok {
		return fmt.Errorf("flag %s: %w (flags list shows the registered ones)", pos[0], flags.ErrUnknownFlag)
	}
	target := flags.Global()
	for level, s := range map[flags.Level]string{flags.LevelCompany: *company, flags.LevelWorkspace: *workspace} {
		if s == "" {
			continue
		}
		id, err := uuid.Parse(s)
		if err != nil {
			return fmt.Errorf("-%s: not a uuid", level)
		}
		target = flags.Target{Level: level, ID: id}
	}
	p, closeFn, err := provider(ctx, e)
	if err != nil {
		return err
	}
	defer closeFn()
	if verb == "clear" {
		if err := p.Clear(ctx, def.Flag, target); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s cleared at %s\n", def.Flag, target)
		return nil
	}
	value, err := strconv.ParseBool(pos[1])
	if err != nil {
		return fmt.Errorf("value %q: must be true or false", pos[1])
	}
	if err := p.Set(ctx, def.Flag, target, value); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s set to %t at %s\n", def.Flag, value, target)
	return nil
}
