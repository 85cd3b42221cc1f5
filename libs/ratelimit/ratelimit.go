// Package ratelimit limits request rates with token buckets kept in Redis, so that every
// gateway replica draws from the same buckets.
//
// A bucket holds up to Burst tokens and gains Rate tokens per second; a request takes one
// (Allow) or several (AllowN) and is refused while the bucket holds fewer. One Lua script reads,
// refills and takes from a bucket atomically, with Redis's own clock (TIME), so the clocks of
// the replicas never matter. Every bucket key carries a TTL of the time it takes to fill up
// again: a bucket that expired and a full one are the same thing, and Redis (maxmemory-policy
// volatile-lru) may evict bucket keys under memory pressure without harm.
//
// The limiter fails open: when Redis cannot answer, the request is allowed, the failure is
// counted (herald_ratelimit_errors_total) and logged at most once a minute. A rate limit
// protects the service; it must never be the reason the service is down.
//
// Redis 5 or later is needed (scripts that read TIME and then write are replicated by effects).
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// ErrInvalid is returned for a Limit or cost no request could ever satisfy; it is a
// programming error, never caused by a client.
var ErrInvalid = errors.New("invalid rate limit")

// Timeout bounds the wait for one decision: past it the request is allowed (fails open), so a
// slow or unreachable Redis adds at most this much to a request. The client's own timeouts
// apply too (the read timeout bounds a reply when the client ignores context deadlines).
const Timeout = 250 * time.Millisecond

// LogInterval is the least time between two warnings about Redis failures; the failures in
// between are counted in the next warning.
const LogInterval = time.Minute

// Results of a decision, the values of the result label of herald_ratelimit_decisions_total.
const (
	ResultAllowed = "allowed"
	ResultLimited = "limited"
	// ResultFailedOpen is a request allowed because Redis could not decide.
	ResultFailedOpen = "failed_open"
)

// Limit is the bucket a class of requests draws from.
type Limit struct {
	// Name identifies the limit ("api", "login", ...): it separates the buckets of different
	// limits on the same key and is the limit label of the metrics, so it must be one of a few
	// fixed values, never an id.
	Name string
	// Rate is the number of tokens added per second (e.g. 100.0/60 for 100 a minute).
	Rate float64
	// Burst is the capacity of the bucket: the most requests allowed at once.
	Burst int
}

// Validate reports whether the limit can be enforced.
func (l Limit) Validate() error {
	switch {
	case l.Name == "":
		return fmt.Errorf("limit name must be set: %w", ErrInvalid)
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Rate <= 0:
		return fmt.Errorf("limit %s: rate must be a positive number of tokens per second: %w", l.Name, ErrInvalid)
	case l.Burst < 1:
		return fmt.Errorf("limit %s: burst must be at least 1: %w", l.Name, ErrInvalid)
	}
	return nil
}

// Decision is the answer for one request.
type Decision struct {
	// Allowed tells whether the request may proceed.
	Allowed bool
	// Remaining is the number of whole tokens left in the bucket after this request.
	Remaining int
	// RetryAfter is, for a refused request, how long until the bucket holds enough tokens for
	// it (the Retry-After of a 429); zero when allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
	// FailedOpen is set when Redis could not decide and the request was allowed anyway;
	// Remaining, RetryAfter and ResetAfter are then zero and mean nothing.
	FailedOpen bool
}

// bucketScript refills and takes from one bucket atomically.
//
// KEYS[1] is a hash {tokens, ts}: the tokens left (fractional) at ts, microseconds of Redis's
// clock. ARGV is rate (tokens per second), burst, cost. It returns {allowed (0/1), whole tokens
// left, retry after (µs), reset after (µs)}. Numbers are stored with explicit formats: Lua's
// default conversion keeps 14 digits, too few for a microsecond timestamp.
const bucketScript = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local tokens = burst
local ts = now
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
if state[1] and state[2] then
  tokens = math.min(burst, tonumber(state[1]))
  ts = tonumber(state[2])
  -- A clock that went back (a failover to a replica running behind) refills nothing until it
  -- catches up, rather than granting the difference twice.
  if now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
    ts = now
  end
end

local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.ceil((cost - tokens) * 1000000 / rate)
end
local reset = math.ceil((burst - tokens) * 1000000 / rate)

redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.0f', ts))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(reset / 1000)))
return {allowed, math.floor(tokens), retry, reset}
`

// Limiter decides requests against token buckets in Redis. It is safe for concurrent use.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	script *redis.Script
	log    *zap.Logger
	now    func() time.Time

	decisions *prometheus.CounterVec
	errors    prometheus.Counter

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int64
}

// New returns a limiter whose bucket keys are prefix + limit name + ":" + key (e.g.
// "herald:ratelimit:" + "api" + ":" + company id). It registers
// herald_ratelimit_decisions_total{limit,result} and herald_ratelimit_errors_total on reg;
// limiters sharing a registry share the counters.
func New(rdb redis.UniversalClient, prefix string, reg prometheus.Registerer, log *zap.Logger) *Limiter {
	l := &Limiter{
		rdb:    rdb,
		prefix: prefix,
		script: redis.NewScript(bucketScript),
		log:    log,
		now:    time.Now,
		decisions: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_ratelimit_decisions_total",
			Help: "Rate limit decisions, by limit and result (allowed, limited, failed_open).",
		}, []string{"limit", "result"})),
		errors: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ratelimit_errors_total",
			Help: "Rate limit decisions Redis could not make; the requests were allowed.",
		})),
	}
	return l
}

// register registers c on reg, or returns the collector already registered there under the
// same name. Any other registration error is a programming error, reported like
// prometheus.MustRegister does.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("ratelimit: register metrics: %v", err))
	}
	return c
}

// Allow takes one token from the bucket of key under lim.
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit) (Decision, error) {
	return l.AllowN(ctx, key, lim, 1)
}

// AllowN takes n tokens at once from the bucket of key under lim, or none when it holds fewer
// (a refused request costs nothing, so a client that keeps retrying still gets through once the
// bucket refills). The error is non-nil only for an invalid lim or n (ErrInvalid); when Redis
// fails or takes longer than Timeout, or ctx ends first, the request is allowed with FailedOpen
// set.
func (l *Limiter) AllowN(ctx context.Context, key string, lim Limit, n int) (Decision, error) {
	if err := lim.Validate(); err != nil {
		return Decision{}, err
	}
	if n < 1 || n > lim.Burst {
		return Decision{}, fmt.Errorf("limit %s: cost %d must be between 1 and the burst %d: %w", lim.Name, n, lim.Burst, ErrInvalid)
	}
	rctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	res, err := l.script.Run(rctx, l.rdb, []string{l.key(lim.Name, key)},
		strconv.FormatFloat(lim.Rate, 'g', -1, 64), lim.Burst, n).Int64Slice()
	if err == nil && len(res) != 4 {
		err = fmt.Errorf("bucket script returned %d values, want 4", len(res))
	}
	if err != nil {
		l.failed(ctx, lim.Name, err)
		return Decision{Allowed: true, FailedOpen: true}, nil
	}
	d := Decision{
		Allowed:    res[0] == 1,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		ResetAfter: time.Duration(res[3]) * time.Microsecond,
	}
	result := ResultAllowed
	if !d.Allowed {
		result = ResultLimited
	}
	l.decisions.WithLabelValues(lim.Name, result).Inc()
	return d, nil
}

// Reset forgets the bucket of key under the limit named name, so that it
// is full again: e.g. after a successful login, for the bucket of failed attempts.
func (l *Limiter) Reset(ctx context.Context, name, key string) error {
	if err := l.rdb.Del(ctx, l.key(name, key)).Err(); err != nil {
		return fmt.Errorf("reset rate limit %s: %w", name, err)
	}
	return nil
}

func (l *Limiter) key(name, key string) string {
	return l.prefix + name + ":" + key
}

// failed records a decision Redis could not make. A caller whose own context ended is not a
// Redis failure: it is neither counted as an error nor logged.
func (l *Limiter) failed(ctx context.Context, name string, err error) {
	l.decisions.WithLabelValues(name, ResultFailedOpen).Inc()
	if ctx.Err() != nil {
		return
	}
	l.errors.Inc()

	l.mu.Lock()
	now := l.now()
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < LogInterval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.lastLog, l.suppressed = now, 0
	l.mu.Unlock()

	l.log.Warn("rate limit not enforced: redis failed, request allowed",
		zap.String("limit", name),
		zap.Int64("failures_not_logged", suppressed),
		zap.Error(err))
}
