package logbridge_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldmail/herald/services/worker/internal/logbridge"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestSlog(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	log := logbridge.Slog(zap.New(core))

	log.Debug("hidden")
	log.With("client_id", "c1").WithGroup("job").Warn("job errored",
		slog.Int64("id", 7), slog.Duration("took", time.Second), slog.Any("error", errors.New("boom")), slog.Bool("retry", true))
	log.Error("failed")

	entries := logs.AllUntimed()
	require.Len(t, entries, 2)
	require.Equal(t, zapcore.WarnLevel, entries[0].Level)
	require.Equal(t, "job errored", entries[0].Message)
	require.Equal(t, map[string]any{
		"client_id": "c1", "job.id": int64(7), "job.took": time.Second, "job.error": "boom", "job.retry": true,
	}, entries[0].ContextMap())
	require.Equal(t, zapcore.ErrorLevel, entries[1].Level)
	require.False(t, log.Enabled(t.Context(), slog.LevelDebug))
}
