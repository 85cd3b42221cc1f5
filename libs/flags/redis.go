package flags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Redis layout. A value is the string "true" or "false" under
//
//	ff:<flag>                      global
//	ff:<flag>:company:<id>         one company
//	ff:<flag>:workspace:<id>       one workspace
//
// without a TTL: Redis runs with maxmemory-policy volatile-lru, which evicts only keys that
// have one. The set ff:_index lists every key written through Set, so that a refresh reads
// the flags with two commands however large the rest of the key space is (a key written by
// hand, outside Set, is not seen). Every Set and Clear publishes the change on ff:changes in
// the same MULTI as the write, so the order of the messages is the order of the writes.
const (
	keyRoot     = "ff:"
	indexKey    = keyRoot + "_index"
	changesChan = keyRoot + "changes"
)

// Defaults of the Redis provider.
const (
	// DefaultRefreshInterval is how often every value is read again, to cover change messages
	// lost while the subscription was down.
	DefaultRefreshInterval = 30 * time.Second
	// DefaultRetryInterval is how often a provider that cannot reach Redis tries again.
	DefaultRetryInterval = 2 * time.Second
	// Timeout bounds one read of every value.
	Timeout = 2 * time.Second
	// LogInterval is the least time between two warnings about Redis failures.
	LogInterval = time.Minute
)

// Reasons of herald_flags_fallback_total.
const (
	// FallbackLastKnown is a check answered from the values last read, Redis being
	// unreachable.
	FallbackLastKnown = "last_known"
	// FallbackDefault is a check answered with the registry default because no value was
	// ever read.
	FallbackDefault = "default"
	// FallbackUnknownFlag is a check of a flag missing from the registry (a fixture made
	// with NewFlag): it answers false.
	FallbackUnknownFlag = "unknown_flag"
)

// Option tunes NewRedis.
type Option func(*Redis)

// WithDefinitions replaces the registry (Registered()) by defs, for tests with fixture flags.
func WithDefinitions(defs ...Definition) Option {
	return func(r *Redis) { r.defs = defs }
}

// WithKeyPrefix puts every key and the change channel under prefix, so that tests sharing a
// Redis do not see each other's flags.
func WithKeyPrefix(prefix string) Option {
	return func(r *Redis) { r.prefix = prefix }
}

// WithRefreshInterval sets how often every value is read again (DefaultRefreshInterval).
func WithRefreshInterval(d time.Duration) Option {
	return func(r *Redis) { r.refreshEvery = d }
}

// WithRetryInterval sets how often a provider that cannot reach Redis tries again
// (DefaultRetryInterval).
func WithRetryInterval(d time.Duration) Option {
	return func(r *Redis) { r.retryEvery = d }
}

// snapshot is every explicit value, by flag name; it is replaced, never changed.
type snapshot map[string]*values

// change is the message published on every Set and Clear.
type change struct {
	// Key is the key that changed, without the prefix.
	Key string `json:"key"`
	// Value is the new value, nil when cleared.
	Value *bool `json:"value"`
}

// Redis is the provider that keeps flags in Redis. Checks are answered from an in-process
// copy of every value and never wait for the network; Serve keeps the copy current through the
// change messages of every process and a periodic full read. It is safe for concurrent use.
type Redis struct {
	rdb          redis.UniversalClient
	log          *zap.Logger
	defs         []Definition
	reg          *Registry
	prefix       string
	refreshEvery time.Duration
	retryEvery   time.Duration

	snap   atomic.Pointer[snapshot]
	loaded atomic.Bool
	down   atomic.Bool

	fallbackLastKnown, fallbackDefault, fallbackUnknown prometheus.Counter
	up                                                  prometheus.Gauge

	stop     chan struct{}
	stopOnce sync.Once

	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int64
}

// NewRedis returns a provider on rdb with the flags of Registered(). It does no I/O: Serve
// (or Refresh) reads the values; until then checks answer the registry defaults. It registers
// herald_flags_fallback_total{reason} and herald_flags_redis_up on reg.
func NewRedis(rdb redis.UniversalClient, reg prometheus.Registerer, log *zap.Logger, opts ...Option) (*Redis, error) {
	r := &Redis{
		rdb:          rdb,
		log:          log,
		defs:         Registered(),
		refreshEvery: DefaultRefreshInterval,
		retryEvery:   DefaultRetryInterval,
		stop:         make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	if r.refreshEvery <= 0 || r.retryEvery <= 0 {
		return nil, fmt.Errorf("flags: refresh and retry intervals must be positive: %w", ErrInvalidDefinition)
	}
	registry, err := NewRegistry(r.defs...)
	if err != nil {
		return nil, fmt.Errorf("flags registry: %w", err)
	}
	r.reg = registry
	empty := snapshot{}
	r.snap.Store(&empty)
	fallback, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_flags_fallback_total",
		Help: "Feature flag checks answered without Redis, by reason (last_known, default, unknown_flag).",
	}, []string{"reason"}))
	if err != nil {
		return nil, err
	}
	// Resolved once: a check while Redis is down must stay as cheap as any other.
	r.fallbackLastKnown = fallback.WithLabelValues(FallbackLastKnown)
	r.fallbackDefault = fallback.WithLabelValues(FallbackDefault)
	r.fallbackUnknown = fallback.WithLabelValues(FallbackUnknownFlag)
	r.up, err = register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_flags_redis_up",
		Help: "1 when the feature flags were last read from Redis successfully, 0 when they are served from memory because Redis is unreachable.",
	}))
	if err != nil {
		return nil, err
	}
	return r, nil
}

// register registers c on reg, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register flag metrics: %w", err)
	}
	return c, nil
}

// Registry returns the provider's registry.
func (r *Redis) Registry() *Registry { return r.reg }

// Enabled implements Provider. It reads only memory.
func (r *Redis) Enabled(_ context.Context, f Flag, scope Scope) bool {
	def, ok := r.reg.byName[f.name]
	if !ok {
		r.fallbackUnknown.Inc()
		return false
	}
	if r.down.Load() {
		if r.loaded.Load() {
			r.fallbackLastKnown.Inc()
		} else {
			r.fallbackDefault.Inc()
		}
	}
	snap := *r.snap.Load()
	return snap[f.name].resolve(scope, def.Default)
}

// Set sets f to value at t and tells every process.
func (r *Redis) Set(ctx context.Context, f Flag, t Target, value bool) error {
	return r.write(ctx, f, t, &value)
}

// Clear removes the value of f at t, so that a narrower value or the default applies again,
// and tells every process.
func (r *Redis) Clear(ctx context.Context, f Flag, t Target) error {
	return r.write(ctx, f, t, nil)
}

func (r *Redis) write(ctx context.Context, f Flag, t Target, value *bool) error {
	def, ok := r.reg.Lookup(f)
	if !ok {
		return fmt.Errorf("flag %s: %w", f.name, ErrUnknownFlag)
	}
	if err := t.validFor(def); err != nil {
		return err
	}
	rel := relKey(f, t)
	msg, err := json.Marshal(change{Key: rel, Value: value})
	if err != nil {
		return fmt.Errorf("encode flag change: %w", err)
	}
	key := r.prefix + rel
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if value == nil {
			p.Del(ctx, key)
			p.SRem(ctx, r.prefix+indexKey, key)
		} else {
			p.Set(ctx, key, formatBool(*value), 0)
			p.SAdd(ctx, r.prefix+indexKey, key)
		}
		p.Publish(ctx, r.prefix+changesChan, msg)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write flag %s at %s: %w", f.name, t, err)
	}
	r.apply(rel, value)
	return nil
}

func formatBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// relKey is the key of f at t without the prefix.
func relKey(f Flag, t Target) string {
	switch t.Level {
	case LevelCompany:
		return keyRoot + f.name + ":company:" + t.ID.String()
	case LevelWorkspace:
		return keyRoot + f.name + ":workspace:" + t.ID.String()
	}
	return keyRoot + f.name
}

// parseKey splits a key without prefix into its flag name and target.
func parseKey(rel string) (string, Target, bool) {
	rest, ok := strings.CutPrefix(rel, keyRoot)
	if !ok {
		return "", Target{}, false
	}
	parts := strings.Split(rest, ":")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return parts[0], Global(), true
	case len(parts) == 3:
		id, err := uuid.Parse(parts[2])
		if err != nil {
			return "", Target{}, false
		}
		switch parts[1] {
		case "company":
			return parts[0], Company(id), true
		case "workspace":
			return parts[0], Workspace(id), true
		}
	}
	return "", Target{}, false
}

func parseBool(s string) (bool, bool) {
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// apply puts one change into the in-process copy.
func (r *Redis) apply(rel string, value *bool) {
	name, t, ok := parseKey(rel)
	if !ok {
		return
	}
	if _, ok := r.reg.byName[name]; !ok {
		return
	}
	for {
		old := r.snap.Load()
		next := make(snapshot, len(*old)+1)
		for k, v := range *old {
			next[k] = v
		}
		next[name] = (*old)[name].with(t, value)
		if r.snap.CompareAndSwap(old, &next) {
			return
		}
	}
}

// read reads every value of the registered flags from Redis.
func (r *Redis) read(ctx context.Context) (snapshot, error) {
	keys, err := r.rdb.SMembers(ctx, r.prefix+indexKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read flag index: %w", err)
	}
	snap := snapshot{}
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		vals, err := r.rdb.MGet(ctx, batch...).Result()
		if err != nil {
			return nil, fmt.Errorf("read flags: %w", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // cleared between the two reads
			}
			on, ok := parseBool(s)
			name, t, okKey := parseKey(strings.TrimPrefix(batch[i], r.prefix))
			if !ok || !okKey {
				continue
			}
			if _, registered := r.reg.byName[name]; !registered {
				continue
			}
			if snap[name] == nil {
				snap[name] = &values{companies: map[uuid.UUID]bool{}, workspaces: map[uuid.UUID]bool{}}
			}
			snap[name].set(t, &on)
		}
	}
	return snap, nil
}

// Refresh reads every value from Redis into the in-process copy. Serve calls it; a process
// may call it once at start-up so that its first checks already see the stored values.
func (r *Redis) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	snap, err := r.read(ctx)
	if err != nil {
		r.markDown(err)
		return err
	}
	r.snap.Store(&snap)
	r.loaded.Store(true)
	if r.down.Swap(false) {
		r.log.Info("feature flags read from redis again")
	}
	r.up.Set(1)
	return nil
}

// markDown records that Redis could not be read, and warns at most once a LogInterval.
func (r *Redis) markDown(err error) {
	r.down.Store(true)
	r.up.Set(0)
	r.logMu.Lock()
	now := time.Now()
	if !r.lastLog.IsZero() && now.Sub(r.lastLog) < LogInterval {
		r.suppressed++
		r.logMu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.lastLog, r.suppressed = now, 0
	r.logMu.Unlock()
	answer := "last known values"
	if !r.loaded.Load() {
		answer = "registry defaults"
	}
	r.log.Warn("feature flags served from memory: redis unreachable",
		zap.String("answering", answer),
		zap.Int64("failures_not_logged", suppressed),
		zap.Error(err))
}

// State reads everything set for f from Redis (not from the in-process copy), for listings.
func (r *Redis) State(ctx context.Context, f Flag) (State, error) {
	def, ok := r.reg.Lookup(f)
	if !ok {
		return State{}, fmt.Errorf("flag %s: %w", f.name, ErrUnknownFlag)
	}
	snap, err := r.read(ctx)
	if err != nil {
		return State{}, err
	}
	st := State{Definition: def, Companies: map[uuid.UUID]bool{}, Workspaces: map[uuid.UUID]bool{}}
	if v := snap[f.name]; v != nil {
		st.Global, st.Companies, st.Workspaces = v.global, v.companies, v.workspaces
	}
	return st, nil
}

// Name implements lifecycle.Component.
func (r *Redis) Name() string { return "flags" }

// Serve implements lifecycle.Component: it subscribes to the change messages, reads every
// value, and then applies each change as it comes, reads everything again every refresh
// interval and whenever the subscription is re-established (messages may have been lost in
// between), and retries every retry interval while Redis is unreachable. It returns nil when
// Shutdown is called or ctx ends; Redis failures never make it fail.
func (r *Redis) Serve(ctx context.Context) error {
	ps := r.rdb.Subscribe(ctx, r.prefix+changesChan)
	defer ps.Close()
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))

	_ = r.Refresh(ctx)
	timer := time.NewTimer(r.nextRefresh())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.stop:
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					_ = r.Refresh(ctx)
					timer.Reset(r.nextRefresh())
				}
			case *redis.Message:
				var c change
				if err := json.Unmarshal([]byte(m.Payload), &c); err != nil {
					r.log.Warn("feature flag change message ignored", zap.Error(err))
					continue
				}
				r.apply(c.Key, c.Value)
			}
		case <-timer.C:
			_ = r.Refresh(ctx)
			timer.Reset(r.nextRefresh())
		}
	}
}

func (r *Redis) nextRefresh() time.Duration {
	if r.down.Load() {
		return r.retryEvery
	}
	return r.refreshEvery
}

// Shutdown implements lifecycle.Component: Serve returns at once (there is no in-flight work).
func (r *Redis) Shutdown(context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	return nil
}

// Up reports whether the values were last read from Redis successfully (the gauge
// herald_flags_redis_up).
func (r *Redis) Up() bool { return r.loaded.Load() && !r.down.Load() }
