// Package errtrack reports errors and panics to Sentry. It hooks into the logger: every entry
// at error level or above is sent as a Sentry event, so code logs an error once and it reaches
// both the logs and Sentry. Without SENTRY_DSN it does nothing.
package errtrack

import (
	"fmt"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/heraldmail/herald/libs/config"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Wrap returns log extended with a Sentry core when base.SentryDSN is set, and a flush
// function to call before the process exits.
func Wrap(log *zap.Logger, base config.Base, service, release string) (*zap.Logger, func(), error) {
	if base.SentryDSN == "" {
		return log, func() {}, nil
	}
	env := base.SentryEnvironment
	if env == "" {
		env = base.AppEnv
	}
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:         base.SentryDSN,
		Environment: env,
		Release:     release,
		ServerName:  service,
		// Request bodies and headers may carry personal data or credentials.
		SendDefaultPII: false,
	})
	if err != nil {
		// The SDK's error may quote the DSN, which holds a key.
		return nil, nil, &config.Error{Var: "SENTRY_DSN", Reason: "is not a valid Sentry DSN"}
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	hub.Scope().SetTag("service", service)
	core := &sentryCore{hub: hub, LevelEnabler: zapcore.ErrorLevel}
	wrapped := log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, core) }))
	return wrapped, func() { hub.Flush(5 * time.Second) }, nil
}

type sentryCore struct {
	zapcore.LevelEnabler
	hub    *sentry.Hub
	fields []zapcore.Field
}

func (c *sentryCore) With(fields []zapcore.Field) zapcore.Core {
	return &sentryCore{LevelEnabler: c.LevelEnabler, hub: c.hub, fields: append(append([]zapcore.Field{}, c.fields...), fields...)}
}

func (c *sentryCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *sentryCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field{}, c.fields...), fields...) {
		f.AddTo(enc)
	}
	ev := sentry.NewEvent()
	ev.Level = sentry.LevelError
	if e.Level >= zapcore.DPanicLevel {
		ev.Level = sentry.LevelFatal
	}
	ev.Message = e.Message
	ev.Logger = e.LoggerName
	ev.Timestamp = e.Time
	ev.Contexts = map[string]sentry.Context{"log": enc.Fields}
	if errMsg, ok := enc.Fields["error"]; ok {
		ev.Exception = []sentry.Exception{{Type: e.Message, Value: fmt.Sprint(errMsg)}}
	}
	c.hub.CaptureEvent(ev)
	return nil
}

func (c *sentryCore) Sync() error {
	c.hub.Flush(2 * time.Second)
	return nil
}
