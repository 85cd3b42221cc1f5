package flags

import (
	"errors"
	"net/url"

	"github.com/heraldmail/herald/libs/config"
)

// Providers a process can run (FEATURE_FLAGS_PROVIDER).
const (
	// ProviderRedis keeps the flags in the process's Redis; they are changed with the `flags`
	// command or the gateway's /v1/flags routes.
	ProviderRedis = "redis"
	// ProviderUnleash asks an Unleash server; the flags are changed in Unleash.
	ProviderUnleash = "unleash"
)

// ErrManagedInUnleash is a change of a flag refused because the process's flags come from
// Unleash: they are changed there, not in Redis.
var ErrManagedInUnleash = errors.New("feature flags are managed in Unleash (FEATURE_FLAGS_PROVIDER=unleash): change them in Unleash")

// Config chooses the feature flag provider of a process. Every process reads it (it is part of
// process.Common).
type Config struct {
	// Provider is redis or unleash.
	Provider string `env:"FEATURE_FLAGS_PROVIDER" default:"redis" oneof:"redis,unleash"`
	// UnleashURL is the API root of the Unleash server, such as
	// https://unleash.example.com/api; required with the unleash provider.
	UnleashURL string `env:"UNLEASH_URL"`
	// UnleashAPIKey is a client (backend) API token of the Unleash server; required with the
	// unleash provider.
	UnleashAPIKey string `env:"UNLEASH_API_KEY" secret:"true"`
}

// Validate requires UNLEASH_URL and UNLEASH_API_KEY with the unleash provider. The URL must
// not hold credentials: it is logged with the configuration, the API key never is.
func (c *Config) Validate() error {
	if c.Provider != ProviderUnleash {
		return nil
	}
	if c.UnleashURL == "" {
		return &config.Error{Var: "UNLEASH_URL", Reason: "required when FEATURE_FLAGS_PROVIDER=unleash: the API root of the Unleash server, such as https://unleash.example.com/api"}
	}
	u, err := url.Parse(c.UnleashURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return &config.Error{Var: "UNLEASH_URL", Reason: "must be an http(s) URL of the Unleash API root, such as https://unleash.example.com/api"}
	}
	if u.User != nil {
		return &config.Error{Var: "UNLEASH_URL", Reason: "must not hold credentials: put the client API token in UNLEASH_API_KEY"}
	}
	if c.UnleashAPIKey == "" {
		return &config.Error{Var: "UNLEASH_API_KEY", Reason: "required when FEATURE_FLAGS_PROVIDER=unleash: a client API token of the Unleash server (or UNLEASH_API_KEY_FILE)"}
	}
	return nil
}
