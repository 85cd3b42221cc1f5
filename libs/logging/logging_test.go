package logging_test

import (
	"testing"

	"github.com/heraldmail/herald/libs/logging"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

func TestLevels(t *testing.T) {
	t.Parallel()
	log, err := logging.New("svc", "production", "warn")
	require.NoError(t, err)
	require.False(t, log.Core().Enabled(zapcore.InfoLevel))
	require.True(t, log.Core().Enabled(zapcore.WarnLevel))

	_, err = logging.New("svc", "development", "loud")
	require.Error(t, err)

	boot := logging.Bootstrap("svc", func(string) (string, bool) { return "loud", true })
	require.True(t, boot.Core().Enabled(zapcore.InfoLevel), "an invalid level falls back to info")
}
