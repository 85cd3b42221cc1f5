package limits_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/ratelimit"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/limits"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func setup(t *testing.T, api ratelimit.Limit) *limits.Limits {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: pgtest.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	l, err := limits.New(limits.Options{
		Limiter: ratelimit.New(rdb, pgtest.KeyPrefix(t), prometheus.NewRegistry(), zap.NewNop()),
		API:     api,
		Log:     zap.NewNop(),
	})
	require.NoError(t, err)
	return l
}

func TestCompanyBudget(t *testing.T) {
	t.Parallel()
	l := setup(t, ratelimit.Limit{Name: limits.NameAPI, Rate: 0.5, Burst: 2})
	req := func(company uuid.UUID) *http.Request {
		r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/me", nil)
		return r.WithContext(identity.WithCaller(r.Context(), identity.Caller{CompanyID: company, UserID: uuid.New()}))
	}
	a, b := uuid.New(), uuid.New()
	for want := 1; want >= 0; want-- {
		d := l.Allow(req(a))
		require.True(t, d.Applies)
		require.True(t, d.Allowed)
		require.Equal(t, want, d.Remaining)
	}
	d := l.Allow(req(a))
	require.False(t, d.Allowed)
	require.Greater(t, d.RetryAfter, time.Duration(0))
	require.LessOrEqual(t, d.RetryAfter, 2*time.Second)

	require.True(t, l.Allow(req(b)).Allowed, "each company has its own budget")
	noCaller := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/auth/login", nil)
	require.False(t, l.Allow(noCaller).Applies, "requests without a caller are not metered here")
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	l := setup(t, ratelimit.Limit{Name: limits.NameAPI, Rate: 50, Burst: 100})
	ctx := t.Context()
	for range limits.LoginPerAccountPerMinute {
		wait, err := l.AllowLogin(ctx, "ada@example.com", "192.0.2.1")
		require.NoError(t, err)
		require.Zero(t, wait)
	}
	wait, err := l.AllowLogin(ctx, "ada@example.com", "192.0.2.2")
	require.NoError(t, err)
	require.Greater(t, wait, time.Duration(0), "the account is throttled from any address")

	// The address has attempts left for other accounts until its own limit.
	for i := range limits.LoginPerIPPerMinute - limits.LoginPerAccountPerMinute {
		wait, err := l.AllowLogin(ctx, uuid.NewString()+"@example.com", "192.0.2.1")
		require.NoError(t, err)
		require.Zero(t, wait, "attempt %d", i)
	}
	wait, err = l.AllowLogin(ctx, "grace@example.com", "192.0.2.1")
	require.NoError(t, err)
	require.Greater(t, wait, time.Duration(0), "the address is throttled for every account")
}
