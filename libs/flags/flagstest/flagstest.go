// Package flagstest gives tests a Redis feature flag provider of their own and forces flags on
// or off for a test, so that every flag's two paths are tested.
package flagstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

// KeyPrefix returns a Redis key prefix unique to the test.
func KeyPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return testPrefix(t) + hex.EncodeToString(b) + ":"
}

// testPrefix is what every KeyPrefix of the test starts with.
func testPrefix(t testing.TB) string {
	return "flags-test:" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ":"
}

// Purge deletes every key made under a KeyPrefix of the test: flags have no TTL, so they
// would stay in the test Redis for ever. New calls it when the test ends; a test that builds
// its providers with Start calls it itself.
func Purge(t testing.TB, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	pattern := strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(testPrefix(t)) + "*"
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("list the test's flag keys: %v", err)
		return
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("delete the test's flag keys: %v", err)
		}
	}
}

// New returns a provider on the test Redis (HERALD_TEST_REDIS_ADDR) under a key prefix of the
// test's own, already serving; it stops when the test ends, and the keys the test made under
// any KeyPrefix of its own are deleted. Options come after the prefix, so
// a test may share a prefix between two providers with flags.WithKeyPrefix.
func New(t testing.TB, opts ...flags.Option) *flags.Redis {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	t.Cleanup(func() { Purge(t, rdb) })
	return Start(t, rdb, append([]flags.Option{flags.WithKeyPrefix(KeyPrefix(t))}, opts...)...)
}

// Start returns a provider on rdb, serving until the test ends.
func Start(t testing.TB, rdb redis.UniversalClient, opts ...flags.Option) *flags.Redis {
	t.Helper()
	p, err := flags.NewRedis(rdb, prometheus.NewRegistry(), zaptest.NewLogger(t), opts...)
	if err != nil {
		t.Fatalf("flags provider: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = p.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("flags provider: %v", err)
		}
	})
	return p
}

// With forces f to value for every tenant (a global value, which wins over all others) until
// the test ends, then clears it. Tests sharing p must not run in parallel with each other.
func With(t testing.TB, p *flags.Redis, f flags.Flag, value bool) {
	t.Helper()
	ctx := context.Background()
	if err := p.Set(ctx, f, flags.Global(), value); err != nil {
		t.Fatalf("force flag %s to %t: %v", f, value, err)
	}
	t.Cleanup(func() {
		if err := p.Clear(ctx, f, flags.Global()); err != nil {
			t.Errorf("clear flag %s: %v", f, err)
		}
	})
}

// Both runs fn once with f forced on and once forced off, as subtests "on" and "off".
func Both(t *testing.T, p *flags.Redis, f flags.Flag, fn func(t *testing.T, on bool)) {
	t.Helper()
	for _, on := range []bool{true, false} {
		name := "off"
		if on {
			name = "on"
		}
		t.Run(f.Name()+"="+name, func(t *testing.T) {
			With(t, p, f, on)
			fn(t, on)
		})
	}
}

// Eventually polls until p answers want for f in scope, or fails the test after deadline.
func Eventually(t testing.TB, p flags.Provider, f flags.Flag, scope flags.Scope, want bool, deadline time.Duration) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for {
		if p.Enabled(context.Background(), f, scope) == want {
			return
		}
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("flag %s in %+v is not %t after %s", f, scope, want, deadline)
		}
	}
}
