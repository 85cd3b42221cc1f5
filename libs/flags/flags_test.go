package flags_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	if prefix := os.Getenv(childPrefixEnv); prefix != "" {
		os.Exit(runChild(prefix))
	}
	goleak.VerifyTestMain(m)
}

// Fixture flags: one per scope, and one on by default.
var (
	globalFlag    = flags.NewFlag("fixture_global")
	companyFlag   = flags.NewFlag("fixture_company")
	workspaceFlag = flags.NewFlag("fixture_workspace")
	onFlag        = flags.NewFlag("fixture_on_by_default")
)

func fixtures() []flags.Definition {
	def := func(f flags.Flag, scope flags.Level, on bool) flags.Definition {
		return flags.Definition{
			Flag: f, Description: "fixture", Default: on, Scope: scope, Owner: "platform",
			Added: flags.Date(2026, time.January, 1), ExpectedRemoval: flags.Date(2027, time.January, 1),
		}
	}
	return []flags.Definition{
		def(globalFlag, flags.LevelGlobal, false),
		def(companyFlag, flags.LevelCompany, false),
		def(workspaceFlag, flags.LevelWorkspace, false),
		def(onFlag, flags.LevelWorkspace, true),
	}
}

// propagation bounds the wait for a change to reach another provider.
const propagation = 10 * time.Second

func TestRegistered_isValid(t *testing.T) {
	t.Parallel()
	_, err := flags.NewRegistry(flags.Registered()...)
	require.NoError(t, err)
}

func TestNewRegistry_rejects(t *testing.T) {
	t.Parallel()
	good := fixtures()[0]
	for name, mutate := range map[string]func(d *flags.Definition){
		"bad name":              func(d *flags.Definition) { d.Flag = flags.NewFlag("Bad:Name") },
		"no scope":              func(d *flags.Definition) { d.Scope = 0 },
		"no owner":              func(d *flags.Definition) { d.Owner = "" },
		"removal before adding": func(d *flags.Definition) { d.ExpectedRemoval = d.Added },
	} {
		d := good
		mutate(&d)
		_, err := flags.NewRegistry(d)
		require.ErrorIs(t, err, flags.ErrInvalidDefinition, name)
	}
	_, err := flags.NewRegistry(good, good)
	require.ErrorIs(t, err, flags.ErrInvalidDefinition, "duplicate")
}

func TestEnabled_defaultWhenUnset(t *testing.T) {
	t.Parallel()
	p := flagstest.New(t, flags.WithDefinitions(fixtures()...))
	scope := flags.Scope{CompanyID: uuid.New(), WorkspaceID: uuid.New()}
	require.False(t, p.Enabled(t.Context(), workspaceFlag, scope))
	require.True(t, p.Enabled(t.Context(), onFlag, scope), "the registry default, not false")
	require.False(t, p.Enabled(t.Context(), flags.NewFlag("not_registered"), scope))
}

func TestEnabled_precedence(t *testing.T) {
	t.Parallel()
	company, workspace := uuid.New(), uuid.New()
	scope := flags.Scope{CompanyID: company, WorkspaceID: workspace}
	tru, fls := new(bool), new(bool)
	*tru = true
	for _, tc := range []struct {
		name                       string
		global, company, workspace *bool
		defaultOn                  bool
		want                       bool
	}{
		{name: "nothing set: default off", want: false},
		{name: "nothing set: default on", defaultOn: true, want: true},
		{name: "workspace only", workspace: tru, want: true},
		{name: "workspace off over default on", workspace: fls, defaultOn: true, want: false},
		{name: "company over workspace", company: fls, workspace: tru, want: false},
		{name: "company on", company: tru, workspace: fls, want: true},
		{name: "global over company and workspace", global: fls, company: tru, workspace: tru, want: false},
		{name: "global on over company off", global: tru, company: fls, workspace: fls, want: true},
		{name: "global off over default on", global: fls, defaultOn: true, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := workspaceFlag
			if tc.defaultOn {
				f = onFlag
			}
			p := flagstest.New(t, flags.WithDefinitions(fixtures()...))
			ctx := t.Context()
			for target, v := range map[flags.Target]*bool{
				flags.Global(): tc.global, flags.Company(company): tc.company, flags.Workspace(workspace): tc.workspace,
			} {
				if v != nil {
					require.NoError(t, p.Set(ctx, f, target, *v))
				}
			}
			require.Equal(t, tc.want, p.Enabled(ctx, f, scope))
			// Another tenant sees only the global value or the default.
			other := flags.Scope{CompanyID: uuid.New(), WorkspaceID: uuid.New()}
			wantOther := tc.defaultOn
			if tc.global != nil {
				wantOther = *tc.global
			}
			require.Equal(t, wantOther, p.Enabled(ctx, f, other))

			st, err := p.State(ctx, f)
			require.NoError(t, err)
			require.Equal(t, tc.global, st.Global)
		})
	}
}

func TestSet_validatesTarget(t *testing.T) {
	t.Parallel()
	p := flagstest.New(t, flags.WithDefinitions(fixtures()...))
	ctx := t.Context()
	require.ErrorIs(t, p.Set(ctx, globalFlag, flags.Company(uuid.New()), true), flags.ErrInvalidTarget)
	require.ErrorIs(t, p.Set(ctx, companyFlag, flags.Workspace(uuid.New()), true), flags.ErrInvalidTarget)
	require.ErrorIs(t, p.Set(ctx, companyFlag, flags.Company(uuid.Nil), true), flags.ErrInvalidTarget)
	require.ErrorIs(t, p.Set(ctx, flags.NewFlag("not_registered"), flags.Global(), true), flags.ErrUnknownFlag)
	require.NoError(t, p.Set(ctx, companyFlag, flags.Company(uuid.New()), true))
}

// TestInvalidation_acrossProcesses sets and clears a flag in one provider and sees every change
// in another on the same Redis, whose periodic refresh is too slow to be what carries it.
func TestInvalidation_acrossProcesses(t *testing.T) {
	t.Parallel()
	prefix := flagstest.KeyPrefix(t)
	opts := []flags.Option{flags.WithDefinitions(fixtures()...), flags.WithKeyPrefix(prefix), flags.WithRefreshInterval(time.Hour)}
	a := flagstest.New(t, opts...)
	b := flagstest.New(t, opts...)
	waitUp(t, b)
	ctx := t.Context()
	ws := uuid.New()
	scope := flags.Scope{CompanyID: uuid.New(), WorkspaceID: ws}

	require.NoError(t, a.Set(ctx, workspaceFlag, flags.Workspace(ws), true))
	require.True(t, a.Enabled(ctx, workspaceFlag, scope), "the writer sees its own change at once")
	flagstest.Eventually(t, b, workspaceFlag, scope, true, propagation)

	require.NoError(t, a.Set(ctx, workspaceFlag, flags.Global(), false))
	flagstest.Eventually(t, b, workspaceFlag, scope, false, propagation)

	require.NoError(t, a.Clear(ctx, workspaceFlag, flags.Global()))
	flagstest.Eventually(t, b, workspaceFlag, scope, true, propagation)

	// A provider started later reads what is already set.
	c := flagstest.New(t, opts...)
	flagstest.Eventually(t, c, workspaceFlag, scope, true, propagation)
}

// waitUp waits until p has read its flags from Redis and is subscribed.
func waitUp(t *testing.T, p *flags.Redis) {
	t.Helper()
	require.Eventually(t, p.Up, propagation, 5*time.Millisecond)
}

// TestRedisDown runs a Redis of its own, stops it under two providers, and starts it again.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server must be installed (scripts/deps.sh)")
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	srv := startRedis(t, bin, port)

	newClient := func() *redis.Client {
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 1, DialTimeout: 200 * time.Millisecond})
		t.Cleanup(func() { _ = rdb.Close() })
		return rdb
	}
	opts := []flags.Option{flags.WithDefinitions(fixtures()...), flags.WithRetryInterval(20 * time.Millisecond), flags.WithRefreshInterval(50 * time.Millisecond)}
	reg := prometheus.NewRegistry()
	b, err := flags.NewRedis(newClient(), reg, zaptest.NewLogger(t), opts...)
	require.NoError(t, err)
	serve(t, b)
	a := flagstest.Start(t, newClient(), opts...)
	waitUp(t, a)
	waitUp(t, b)
	ctx := t.Context()
	company := uuid.New()
	scope := flags.Scope{CompanyID: company}

	require.NoError(t, a.Set(ctx, companyFlag, flags.Company(company), true))
	flagstest.Eventually(t, b, companyFlag, scope, true, propagation)

	srv.stop()
	require.Eventually(t, func() bool { return !b.Up() }, propagation, 5*time.Millisecond)
	require.Equal(t, 0.0, gaugeValue(t, reg, "herald_flags_redis_up"))
	for range 3 {
		require.True(t, b.Enabled(ctx, companyFlag, scope), "the last known value while Redis is down")
		require.False(t, b.Enabled(ctx, workspaceFlag, scope), "the default for a flag never set")
	}
	require.GreaterOrEqual(t, counter(t, reg, flags.FallbackLastKnown), 6.0)
	require.Error(t, a.Set(ctx, companyFlag, flags.Company(company), false), "a write fails while Redis is down")

	// Redis comes back empty (it keeps no data on disk): the values are read again, and the
	// changes of other processes flow again.
	startRedis(t, bin, port)
	require.Eventually(t, b.Up, propagation, 5*time.Millisecond)
	flagstest.Eventually(t, b, companyFlag, scope, false, propagation)
	require.Eventually(t, func() bool { return a.Set(ctx, companyFlag, flags.Company(company), true) == nil }, propagation, 10*time.Millisecond)
	flagstest.Eventually(t, b, companyFlag, scope, true, propagation)
	require.Equal(t, 1.0, gaugeValue(t, reg, "herald_flags_redis_up"))
}

// TestRedisDown_atStart answers the registry defaults while Redis was never reached.
func TestRedisDown_atStart(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	reg := prometheus.NewRegistry()
	p, err := flags.NewRedis(rdb, reg, zaptest.NewLogger(t), flags.WithDefinitions(fixtures()...), flags.WithRetryInterval(20*time.Millisecond))
	require.NoError(t, err)
	serve(t, p)
	ctx := t.Context()
	require.Eventually(t, func() bool {
		require.True(t, p.Enabled(ctx, onFlag, flags.Scope{}), "the registry default")
		require.False(t, p.Enabled(ctx, workspaceFlag, flags.Scope{}))
		return counter(t, reg, flags.FallbackDefault) > 0
	}, propagation, 5*time.Millisecond)
	require.False(t, p.Up())
	require.Equal(t, 0.0, gaugeValue(t, reg, "herald_flags_redis_up"))
	require.ErrorContains(t, p.Set(ctx, onFlag, flags.Global(), false), "write flag fixture_on_by_default at global")
}

// TestBothPaths shows flagstest.Both on a fixture flag: the code under test sees each value.
func TestBothPaths(t *testing.T) {
	t.Parallel()
	p := flagstest.New(t, flags.WithDefinitions(fixtures()...))
	ws := uuid.New()
	// A narrower value does not matter: the forced value is global and wins.
	require.NoError(t, p.Set(t.Context(), workspaceFlag, flags.Workspace(ws), true))
	greeting := func(ctx context.Context) string {
		if p.Enabled(ctx, workspaceFlag, flags.Scope{WorkspaceID: ws}) {
			return "new"
		}
		return "old"
	}
	seen := map[bool]string{}
	flagstest.Both(t, p, workspaceFlag, func(t *testing.T, on bool) {
		seen[on] = greeting(t.Context())
	})
	require.Equal(t, map[bool]string{true: "new", false: "old"}, seen)
	require.Equal(t, "new", greeting(t.Context()), "the workspace value applies again once the test's value is cleared")
}

func TestServe_shutdown(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	p, err := flags.NewRedis(rdb, nil, zaptest.NewLogger(t), flags.WithDefinitions(fixtures()...), flags.WithKeyPrefix(flagstest.KeyPrefix(t)))
	require.NoError(t, err)
	require.Equal(t, "flags", p.Name())
	done := make(chan error, 1)
	go func() { done <- p.Serve(context.Background()) }()
	require.Eventually(t, p.Up, propagation, 5*time.Millisecond)
	require.NoError(t, p.Shutdown(t.Context()))
	require.NoError(t, <-done)
}

// serve runs p until the test ends.
func serve(t *testing.T, p *flags.Redis) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = p.Shutdown(context.Background())
		require.NoError(t, <-done)
	})
}

// gaugeValue returns the value of the gauge name in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// freePort returns a port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// redisProc is a redis-server of a test's own.
type redisProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startRedis runs a throwaway redis-server on port until it answers; it is killed when the
// test ends unless stop killed it first.
func startRedis(t *testing.T, bin string, port int) *redisProc {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	require.NoError(t, cmd.Start())
	p := &redisProc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.stop)
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), MaxRetries: -1})
	defer rdb.Close()
	require.Eventually(t, func() bool { return rdb.Ping(context.Background()).Err() == nil }, propagation, 10*time.Millisecond)
	return p
}

// stop kills the server and waits until it is gone.
func (p *redisProc) stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// counter returns herald_flags_fallback_total{reason}.
func counter(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "herald_flags_fallback_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
