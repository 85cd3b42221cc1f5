// Command devstack runs the whole of Herald on a development machine: it makes sure
// PostgreSQL and Redis are installed and running (scripts/deps.sh, scripts/stack.sh), applies
// the migrations, builds the five services into .dev/bin, starts them with a development
// configuration, waits until every one is ready, and prints where to reach them. Ctrl-C stops
// the services gracefully; PostgreSQL and Redis keep running for the next run (make
// stack-down stops them).
//
// Run it with `make dev`.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/lint"
)

// Time limits.
const (
	// readyTimeout bounds the wait for every service's /health/ready.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds a graceful stop: the services drain for DRAIN_DELAY (5s) and then
	// finish in-flight work within SHUTDOWN_TIMEOUT (30s).
	stopTimeout = 40 * time.Second
	// tailLines is how many of a service's last output lines a failure report shows.
	tailLines = 30
)

// service is one process of the stack and its ports.
type service struct {
	name string
	// adminPort serves /health, /health/ready, /metrics and pprof.
	adminPort int
	// grpcPort is the gRPC listener, 0 when the service has none.
	grpcPort int
	// httpPort is the public REST listener, 0 when the service has none.
	httpPort int
}

// services lists the processes in start order: the gRPC services first, the gateway last.
func services() []service {
	return []service{
		{name: "campaign", adminPort: 9051, grpcPort: 50051},
		{name: "recipient", adminPort: 9052, grpcPort: 50052},
		{name: "events-ingest", adminPort: 9053, grpcPort: 50053},
		{name: "worker", adminPort: 3002},
		{name: "gateway", adminPort: 9001, httpPort: 3001},
	}
}

// env returns the variables devstack sets for svc on top of the caller's environment.
func (svc service) env(stack map[string]string, jwtSecret string) map[string]string {
	// Each service connects as its own database role, without a password (the local cluster
	// trusts the loopback); the migrations ran as stack's DATABASE_URL, which prepare has
	// already parsed, so RoleURL cannot fail here. Should it, the empty URL stops the service
	// at its configuration check.
	databaseURL, _ := migrations.RoleURL(stack["DATABASE_URL"], migrations.ServiceRoles()[svc.name])
	env := map[string]string{
		"APP_ENV":      "development",
		"DATABASE_URL": databaseURL,
		"REDIS_HOST":   stack["REDIS_HOST"],
		"REDIS_PORT":   stack["REDIS_PORT"],
		"JWT_SECRET":   jwtSecret,
		"ADMIN_PORT":   strconv.Itoa(svc.adminPort),
		// Where the gateway and the worker reach the gRPC services.
		"CAMPAIGN_GRPC_ADDR":  "127.0.0.1:50051",
		"RECIPIENT_GRPC_ADDR": "127.0.0.1:50052",
		"EVENTS_GRPC_ADDR":    "127.0.0.1:50053",
	}
	if svc.grpcPort != 0 {
		env["GRPC_PORT"] = strconv.Itoa(svc.grpcPort)
	}
	if svc.httpPort != 0 {
		env["PORT"] = strconv.Itoa(svc.httpPort)
	}
	return env
}

func main() {
	con := newConsole(os.Stdout, isTerminal(os.Stdout))
	log := newLogger(newLineWriter(con, con.toolPrefix("devstack"), 1))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, log)
	stop()
	if err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
}

// newLogger writes devstack's own messages as plain lines: level and message, no time or
// caller, since the name column already says who speaks.
func newLogger(out *lineWriter) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
		LevelKey:         "level",
		MessageKey:       "msg",
		EncodeLevel:      zapcore.LowercaseLevelEncoder,
		EncodeDuration:   zapcore.StringDurationEncoder,
		ConsoleSeparator: " ",
	})
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(out), zapcore.InfoLevel))
}

// run brings the stack up, serves until ctx ends or a service dies, and stops the services.
// It returns nil after a requested stop.
func run(ctx context.Context, log *zap.Logger) error {
	root, err := lint.RepoRoot(".")
	if err != nil {
		return fmt.Errorf("%w: run from inside the repository (make dev)", err)
	}
	d := &devstack{
		root:   root,
		log:    log,
		con:    newConsole(os.Stdout, isTerminal(os.Stdout)),
		svcs:   services(),
		stdout: os.Stdout,
	}
	return d.run(ctx)
}

// devstack is one run of the local stack.
type devstack struct {
	root   string
	log    *zap.Logger
	con    *console
	svcs   []service
	stdout *os.File
}

func (d *devstack) run(ctx context.Context) error {
	binDir := filepath.Join(d.root, ".dev", "bin")
	stack, secret, err := d.prepare(ctx, binDir)
	if err != nil {
		if ctx.Err() != nil {
			d.log.Info("interrupted before the services started")
			return nil
		}
		return err
	}

	// The services outlive ctx: a cancelled ctx means "stop them gracefully", with SIGTERM.
	children, err := d.start(context.WithoutCancel(ctx), binDir, stack, secret)
	if err != nil {
		_ = d.stop(children)
		return err
	}
	if err := d.waitReady(ctx, children); err != nil {
		stopErr := d.stop(children)
		if errors.Is(err, context.Canceled) {
			d.log.Info("stopped before every service was ready; PostgreSQL and Redis keep running (make stack-down stops them)")
			return stopErr
		}
		return err
	}
	if err := d.printBanner(); err != nil {
		_ = d.stop(children)
		return err
	}
	return d.serve(ctx, children)
}

// prepare gets everything the services need: PostgreSQL and Redis running and migrated, the
// binaries built, the JWT secret. It returns the stack's variables and the secret.
func (d *devstack) prepare(ctx context.Context, binDir string) (map[string]string, string, error) {
	if err := d.checkPorts(); err != nil {
		return nil, "", err
	}
	scriptOut := newLineWriter(d.con, d.con.toolPrefix("stack"), tailLines)
	defer scriptOut.Flush()
	d.log.Info("checking that PostgreSQL and Redis are installed (scripts/deps.sh)")
	if err := runScript(ctx, d.root, scriptOut, "deps.sh"); err != nil {
		return nil, "", fmt.Errorf("dependencies: %w; install what scripts/deps.sh lists above, then run make dev again", err)
	}
	if err := runScript(ctx, d.root, scriptOut, "stack.sh", "start"); err != nil {
		return nil, "", fmt.Errorf("local PostgreSQL and Redis: %w", err)
	}
	stack, err := stackEnv(ctx, d.root)
	if err != nil {
		return nil, "", err
	}
	for _, name := range []string{"DATABASE_URL", "REDIS_HOST", "REDIS_PORT"} {
		if stack[name] == "" {
			return nil, "", fmt.Errorf("scripts/stack.sh env does not export %s", name)
		}
	}

	d.log.Info("applying migrations")
	if err := migrations.Up(ctx, stack["DATABASE_URL"], d.log); err != nil {
		return nil, "", fmt.Errorf("migrations: %w", err)
	}

	if err := d.build(ctx, binDir); err != nil {
		return nil, "", err
	}

	secret, created, err := jwtSecret(filepath.Join(d.root, ".dev", "jwt-secret"))
	if err != nil {
		return nil, "", err
	}
	if created {
		d.log.Info("generated a development JWT secret in .dev/jwt-secret")
	}
	return stack, secret, nil
}

// checkPorts fails early, with a clear message, when a port of the stack is taken.
func (d *devstack) checkPorts() error {
	for _, svc := range d.svcs {
		for _, port := range []int{svc.adminPort, svc.grpcPort, svc.httpPort} {
			if port == 0 {
				continue
			}
			var lc net.ListenConfig
			l, err := lc.Listen(context.Background(), "tcp", ":"+strconv.Itoa(port))
			if err != nil {
				return fmt.Errorf("port %d (%s) is in use: is another make dev running? (%w)", port, svc.name, err)
			}
			_ = l.Close()
		}
	}
	return nil
}

// build compiles every service into binDir with one go build.
func (d *devstack) build(ctx context.Context, binDir string) error {
	d.log.Info("building the services into .dev/bin")
	if err := os.MkdirAll(binDir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", binDir, err)
	}
	args := []string{"build", "-o", binDir + string(filepath.Separator)}
	for _, svc := range d.svcs {
		args = append(args, "./services/"+svc.name+"/cmd/"+svc.name)
	}
	out := newLineWriter(d.con, d.con.toolPrefix("build"), tailLines)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = d.root
	cmd.Stdout = out
	cmd.Stderr = out
	err := cmd.Run()
	out.Flush()
	if err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

// start starts every service. On error it returns the ones already started.
func (d *devstack) start(ctx context.Context, binDir string, stack map[string]string, secret string) ([]*child, error) {
	children := make([]*child, 0, len(d.svcs))
	for _, svc := range d.svcs {
		out := newLineWriter(d.con, d.con.prefix(svc.name), tailLines)
		env := childEnv(os.Environ(), svc.env(stack, secret))
		c, err := startChild(ctx, svc, []string{filepath.Join(binDir, svc.name)}, env, out)
		if err != nil {
			return children, err
		}
		children = append(children, c)
	}
	return children, nil
}

// waitReady polls every service's /health/ready until all answer 200. It fails when the
// deadline passes or a service exits, naming the service and showing its last lines.
func (d *devstack) waitReady(ctx context.Context, children []*child) error {
	d.log.Info("waiting for every service to be ready", zap.Duration("deadline", readyTimeout))
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	pending := map[string]error{}
	for _, c := range children {
		pending[c.svc.name] = errors.New("not asked yet")
	}
	for {
		for _, c := range children {
			if _, ok := pending[c.svc.name]; !ok {
				continue
			}
			if c.exited() {
				d.report(c, "exited before it was ready ("+c.exitDescription()+")")
				return fmt.Errorf("%s did not start", c.svc.name)
			}
			err := readyStatus(ctx, client, fmt.Sprintf("http://127.0.0.1:%d/health/ready", c.svc.adminPort))
			if err == nil {
				delete(pending, c.svc.name)
				continue
			}
			pending[c.svc.name] = err
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			for _, c := range children {
				if err, ok := pending[c.svc.name]; ok {
					d.report(c, fmt.Sprintf("not ready after %s: %v", readyTimeout, err))
				}
			}
			return errors.New("not every service became ready; see above")
		case <-tick.C:
		}
	}
}

// report prints a problem with a service and its last output lines.
func (d *devstack) report(c *child, problem string) {
	d.log.Error(c.svc.name + ": " + problem)
	prefix := d.con.toolPrefix(c.svc.name + "!")
	d.con.writeLine(prefix, "--- last lines of "+c.svc.name+" ---")
	for _, line := range c.out.Tail() {
		d.con.writeLine(prefix, line)
	}
}

// serve waits until ctx ends (Ctrl-C) or a service dies, then stops the services.
func (d *devstack) serve(ctx context.Context, children []*child) error {
	died := make(chan *child, len(children))
	for _, c := range children {
		go func() {
			select {
			case <-c.done:
				died <- c
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		d.log.Info("stopping the services (they drain for a few seconds; Ctrl-C again to kill them)")
		if err := d.stop(children); err != nil {
			return err
		}
		d.log.Info("every service stopped; PostgreSQL and Redis keep running under .dev/ (make stack-down stops them)")
		return nil
	case c := <-died:
		d.report(c, "exited unexpectedly ("+c.exitDescription()+")")
		d.log.Info("stopping the other services")
		_ = d.stop(children)
		d.log.Info("PostgreSQL and Redis keep running under .dev/ (make stack-down stops them)")
		return fmt.Errorf("%s exited unexpectedly", c.svc.name)
	}
}

// stop sends SIGTERM to every running service and waits for all of them. A second Ctrl-C, or
// the stop timeout, kills what is left.
func (d *devstack) stop(children []*child) error {
	force := make(chan os.Signal, 1)
	signal.Notify(force, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(force)
	for _, c := range children {
		c.signal(syscall.SIGTERM)
	}
	timeout := time.NewTimer(stopTimeout)
	defer timeout.Stop()
	var failed []string
	for _, c := range children {
		select {
		case <-c.done:
		case <-force:
			d.log.Warn("killing the services")
			killAll(children)
			<-c.done
		case <-timeout.C:
			d.log.Warn(fmt.Sprintf("services still running after %s; killing them", stopTimeout))
			killAll(children)
			<-c.done
		}
	}
	for _, c := range children {
		if c.err != nil {
			failed = append(failed, c.svc.name+" ("+c.exitDescription()+")")
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("not every service stopped cleanly: %s", strings.Join(failed, ", "))
	}
	return nil
}

func killAll(children []*child) {
	for _, c := range children {
		c.signal(syscall.SIGKILL)
	}
}

// printBanner prints the addresses and the first requests to try: sign up, add a domain,
// create a recipient and get it back.
func (d *devstack) printBanner() error {
	var gw service
	for _, svc := range d.svcs {
		if svc.httpPort != 0 {
			gw = svc
		}
	}
	api := fmt.Sprintf("http://localhost:%d", gw.httpPort)

	var b strings.Builder
	fmt.Fprintf(&b, "\nHerald is running. Ctrl-C stops the services.\n\n")
	fmt.Fprintf(&b, "  REST API   %s/v1/\n", api)
	fmt.Fprintf(&b, "  OpenAPI    %s/openapi.json\n", api)
	fmt.Fprintf(&b, "  health     %s/health\n\n", api)
	fmt.Fprintf(&b, "  %-14s %-8s %-34s %s\n", "service", "listens", "health", "metrics")
	for _, svc := range d.svcs {
		listens := "-"
		switch {
		case svc.httpPort != 0:
			listens = strconv.Itoa(svc.httpPort)
		case svc.grpcPort != 0:
			listens = strconv.Itoa(svc.grpcPort)
		}
		admin := fmt.Sprintf("http://localhost:%d", svc.adminPort)
		fmt.Fprintf(&b, "  %-14s %-8s %-34s %s\n", svc.name, listens, admin+"/health", admin+"/metrics")
	}
	fmt.Fprintf(&b, "\nFirst steps (with jq): sign up a company, its owner and a first workspace; add a\n")
	fmt.Fprintf(&b, "sending domain; create a recipient and get it back. Sign up once; later, log in with\n")
	fmt.Fprintf(&b, "POST /v1/auth/login and the same email and password.\n\n")
	fmt.Fprintf(&b, "  api=%s\n", api)
	fmt.Fprintf(&b, "  signup=$(curl -sS -X POST \"$api/v1/auth/signup\" -H 'Content-Type: application/json' \\\n")
	fmt.Fprintf(&b, "      -d '{\"company_name\": \"Acme\", \"email\": \"ada@example.com\", \"password\": \"correct horse battery staple\"}')\n")
	fmt.Fprintf(&b, "  export HERALD_DEV_TOKEN=$(echo \"$signup\" | jq -r .tokens.access_token)\n")
	fmt.Fprintf(&b, "  ws=$(echo \"$signup\" | jq -r .workspace.id)\n")
	fmt.Fprintf(&b, "  dom=$(curl -sS -X POST \"$api/v1/workspaces/$ws/domains\" -H \"Authorization: Bearer $HERALD_DEV_TOKEN\" \\\n")
	fmt.Fprintf(&b, "      -H 'Content-Type: application/json' -d '{\"name\": \"mail.example.com\"}' | jq -r .domain.id)\n")
	fmt.Fprintf(&b, "  id=$(curl -sS -X POST \"$api/v1/workspaces/$ws/domains/$dom/recipients\" \\\n")
	fmt.Fprintf(&b, "      -H \"Authorization: Bearer $HERALD_DEV_TOKEN\" -H 'Content-Type: application/json' \\\n")
	fmt.Fprintf(&b, "      -d '{\"email\": \"grace@example.com\"}' | jq -r .recipient.id)\n")
	fmt.Fprintf(&b, "  curl -sS \"$api/v1/workspaces/$ws/domains/$dom/recipients/$id\" -H \"Authorization: Bearer $HERALD_DEV_TOKEN\"\n\n")
	fmt.Fprintf(&b, "Access tokens last 15 minutes: POST /v1/auth/refresh with the refresh token for a new pair.\n\n")
	if _, err := d.stdout.WriteString(b.String()); err != nil {
		return fmt.Errorf("print banner: %w", err)
	}
	return nil
}
