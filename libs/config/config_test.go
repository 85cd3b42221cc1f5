package config_test

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/stretchr/testify/require"
)

type svcConfig struct {
	config.Base
	config.Database
	config.Redis
	config.Auth
	Port    int           `env:"PORT" default:"3001" min:"1" max:"65535"`
	Expiry  time.Duration `env:"JWT_EXPIRY" default:"15m"`
	Refresh time.Duration `env:"REFRESH_TOKEN_EXPIRY" default:"7d"`
	Origins []string      `env:"ORIGINS"`
}

const secret = "0123456789abcdef0123456789abcdef-sentinel"

func base() map[string]string {
	return map[string]string{
		"DATABASE_URL": "postgres://u:pw-sentinel@db.internal:5432/herald",
		"JWT_SECRET":   secret,
	}
}

func load(t *testing.T, vars map[string]string, files map[string]string) (svcConfig, error) {
	t.Helper()
	var c svcConfig
	err := config.Load(&c, config.FromMap(vars, files))
	return c, err
}

func TestDefaultsOutsideProduction(t *testing.T) {
	t.Parallel()
	c, err := load(t, base(), nil)
	require.NoError(t, err)
	require.Equal(t, "development", c.AppEnv)
	require.Equal(t, int32(5), c.PoolSize)
	require.False(t, c.Database.TLS)
	require.False(t, c.Redis.TLS)
	require.Equal(t, 3001, c.Port)
	require.Equal(t, 15*time.Minute, c.Expiry)
	require.Equal(t, 7*24*time.Hour, c.Refresh)
	require.Equal(t, 5*time.Second, c.DrainDelay)
	require.Equal(t, 30*time.Second, c.ShutdownTimeout)
	require.Equal(t, "localhost", c.Host)
}

func TestProductionDefaults(t *testing.T) {
	t.Parallel()
	vars := base()
	vars["APP_ENV"] = "production"
	c, err := load(t, vars, nil)
	require.NoError(t, err)
	require.Equal(t, int32(20), c.PoolSize)
	require.True(t, c.Database.TLS)
	require.True(t, c.Redis.TLS)

	vars["DATABASE_POOL_SIZE"] = "50"
	c, err = load(t, vars, nil)
	require.NoError(t, err)
	require.Equal(t, int32(50), c.PoolSize, "an explicit value wins over the production default")
}

func TestProductionRefusesPlaintextDatabase(t *testing.T) {
	t.Parallel()
	vars := base()
	vars["APP_ENV"] = "production"
	vars["DATABASE_URL"] = "postgres://u:pw-sentinel@db:5432/herald?sslmode=disable"
	_, err := load(t, vars, nil)
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, "DATABASE_URL", cerr.Var)
	require.NotContains(t, err.Error(), "pw-sentinel")
}

func TestErrorsNameTheVariableNeverTheValue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		mutate  func(map[string]string)
		wantVar string
	}{
		{"missing required", func(m map[string]string) { delete(m, "DATABASE_URL") }, "DATABASE_URL"},
		{"blank required", func(m map[string]string) { m["JWT_SECRET"] = "  " }, "JWT_SECRET"},
		{"short secret", func(m map[string]string) { m["JWT_SECRET"] = "short-sentinel" }, "JWT_SECRET"},
		{"not a number", func(m map[string]string) { m["PORT"] = "http-sentinel" }, "PORT"},
		{"out of range", func(m map[string]string) { m["PORT"] = "70000" }, "PORT"},
		{"not in set", func(m map[string]string) { m["APP_ENV"] = "prod-sentinel" }, "APP_ENV"},
		{"bad duration", func(m map[string]string) { m["DRAIN_DELAY"] = "soon-sentinel" }, "DRAIN_DELAY"},
		{"bad bool", func(m map[string]string) { m["REDIS_TLS"] = "maybe-sentinel" }, "REDIS_TLS"},
		{"bad url", func(m map[string]string) { m["DATABASE_URL"] = "mysql://x-sentinel" }, "DATABASE_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vars := base()
			tc.mutate(vars)
			_, err := load(t, vars, nil)
			var cerr *config.Error
			require.True(t, errors.As(err, &cerr), "got %v", err)
			require.Equal(t, tc.wantVar, cerr.Var)
			require.NotContains(t, err.Error(), "sentinel")
		})
	}
}

func TestSecretFromFile(t *testing.T) {
	t.Parallel()
	vars := base()
	delete(vars, "JWT_SECRET")
	vars["JWT_SECRET_FILE"] = "/run/secrets/jwt"
	c, err := load(t, vars, map[string]string{"/run/secrets/jwt": secret + "\n"})
	require.NoError(t, err)
	require.Equal(t, secret, c.JWTSecret, "the trailing newline of the file is dropped")

	vars["JWT_SECRET_FILE"] = "/missing"
	_, err = load(t, vars, nil)
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, "JWT_SECRET_FILE", cerr.Var)
}

func TestPlainVariableHasNoFileVariant(t *testing.T) {
	t.Parallel()
	vars := base()
	vars["PORT_FILE"] = "/etc/port"
	c, err := load(t, vars, map[string]string{"/etc/port": "9999"})
	require.NoError(t, err)
	require.Equal(t, 3001, c.Port)
}

func TestListsAndMasking(t *testing.T) {
	t.Parallel()
	vars := base()
	vars["ORIGINS"] = "a, b,,c"
	vars["REDIS_PASSWORD"] = "redis-sentinel"
	c, err := load(t, vars, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, c.Origins)

	m := config.Masked(c)
	require.Equal(t, "[set]", m["DATABASE_URL"])
	require.Equal(t, "[set]", m["JWT_SECRET"])
	require.Equal(t, "[set]", m["REDIS_PASSWORD"])
	require.Equal(t, "[unset]", m["SENTRY_DSN"])
	require.Equal(t, 3001, m["PORT"])
	require.Equal(t, "15m0s", m["JWT_EXPIRY"])
	for _, v := range m {
		if s, ok := v.(string); ok {
			require.NotContains(t, s, "sentinel")
		}
	}
}

func TestLoadNeedsAStructPointer(t *testing.T) {
	t.Parallel()
	var c svcConfig
	require.Error(t, config.Load(c, config.FromMap(base(), nil)))
}
