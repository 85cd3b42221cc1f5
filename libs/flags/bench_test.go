package flags_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// BenchmarkFlagCheck compares a check answered from the in-process copy with the design it
// replaces, which read up to three keys from Redis per check (global, company, workspace: all
// three for a flag set nowhere), and measures how long a change takes to reach another
// provider.
func BenchmarkFlagCheck(b *testing.B) {
	prefix := flagstest.KeyPrefix(b)
	opts := []flags.Option{flags.WithDefinitions(fixtures()...), flags.WithKeyPrefix(prefix)}
	p := flagstest.New(b, opts...)
	other := flagstest.New(b, opts...)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(b)})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	scope := flags.Scope{CompanyID: uuid.New(), WorkspaceID: uuid.New()}
	for deadline := time.Now().Add(10 * time.Second); !p.Up() || !other.Up(); runtime.Gosched() {
		if time.Now().After(deadline) {
			b.Fatal("the providers did not read their flags from Redis within 10s")
		}
	}

	var seedNs float64
	b.Run("seed", func(b *testing.B) {
		keys := []string{
			prefix + "ff:" + workspaceFlag.Name(),
			prefix + "ff:" + workspaceFlag.Name() + ":company:" + scope.CompanyID.String(),
			prefix + "ff:" + workspaceFlag.Name() + ":workspace:" + scope.WorkspaceID.String(),
		}
		for b.Loop() {
			if seedCheck(ctx, b, rdb, keys) {
				b.Fatal("flag set nowhere is on")
			}
		}
		seedNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(seedNs, "ns/check")
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if p.Enabled(ctx, workspaceFlag, scope) {
				b.Fatal("flag set nowhere is on")
			}
		}
		ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(ns, "ns/check")
		if seedNs > 0 {
			b.ReportMetric(seedNs/ns, "ratio-vs-seed")
		}
	})
	b.Run("propagation", func(b *testing.B) {
		var total time.Duration
		value := false
		for b.Loop() {
			value = !value
			start := time.Now()
			if err := p.Set(ctx, workspaceFlag, flags.Workspace(scope.WorkspaceID), value); err != nil {
				b.Fatal(err)
			}
			deadline := start.Add(10 * time.Second)
			for other.Enabled(ctx, workspaceFlag, scope) != value {
				if time.Now().After(deadline) {
					b.Fatal("change not seen by the other provider within 10s")
				}
				runtime.Gosched()
			}
			total += time.Since(start)
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "propagation-ms")
	})
}

// seedCheck is a check as the seed made it: a GET per level until one is set.
func seedCheck(ctx context.Context, b *testing.B, rdb *redis.Client, keys []string) bool {
	for _, k := range keys {
		v, err := rdb.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		return v == "true"
	}
	return false
}
