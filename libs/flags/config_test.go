package flags_test

import (
	"testing"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/stretchr/testify/require"
)

// flagsConfig is a process configuration holding the flags' part, as process.Common does.
type flagsConfig struct {
	Flags flags.Config
}

func loadFlagsConfig(vars, files map[string]string) (flags.Config, error) {
	var c flagsConfig
	err := config.Load(&c, config.FromMap(vars, files))
	return c.Flags, err
}

func TestConfig_defaultsToRedis(t *testing.T) {
	t.Parallel()
	c, err := loadFlagsConfig(map[string]string{"UNLEASH_URL": "not checked"}, nil)
	require.NoError(t, err)
	require.Equal(t, flags.ProviderRedis, c.Provider)
}

func TestConfig_unleash(t *testing.T) {
	t.Parallel()
	c, err := loadFlagsConfig(map[string]string{
		"FEATURE_FLAGS_PROVIDER": "unleash",
		"UNLEASH_URL":            "https://unleash.example.com/api",
		"UNLEASH_API_KEY_FILE":   "/run/secrets/unleash",
	}, map[string]string{"/run/secrets/unleash": "default:production.sentinel\n"})
	require.NoError(t, err)
	require.Equal(t, flags.Config{Provider: flags.ProviderUnleash, UnleashURL: "https://unleash.example.com/api", UnleashAPIKey: "default:production.sentinel"}, c)
	masked := config.Masked(flagsConfig{Flags: c})
	require.Equal(t, "[set]", masked["UNLEASH_API_KEY"])
	require.Equal(t, "unleash", masked["FEATURE_FLAGS_PROVIDER"])
}

func TestConfig_rejects(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		vars    map[string]string
		wantVar string
	}{
		"unknown provider": {map[string]string{"FEATURE_FLAGS_PROVIDER": "launchdarkly-sentinel"}, "FEATURE_FLAGS_PROVIDER"},
		"no url":           {map[string]string{"FEATURE_FLAGS_PROVIDER": "unleash", "UNLEASH_API_KEY": "sentinel"}, "UNLEASH_URL"},
		"not a url":        {map[string]string{"FEATURE_FLAGS_PROVIDER": "unleash", "UNLEASH_URL": "unleash-sentinel:4242", "UNLEASH_API_KEY": "k"}, "UNLEASH_URL"},
		"credentials in the url": {map[string]string{
			"FEATURE_FLAGS_PROVIDER": "unleash", "UNLEASH_URL": "https://user:pw-sentinel@unleash.example.com/api", "UNLEASH_API_KEY": "k",
		}, "UNLEASH_URL"},
		"no api key": {map[string]string{"FEATURE_FLAGS_PROVIDER": "unleash", "UNLEASH_URL": "https://unleash.example.com/api"}, "UNLEASH_API_KEY"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := loadFlagsConfig(tc.vars, nil)
			var cerr *config.Error
			require.ErrorAs(t, err, &cerr)
			require.Equal(t, tc.wantVar, cerr.Var)
			require.NotContains(t, err.Error(), "sentinel")
		})
	}
}
