// Package limits applies the gateway's rate limits on the shared token buckets of
// libs/ratelimit: a budget per company for authenticated /v1 requests, and login attempts per
// account and per client address. Like the buckets, the limits fail open when Redis is down.
package limits

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldmail/herald/libs/ratelimit"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/rest"
)

// Names of the limits, in bucket keys and metrics.
const (
	NameAPI          = "api"
	NameLoginAccount = "login_account"
	NameLoginIP      = "login_ip"
)

// Login attempts allowed per minute (and at once) for one account and for one address.
const (
	LoginPerAccountPerMinute = 5
	LoginPerIPPerMinute      = 20
)

// LoginLimits are the default login limits: 5 attempts a minute per account, 20 per address.
func LoginLimits() (account, ip ratelimit.Limit) {
	return ratelimit.Limit{Name: NameLoginAccount, Rate: LoginPerAccountPerMinute / 60.0, Burst: LoginPerAccountPerMinute},
		ratelimit.Limit{Name: NameLoginIP, Rate: LoginPerIPPerMinute / 60.0, Burst: LoginPerIPPerMinute}
}

// Options configure Limits.
type Options struct {
	Limiter *ratelimit.Limiter
	// API is every company's budget of authenticated requests (rate per second, burst).
	API ratelimit.Limit
	// LoginAccount and LoginIP limit login attempts; zero values mean LoginLimits.
	LoginAccount, LoginIP ratelimit.Limit
	Log                   *zap.Logger
}

// Limits implements rest.Limiter and identity.LoginThrottle.
type Limits struct {
	o Options
}

// New validates the limits and returns Limits.
func New(o Options) (*Limits, error) {
	account, ip := LoginLimits()
	if o.LoginAccount == (ratelimit.Limit{}) {
		o.LoginAccount = account
	}
	if o.LoginIP == (ratelimit.Limit{}) {
		o.LoginIP = ip
	}
	if o.Limiter == nil || o.Log == nil {
		return nil, errors.New("limits: a limiter and a logger are required")
	}
	if err := errors.Join(o.API.Validate(), o.LoginAccount.Validate(), o.LoginIP.Validate()); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	return &Limits{o: o}, nil
}

// Allow implements rest.Limiter: one request from the budget of the caller's company.
func (l *Limits) Allow(r *http.Request) rest.RateDecision {
	c, ok := identity.CallerFrom(r.Context())
	if !ok {
		return rest.RateDecision{}
	}
	d, err := l.o.Limiter.Allow(r.Context(), c.CompanyID.String(), l.o.API)
	if err != nil {
		// Only an invalid limit fails, and New refused those: never block on it.
		l.o.Log.Error("rate limit", zap.Error(err))
		return rest.RateDecision{}
	}
	if d.FailedOpen {
		return rest.RateDecision{}
	}
	return rest.RateDecision{Applies: true, Allowed: d.Allowed, Remaining: d.Remaining, RetryAfter: d.RetryAfter}
}

// AllowLogin implements identity.LoginThrottle. The address is charged first, so a flood
// from one address does not spend the account's attempts; the account is keyed by a hash of
// the email, which Redis never sees.
func (l *Limits) AllowLogin(ctx context.Context, email, clientIP string) (time.Duration, error) {
	if clientIP != "" {
		d, err := l.o.Limiter.Allow(ctx, clientIP, l.o.LoginIP)
		if err != nil {
			return 0, fmt.Errorf("login rate limit: %w", err)
		}
		if !d.Allowed {
			return d.RetryAfter, nil
		}
	}
	d, err := l.o.Limiter.Allow(ctx, identity.HashToken(email), l.o.LoginAccount)
	if err != nil {
		return 0, fmt.Errorf("login rate limit: %w", err)
	}
	if !d.Allowed {
		return d.RetryAfter, nil
	}
	return 0, nil
}
