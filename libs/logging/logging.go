// Package logging builds the zap logger every process uses: JSON in production, readable
// console output elsewhere, level from LOG_LEVEL.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger for service. appEnv "production" selects JSON output; level is one of
// debug, info, warn, error.
func New(service, appEnv, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("parse LOG_LEVEL: %w", err)
	}
	var cfg zap.Config
	if appEnv == "production" || appEnv == "staging" {
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "ts"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	} else {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.OutputPaths = []string{"stderr"}
	cfg.ErrorOutputPaths = []string{"stderr"}
	log, err := cfg.Build(zap.Fields(zap.String("service", service)))
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log, nil
}

// Bootstrap is the logger used before the configuration is read: it reads APP_ENV and
// LOG_LEVEL through lookup, falling back to development/info when they are unset or invalid.
func Bootstrap(service string, lookup func(string) (string, bool)) *zap.Logger {
	env, _ := lookup("APP_ENV")
	level, ok := lookup("LOG_LEVEL")
	if !ok || level == "" {
		level = "info"
	}
	log, err := New(service, env, level)
	if err != nil {
		log, _ = New(service, env, "info")
	}
	if log == nil {
		return zap.NewNop()
	}
	return log
}
