package process_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/heraldmail/herald/libs/process"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// processFlag is the fixture flag of these tests, off by default.
var processFlag = flags.NewFlag("fixture_process")

func processFlagDefinition() flags.Definition {
	return flags.Definition{
		Flag: processFlag, Description: "fixture", Scope: flags.LevelCompany, Owner: "platform",
		Added: flags.Date(2026, time.January, 1), ExpectedRemoval: flags.Date(2027, time.January, 1),
	}
}

// startProcess starts a process with env on top of the test database and Redis, runs it until
// the test ends, and returns it.
func startProcess(t *testing.T, env map[string]string, opts process.Options) *process.Process {
	t.Helper()
	host, port, err := net.SplitHostPort(testenv.RedisAddr(t))
	require.NoError(t, err)
	vars := map[string]string{
		"DATABASE_URL":     testenv.DatabaseURL(t),
		"REDIS_HOST":       host,
		"REDIS_PORT":       port,
		"JWT_SECRET":       "process-test-secret-0123456789abcdef0123",
		"ADMIN_PORT":       fmt.Sprint(freePort(t)),
		"DRAIN_DELAY":      "0s",
		"SHUTDOWN_TIMEOUT": "5s",
	}
	for k, v := range env {
		vars[k] = v
	}
	var cfg svcConfig
	require.NoError(t, config.Load(&cfg, config.FromMap(vars, nil)))
	opts.Name = "process-flags-test"
	ctx, cancel := context.WithCancel(context.Background())
	p, err := process.Start(ctx, opts, cfg, &cfg.Common)
	require.NoError(t, err)
	p.Log = zaptest.NewLogger(t)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		p.Close()
	})
	return p
}

func TestFlags_redisByDefault(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	t.Cleanup(func() { flagstest.Purge(t, rdb) })
	prefix := flagstest.KeyPrefix(t)
	fixture := []flags.Option{flags.WithKeyPrefix(prefix), flags.WithDefinitions(processFlagDefinition())}
	company := uuid.New()

	// A value set before the process starts is seen by its first check.
	writer := flagstest.Start(t, rdb, fixture...)
	require.NoError(t, writer.Set(t.Context(), processFlag, flags.Company(company), true))

	p := startProcess(t, nil, process.Options{FlagOptions: fixture})
	require.True(t, p.Flags.Enabled(t.Context(), processFlag, flags.Scope{CompanyID: company}))
	store, ok := p.FlagStore()
	require.True(t, ok)
	require.Same(t, p.Flags, flags.Provider(store))
	_, known := p.FlagRegistry().Lookup(processFlag)
	require.True(t, known)

	// A change made elsewhere reaches the running process.
	require.NoError(t, writer.Set(t.Context(), processFlag, flags.Company(company), false))
	flagstest.Eventually(t, p.Flags, processFlag, flags.Scope{CompanyID: company}, false, 10*time.Second)
	// And a change made by the process reaches the others.
	require.NoError(t, store.Set(t.Context(), processFlag, flags.Global(), true))
	flagstest.Eventually(t, writer, processFlag, flags.Scope{}, true, 10*time.Second)
}

func TestFlags_unleash(t *testing.T) {
	t.Parallel()
	const apiKey = "default:development.process-test-key"
	company := uuid.New()
	features := fmt.Sprintf(`{"version": 2, "features": [{"name": %q, "enabled": true, "strategies": [
		{"name": "default", "constraints": [{"contextName": %q, "operator": "IN", "values": [%q]}]}]}]}`,
		processFlag.Name(), flags.UnleashCompanyField, company)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != apiKey:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case r.Method == http.MethodGet && r.URL.Path == "/api/client/features":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(features))
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(srv.Close)

	p := startProcess(t, map[string]string{
		"FEATURE_FLAGS_PROVIDER": "unleash",
		"UNLEASH_URL":            srv.URL + "/api",
		"UNLEASH_API_KEY":        apiKey,
	}, process.Options{UnleashOptions: []flags.UnleashOption{
		flags.WithUnleashDefinitions(processFlagDefinition()),
		flags.WithUnleashBackupPath(t.TempDir()),
	}})
	_, ok := p.FlagStore()
	require.False(t, ok, "flags are changed in Unleash")
	_, known := p.FlagRegistry().Lookup(processFlag)
	require.True(t, known)
	u, ok := p.Flags.(*flags.Unleash)
	require.True(t, ok)
	select {
	case <-u.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the flags were not fetched within 10s")
	}
	require.True(t, p.Flags.Enabled(t.Context(), processFlag, flags.Scope{CompanyID: company}))
	require.False(t, p.Flags.Enabled(t.Context(), processFlag, flags.Scope{CompanyID: uuid.New()}))
}
