package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/heraldmail/herald/libs/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bundle is what setup wires around the limiter under test.
type bundle struct {
	rdb    *redis.Client
	reg    *prometheus.Registry
	prefix string
	logs   *observer.ObservedLogs
}

// setupOpts describes the limiter to build; zero fields get defaults.
type setupOpts struct {
	// Addr is the Redis address; the test Redis by default.
	Addr string
	// Hook sees every command the limiter's client sends.
	Hook redis.Hook
	// ContextTimeouts makes the client give up a reply at the context's deadline.
	ContextTimeouts bool
}

// setup returns a limiter on the test Redis whose keys live under a prefix of the test's own.
func setup(t *testing.T, o setupOpts) (*ratelimit.Limiter, bundle) {
	t.Helper()
	if o.Addr == "" {
		o.Addr = testenv.RedisAddr(t)
	}
	// No retries: a test of Redis being down should not wait through backoffs.
	rdb := redis.NewClient(&redis.Options{Addr: o.Addr, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: o.ContextTimeouts})
	t.Cleanup(func() { _ = rdb.Close() })
	if o.Hook != nil {
		rdb.AddHook(o.Hook)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	prefix := keyPrefix(t)
	return ratelimit.New(rdb, prefix, reg, zap.New(core)), bundle{rdb: rdb, reg: reg, prefix: prefix, logs: logs}
}

// keyPrefix returns a Redis key prefix unique to the test, so that tests share one Redis.
func keyPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "ratelimit-test:" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ":" + hex.EncodeToString(b) + ":"
}

// counter returns the value of the counter name with labels in reg, 0 when it was never
// incremented.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func (b bundle) keys(t *testing.T) []string {
	t.Helper()
	keys, err := b.rdb.Keys(context.Background(), b.prefix+"*").Result()
	require.NoError(t, err)
	return keys
}

func TestAllow_burstThenLimited(t *testing.T) {
	t.Parallel()
	l, b := setup(t, setupOpts{})
	ctx := context.Background()
	lim := ratelimit.Limit{Name: "api", Rate: 0.5, Burst: 3}

	for want := 2; want >= 0; want-- {
		d, err := l.Allow(ctx, "company-a", lim)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		require.False(t, d.FailedOpen)
		require.Equal(t, want, d.Remaining)
		require.Zero(t, d.RetryAfter)
	}

	d, err := l.Allow(ctx, "company-a", lim)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.Equal(t, 0, d.Remaining)
	// One token comes back every 2s; the few milliseconds since the bucket emptied are
	// already refilled.
	require.LessOrEqual(t, d.RetryAfter, 2*time.Second)
	require.Greater(t, d.RetryAfter, 1500*time.Millisecond)
	require.LessOrEqual(t, d.ResetAfter, 6*time.Second)
	require.Greater(t, d.ResetAfter, 5*time.Second)

	// Another key has a bucket of its own, and so has another limit on the same key.
	d, err = l.Allow(ctx, "company-b", lim)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	d, err = l.Allow(ctx, "company-a", ratelimit.Limit{Name: "login", Rate: 0.5, Burst: 3})
	require.NoError(t, err)
	require.True(t, d.Allowed)

	require.InDelta(t, 4, counter(t, b.reg, "herald_ratelimit_decisions_total", map[string]string{"limit": "api", "result": "allowed"}), 0)
	require.InDelta(t, 1, counter(t, b.reg, "herald_ratelimit_decisions_total", map[string]string{"limit": "api", "result": "limited"}), 0)
	require.InDelta(t, 1, counter(t, b.reg, "herald_ratelimit_decisions_total", map[string]string{"limit": "login", "result": "allowed"}), 0)
}

func TestAllowN_refill(t *testing.T) {
	t.Parallel()
	l, _ := setup(t, setupOpts{})
	ctx := context.Background()
	// 1000 tokens a second: the drained bucket holds 500 again after half a second.
	lim := ratelimit.Limit{Name: "api", Rate: 1000, Burst: 500}

	d, err := l.AllowN(ctx, "k", lim, 500)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.Equal(t, 0, d.Remaining)

	d, err = l.AllowN(ctx, "k", lim, 500)
	require.NoError(t, err)
	require.False(t, d.Allowed, "the bucket refills in 500ms, not between two calls")
	require.LessOrEqual(t, d.RetryAfter, 500*time.Millisecond)

	// A refused request takes nothing, so polling does not delay the refill.
	require.Eventually(t, func() bool {
		d, err := l.AllowN(ctx, "k", lim, 500)
		require.NoError(t, err)
		return d.Allowed
	}, 10*time.Second, 10*time.Millisecond)
}

func TestAllow_keysExpire(t *testing.T) {
	t.Parallel()
	l, b := setup(t, setupOpts{})
	ctx := context.Background()

	// A bucket lives as long as it takes to fill up again: here 10 tokens at one a minute.
	d, err := l.AllowN(ctx, "slow", ratelimit.Limit{Name: "login", Rate: 1.0 / 60, Burst: 10}, 10)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	keys := b.keys(t)
	require.Equal(t, []string{b.prefix + "login:slow"}, keys)
	ttl, err := b.rdb.PTTL(ctx, keys[0]).Result()
	require.NoError(t, err)
	require.LessOrEqual(t, ttl, 10*time.Minute)
	require.Greater(t, ttl, 9*time.Minute)

	// A fast bucket is full again in 10ms and then gone.
	_, err = l.Allow(ctx, "fast", ratelimit.Limit{Name: "api", Rate: 100, Burst: 5})
	require.NoError(t, err)
	ttl, err = b.rdb.PTTL(ctx, b.prefix+"api:fast").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Duration(0), "the key has a TTL")
	require.Eventually(t, func() bool {
		n, err := b.rdb.Exists(ctx, b.prefix+"api:fast").Result()
		require.NoError(t, err)
		return n == 0
	}, 10*time.Second, 5*time.Millisecond)

	// Every key the limiter writes has a TTL (Redis runs volatile-lru).
	for _, k := range b.keys(t) {
		ttl, err := b.rdb.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0), k)
	}
}

// However many replicas ask at once, a bucket lets no more than its burst through.
func TestAllow_concurrent(t *testing.T) {
	t.Parallel()
	l, _ := setup(t, setupOpts{})
	// One token per 1000s: nothing refills while the test runs.
	lim := ratelimit.Limit{Name: "api", Rate: 0.001, Burst: 20}

	var allowed, limited atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 40 {
		wg.Go(func() {
			<-start
			for range 5 {
				d, err := l.Allow(context.Background(), "shared", lim)
				if err != nil || d.FailedOpen {
					t.Errorf("allow: %v, %+v", err, d)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				} else {
					limited.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	require.Equal(t, int64(20), allowed.Load())
	require.Equal(t, int64(180), limited.Load())
}

// commandLog records the names of the commands a client sends.
type commandLog struct {
	mu    sync.Mutex
	names []string
}

func (c *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.names = append(c.names, cmd.Name())
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (c *commandLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.names
	c.names = nil
	return out
}

// The script runs by its digest, and is sent again when Redis lost it (a restart or SCRIPT
// FLUSH). Not parallel: no other test of the package may load the script between the flush and
// the first call.
func TestAllow_scriptCacheFlushed(t *testing.T) {
	cmds := &commandLog{}
	l, b := setup(t, setupOpts{Hook: cmds})
	ctx := context.Background()
	lim := ratelimit.Limit{Name: "api", Rate: 1, Burst: 2}

	require.NoError(t, b.rdb.ScriptFlush(ctx).Err())
	cmds.take()
	d, err := l.Allow(ctx, "k", lim)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.False(t, d.FailedOpen)
	require.Equal(t, []string{"evalsha", "eval"}, cmds.take())

	d, err = l.Allow(ctx, "k", lim)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.Equal(t, 0, d.Remaining)
	require.Equal(t, []string{"evalsha"}, cmds.take(), "EVAL loaded the script")
	require.Zero(t, counter(t, b.reg, "herald_ratelimit_errors_total", nil))
}

func TestAllow_redisDown(t *testing.T) {
	t.Parallel()
	// An address nothing listens on.
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	l, b := setup(t, setupOpts{Addr: addr})
	lim := ratelimit.Limit{Name: "api", Rate: 1, Burst: 1}

	for range 3 {
		d, err := l.Allow(context.Background(), "k", lim)
		require.NoError(t, err, "a Redis failure never fails the request")
		require.Equal(t, ratelimit.Decision{Allowed: true, FailedOpen: true}, d)
	}
	require.InDelta(t, 3, counter(t, b.reg, "herald_ratelimit_errors_total", nil), 0)
	require.InDelta(t, 3, counter(t, b.reg, "herald_ratelimit_decisions_total", map[string]string{"limit": "api", "result": "failed_open"}), 0)

	// Logged once, not once per request.
	warnings := b.logs.FilterLevelExact(zapcore.WarnLevel).All()
	require.Len(t, warnings, 1)
	require.Equal(t, "api", warnings[0].ContextMap()["limit"])
	require.Equal(t, int64(0), warnings[0].ContextMap()["failures_not_logged"])
	require.Equal(t, 1, b.logs.Len())
}

// A Redis that accepts connections but never answers costs a request Timeout, then lets it
// through.
func TestAllow_redisHangs(t *testing.T) {
	t.Parallel()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns sync.WaitGroup
	conns.Go(func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		conns.Wait()
	})
	l, b := setup(t, setupOpts{Addr: ln.Addr().String(), ContextTimeouts: true})

	d, err := l.Allow(context.Background(), "k", ratelimit.Limit{Name: "api", Rate: 1, Burst: 1})
	require.NoError(t, err)
	require.Equal(t, ratelimit.Decision{Allowed: true, FailedOpen: true}, d)
	require.InDelta(t, 1, counter(t, b.reg, "herald_ratelimit_errors_total", nil), 0)
}

// A caller that gave up is not a Redis failure.
func TestAllow_callerCancelled(t *testing.T) {
	t.Parallel()
	l, b := setup(t, setupOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	d, err := l.Allow(ctx, "k", ratelimit.Limit{Name: "api", Rate: 1, Burst: 1})
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.True(t, d.FailedOpen)
	require.Zero(t, counter(t, b.reg, "herald_ratelimit_errors_total", nil))
	require.Equal(t, 0, b.logs.Len())
}

func TestReset(t *testing.T) {
	t.Parallel()
	l, _ := setup(t, setupOpts{})
	ctx := context.Background()
	lim := ratelimit.Limit{Name: "login", Rate: 0.001, Burst: 2}

	for range 2 {
		d, err := l.Allow(ctx, "ada@example.com", lim)
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	d, err := l.Allow(ctx, "ada@example.com", lim)
	require.NoError(t, err)
	require.False(t, d.Allowed)

	require.NoError(t, l.Reset(ctx, "login", "ada@example.com"))
	d, err = l.Allow(ctx, "ada@example.com", lim)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.Equal(t, 1, d.Remaining)
}

func TestAllowN_invalid(t *testing.T) {
	t.Parallel()
	l, b := setup(t, setupOpts{})
	valid := ratelimit.Limit{Name: "api", Rate: 1, Burst: 5}
	cases := map[string]struct {
		lim  ratelimit.Limit
		cost int
	}{
		"no name":           {ratelimit.Limit{Rate: 1, Burst: 1}, 1},
		"zero rate":         {ratelimit.Limit{Name: "api", Burst: 1}, 1},
		"negative rate":     {ratelimit.Limit{Name: "api", Rate: -1, Burst: 1}, 1},
		"zero burst":        {ratelimit.Limit{Name: "api", Rate: 1}, 1},
		"zero cost":         {valid, 0},
		"cost beyond burst": {valid, 6},
	}
	for name, tc := range cases {
		_, err := l.AllowN(context.Background(), "k", tc.lim, tc.cost)
		require.ErrorIs(t, err, ratelimit.ErrInvalid, name)
	}
	require.Empty(t, b.keys(t), "an invalid request touches no bucket")
}

// Limiters on one registry share its counters instead of failing to register.
func TestNew_sharedRegistry(t *testing.T) {
	t.Parallel()
	l1, b := setup(t, setupOpts{})
	l2 := ratelimit.New(b.rdb, b.prefix, b.reg, zap.NewNop())
	lim := ratelimit.Limit{Name: "api", Rate: 1, Burst: 5}
	for _, l := range []*ratelimit.Limiter{l1, l2} {
		d, err := l.Allow(context.Background(), "k", lim)
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	require.InDelta(t, 2, counter(t, b.reg, "herald_ratelimit_decisions_total", map[string]string{"limit": "api", "result": "allowed"}), 0)
}
