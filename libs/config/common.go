package config

import (
	"net/url"
	"time"
)

// Base is what every process reads.
type Base struct {
	// AppEnv selects defaults: production turns on TLS to PostgreSQL and Redis, a larger
	// pool and JSON logs.
	AppEnv   string `env:"APP_ENV" default:"development" oneof:"development,test,staging,production"`
	LogLevel string `env:"LOG_LEVEL" default:"info" oneof:"debug,info,warn,error"`
	// AdminPort is the internal listener for health, metrics and pprof. Each service sets its
	// own default through AdminDefault.
	AdminPort       int           `env:"ADMIN_PORT" min:"1" max:"65535"`
	DrainDelay      time.Duration `env:"DRAIN_DELAY" default:"5s"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" default:"30s"`
	SentryDSN       string        `env:"SENTRY_DSN" secret:"true"`
	// SentryEnvironment defaults to APP_ENV when empty.
	SentryEnvironment string `env:"SENTRY_ENVIRONMENT"`
}

// Production reports whether APP_ENV is production.
func (b Base) Production() bool { return b.AppEnv == EnvProduction }

// Database is the PostgreSQL connection of a process.
type Database struct {
	URL string `env:"DATABASE_URL" required:"true" secret:"true"`
	// PoolSize is the maximum number of connections in the pool.
	PoolSize         int32         `env:"DATABASE_POOL_SIZE" default:"5" prod:"20" min:"1" max:"500"`
	StatementTimeout time.Duration `env:"DATABASE_STATEMENT_TIMEOUT" default:"30s"`
	ConnectTimeout   time.Duration `env:"DATABASE_CONNECT_TIMEOUT" default:"5s"`
	// TLS requires an encrypted connection (sslmode=verify-full unless the URL asks for
	// require or verify-ca).
	TLS bool `env:"DATABASE_TLS" default:"false" prod:"true"`
}

// Validate checks the URL without ever echoing it.
func (d *Database) Validate() error {
	u, err := url.Parse(d.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return &Error{Var: "DATABASE_URL", Reason: "must be a postgres:// URL with a host"}
	}
	if d.TLS {
		switch u.Query().Get("sslmode") {
		case "", "require", "verify-ca", "verify-full":
		default:
			return &Error{Var: "DATABASE_URL", Reason: "its sslmode turns TLS off, but DATABASE_TLS is true (the default in production)"}
		}
	}
	return nil
}

// Redis is the Redis connection of a process.
type Redis struct {
	Host     string `env:"REDIS_HOST" default:"localhost"`
	Port     int    `env:"REDIS_PORT" default:"6379" min:"1" max:"65535"`
	Password string `env:"REDIS_PASSWORD" secret:"true"`
	DB       int    `env:"REDIS_DB" default:"0" min:"0" max:"15"`
	TLS      bool   `env:"REDIS_TLS" default:"false" prod:"true"`
}

// Auth is what a process needs to verify (and, for the gateway and worker, sign) tokens.
type Auth struct {
	// JWTSecret signs and verifies tokens; at least 32 bytes.
	JWTSecret string `env:"JWT_SECRET" required:"true" secret:"true"`
}

// Validate checks the secret's length without echoing it.
func (a *Auth) Validate() error {
	if len(a.JWTSecret) < 32 {
		return &Error{Var: "JWT_SECRET", Reason: "must be at least 32 bytes long"}
	}
	return nil
}
