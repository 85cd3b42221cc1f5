package app

import (
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/process"

	"github.com/heraldmail/herald/services/gateway/internal/clientip"
)

// DefaultAdminPort is the gateway's admin listener unless ADMIN_PORT says otherwise.
const DefaultAdminPort = 9001

// Config is the gateway's configuration.
type Config struct {
	// Common holds the database (the identity schema the gateway owns, connected as the
	// herald_gateway role), Redis, the signing secret and the process settings.
	process.Common

	// Port is the public REST listener.
	Port int `env:"PORT" default:"3001" min:"1" max:"65535"`
	// FrontendURL is the origin of the web front end, the only one CORS allows.
	FrontendURL string `env:"FRONTEND_URL" default:"http://localhost:3000"`
	// Addresses of the services the API is proxied to.
	RecipientGRPCAddr string `env:"RECIPIENT_GRPC_ADDR" default:"localhost:50052"`
	CampaignGRPCAddr  string `env:"CAMPAIGN_GRPC_ADDR" default:"localhost:50051"`
	EventsGRPCAddr    string `env:"EVENTS_GRPC_ADDR" default:"localhost:50053"`
	// HTTPBodyLimit is the largest request body accepted, in bytes.
	HTTPBodyLimit int64 `env:"HTTP_BODY_LIMIT" default:"1048576" min:"1" max:"1073741824"`

	// JWTSecretPrevious is the secret tokens were signed with before the last rotation: still
	// accepted (never used to sign) until it is removed, so a rotation logs nobody out.
	JWTSecretPrevious string `env:"JWT_SECRET_PREVIOUS" secret:"true"`
	// JWTExpiry is the lifetime of access tokens.
	JWTExpiry time.Duration `env:"JWT_EXPIRY" default:"15m"`
	// RefreshTokenExpiry is the lifetime of refresh tokens (each use makes a new one).
	RefreshTokenExpiry time.Duration `env:"REFRESH_TOKEN_EXPIRY" default:"7d"`
	// RateLimitPerSecond and RateLimitBurst are every company's budget of authenticated /v1
	// requests: a token bucket of RateLimitBurst refilled at RateLimitPerSecond.
	RateLimitPerSecond float64 `env:"RATE_LIMIT_PER_SECOND" default:"50"`
	RateLimitBurst     int     `env:"RATE_LIMIT_BURST" default:"100" min:"1" max:"1000000"`
	// TrustedProxies are the proxies (CIDR blocks or addresses) whose X-Forwarded-For is
	// believed when working out a client's address; empty means the TCP peer is the client.
	TrustedProxies []string `env:"TRUSTED_PROXIES"`

	// Tracking configures the public tracking routes and the mail provider's webhook.
	Tracking TrackingConfig
}

// Limits of the token lifetimes.
const (
	maxJWTExpiry     = 24 * time.Hour
	maxRefreshExpiry = 365 * 24 * time.Hour
)

// Validate checks that FRONTEND_URL is an origin (scheme and host, nothing else) and keeps
// it in the form browsers send in the Origin header.
func (c *Config) Validate() error {
	u, err := url.Parse(strings.TrimSpace(c.FrontendURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return &config.Error{Var: "FRONTEND_URL", Reason: "must be an origin such as https://app.example.com (scheme and host, no path)"}
	}
	c.FrontendURL = strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)

	if c.JWTSecretPrevious != "" && len(c.JWTSecretPrevious) < 32 {
		return &config.Error{Var: "JWT_SECRET_PREVIOUS", Reason: "must be at least 32 bytes long (or unset)"}
	}
	if c.JWTSecretPrevious != "" && c.JWTSecretPrevious == c.JWTSecret {
		return &config.Error{Var: "JWT_SECRET_PREVIOUS", Reason: "must differ from JWT_SECRET"}
	}
	if c.JWTExpiry < time.Minute || c.JWTExpiry > maxJWTExpiry {
		return &config.Error{Var: "JWT_EXPIRY", Reason: "must be between 1m and 24h"}
	}
	if c.RefreshTokenExpiry < c.JWTExpiry || c.RefreshTokenExpiry > maxRefreshExpiry {
		return &config.Error{Var: "REFRESH_TOKEN_EXPIRY", Reason: "must be at least JWT_EXPIRY and at most 365d"}
	}
	if math.IsNaN(c.RateLimitPerSecond) || math.IsInf(c.RateLimitPerSecond, 0) || c.RateLimitPerSecond <= 0 {
		return &config.Error{Var: "RATE_LIMIT_PER_SECOND", Reason: "must be a positive number of requests per second"}
	}
	if _, err := clientip.New(c.TrustedProxies); err != nil {
		return &config.Error{Var: "TRUSTED_PROXIES", Reason: "must be a comma-separated list of CIDR blocks or addresses"}
	}
	return nil
}
