package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Time limits of the shared system.
const (
	buildTimeout = 5 * time.Minute
	readyTimeout = 60 * time.Second
	// stopTimeout leaves room for DRAIN_DELAY (1s) and in-flight work.
	stopTimeout = 30 * time.Second
)

// sys is the system every API test talks to: the five services started once by TestMain.
// It is nil with -short.
var sys *system

// bins is the directory holding the service binaries, built once by TestMain.
var bins string

// system is the five service processes sharing one database, one Redis and one JWT secret.
type system struct {
	deps    deps
	procs   map[string]*process
	gateway string // base URL of the gateway's public port
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		return m.Run()
	}

	// Every secret of the run is a sentinel; the check at the end looks for them in everything
	// the tests saw.
	watch = newHygiene()
	sentry := newFakeSentry(watch)
	defer sentry.Close()

	dir, err := os.MkdirTemp("", "herald-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	err = buildServices(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bins = dir

	// The suite's own Redis, so that it can require the run's password.
	redisDir, err := os.MkdirTemp("", "herald-e2e-redis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(redisDir)
	rs, err := prepareRedisServer(redisDir, watch.redisPassword)
	if err == nil {
		err = rs.run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the suite's redis-server:", err)
		return 1
	}
	defer rs.kill()

	tb := &mainTB{name: "TestMain"}
	defer tb.cleanup()
	s, err := startSystem(tb, rs.addr(), watch.sentryDSN(sentry.URL))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	sys = s

	code := m.Run()

	if err := watch.collectMetrics(s.procList()...); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	// Every service must stop cleanly on SIGTERM: exit status 0. They drain together.
	for _, p := range s.procs {
		p.sigterm()
	}
	for _, name := range serviceNames() {
		p := s.procs[name]
		exit, err := p.wait(stopTimeout)
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "e2e: %v; its output:\n%s\n", err, p.out.tail(40))
			code = 1
		case exit != 0:
			fmt.Fprintf(os.Stderr, "e2e: %s exited with status %d after SIGTERM; its output:\n%s\n", name, exit, p.out.tail(40))
			code = 1
		}
	}
	// Every process has exited (and sent its last reports to Sentry): no secret may show in
	// anything the tests saw.
	leaks, summary := watch.leaks()
	fmt.Println("e2e: secret hygiene:", summary)
	for _, l := range leaks {
		fmt.Fprintln(os.Stderr, "e2e: secret hygiene:", l)
		code = 1
	}
	sentry.Close()
	rs.kill()
	if code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
		return 1
	}
	return 0
}

// startSystem starts the five services on free ports against a fresh, migrated database (or
// the one named by EnvDatabaseURL) and
// the Redis at redisAddr, with the run's sentinel secrets, reporting errors to sentryDSN, and
// waits until every one is ready.
func startSystem(tb *mainTB, redisAddr, sentryDSN string) (s *system, err error) {
	databaseURL, err := systemDatabaseURL(tb)
	if err != nil {
		return nil, err
	}
	s = &system{deps: watch.deps(databaseURL, redisAddr, sentryDSN)}
	s.procs = map[string]*process{}

	free, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	layout := map[string]ports{
		"campaign":      {admin: free[0], grpc: free[1]},
		"recipient":     {admin: free[2], grpc: free[3]},
		"events-ingest": {admin: free[4], grpc: free[5]},
		"worker":        {admin: free[6]},
		"gateway":       {admin: free[7], http: free[8]},
	}
	s.deps.grpcAddrs = map[string]string{}
	for name := range grpcServiceNames() {
		s.deps.grpcAddrs[name] = "127.0.0.1:" + strconv.Itoa(layout[name].grpc)
	}
	s.gateway = "http://127.0.0.1:" + strconv.Itoa(layout["gateway"].http)

	defer func() {
		if err != nil {
			for _, p := range s.procs {
				p.kill()
			}
		}
	}()
	for _, name := range serviceNames() {
		env, err := serviceEnv(name, layout[name], s.deps)
		if err != nil {
			return nil, err
		}
		p, err := startProcess(bins, name, layout[name], env)
		if err != nil {
			return nil, err
		}
		s.procs[name] = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	client := newRecordingClient(5 * time.Second)
	defer client.CloseIdleConnections()
	for _, name := range serviceNames() {
		if err := s.procs[name].waitReady(ctx, client); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// procList returns the five processes.
func (s *system) procList() []*process {
	out := make([]*process, 0, len(s.procs))
	for _, name := range serviceNames() {
		out = append(out, s.procs[name])
	}
	return out
}

// shared returns the system started by TestMain, skipping the test with -short.
func shared(t *testing.T) *system {
	t.Helper()
	if sys == nil {
		t.Skip("the end-to-end system is not started in -short mode")
	}
	return sys
}

// binaries returns the directory of the service binaries, skipping the test with -short.
func binaries(t *testing.T) string {
	t.Helper()
	if bins == "" {
		t.Skip("the services are not built in -short mode")
	}
	return bins
}

// mainTB lets TestMain use helpers that take a testing.TB (pgtest): Fatal aborts the
// function given to run, cleanups run at the end of TestMain. Methods it does not override
// are never called by those helpers.
type mainTB struct {
	testing.TB
	name     string
	cleanups []func()
	errs     []string
}

// fatalError carries a Fatal out of run.
type fatalError struct{ msg string }

// run calls f and turns a Fatal inside it into an error.
func (tb *mainTB) run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			err = errors.New(fe.msg)
		}
	}()
	f()
	return nil
}

// cleanup runs the registered cleanups, last first, and prints their errors.
func (tb *mainTB) cleanup() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	for _, e := range tb.errs {
		fmt.Fprintln(os.Stderr, "e2e:", e)
	}
}

func (tb *mainTB) Helper()                         {}
func (tb *mainTB) Name() string                    { return tb.name }
func (tb *mainTB) Cleanup(f func())                { tb.cleanups = append(tb.cleanups, f) }
func (tb *mainTB) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (tb *mainTB) Errorf(format string, args ...any) {
	tb.errs = append(tb.errs, fmt.Sprintf(format, args...))
}
func (tb *mainTB) Fatal(args ...any)                 { panic(fatalError{fmt.Sprint(args...)}) }
func (tb *mainTB) Fatalf(format string, args ...any) { panic(fatalError{fmt.Sprintf(format, args...)}) }
