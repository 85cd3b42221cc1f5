package app_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/process/processtest"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/heraldmail/herald/services/recipient/internal/app"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// secret signs tokens in tests; it is not a real credential.
const secret = "app-test-secret-0123456789abcdefghij"

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://u@db:5432/herald", "JWT_SECRET": secret}

	cfg, err := app.LoadConfig(config.FromMap(base, nil))
	require.NoError(t, err)
	require.Equal(t, 50052, cfg.GRPCPort)
	require.Equal(t, app.DefaultAdminPort, cfg.AdminPort)
	require.Equal(t, 9052, cfg.AdminPort)

	for name, value := range map[string]string{"GRPC_PORT": "0", "ADMIN_PORT": "70000", "ERASURE_HASH_KEY": "short", "ERASURE_HASH_KEY_PREVIOUS": "short"} {
		vars := map[string]string{name: value}
		for k, v := range base {
			vars[k] = v
		}
		_, err := app.LoadConfig(config.FromMap(vars, nil))
		var cerr *config.Error
		require.True(t, errors.As(err, &cerr), "%s=%s: %v", name, value, err)
		require.Equal(t, name, cerr.Var)
		require.NotContains(t, err.Error(), value)
	}

	// The erasure key is required in staging and production, where no key is derived.
	for _, env := range []string{"staging", "production"} {
		vars := map[string]string{"APP_ENV": env}
		for k, v := range base {
			vars[k] = v
		}
		_, err := app.LoadConfig(config.FromMap(vars, nil))
		var cerr *config.Error
		require.True(t, errors.As(err, &cerr), "%s: %v", env, err)
		require.Equal(t, "ERASURE_HASH_KEY", cerr.Var)
		vars["ERASURE_HASH_KEY"] = strings.Repeat("e", 32)
		_, err = app.LoadConfig(config.FromMap(vars, nil))
		require.NoError(t, err, env)
	}
}

func TestRun_configError(t *testing.T) {
	t.Parallel()
	err := app.Run(context.Background(), zaptest.NewLogger(t), config.FromMap(map[string]string{"JWT_SECRET": secret}, nil))
	var cerr *config.Error
	require.True(t, errors.As(err, &cerr), "%v", err)
	require.Equal(t, "DATABASE_URL", cerr.Var)
}

func TestRun(t *testing.T) {
	t.Parallel()
	redisHost, redisPort, err := net.SplitHostPort(pgtest.RedisAddr(t))
	require.NoError(t, err)
	processtest.Check(t, processtest.Options{
		Run: app.Run,
		Env: map[string]string{
			"DATABASE_URL": pgtest.URLAs(t, pgtest.URL(t), migrations.RoleRecipient),
			"REDIS_HOST":   redisHost,
			"REDIS_PORT":   redisPort,
			"JWT_SECRET":   secret,
		},
		GRPCServices: []string{recipientv1.RecipientService_ServiceDesc.ServiceName},
	})
}
