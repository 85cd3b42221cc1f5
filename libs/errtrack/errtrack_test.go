package errtrack_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/errtrack"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestErrorLogsReachSentry(t *testing.T) {
	t.Parallel()
	bodies := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(r.Body)
			if err == nil {
				rd = gz
			}
		}
		b, _ := io.ReadAll(rd)
		bodies <- string(b)
	}))
	t.Cleanup(srv.Close)
	dsn := strings.Replace(srv.URL, "http://", "http://publickey@", 1) + "/42"

	log, flush, err := errtrack.Wrap(zaptest.NewLogger(t), config.Base{AppEnv: "test", SentryDSN: dsn}, "svc", "v1")
	require.NoError(t, err)
	log.Info("not reported")
	log.Error("store write", zap.String("table", "recipients"))
	flush()
	body := <-bodies
	require.Contains(t, body, "store write")
	require.Contains(t, body, "recipients")
	require.NotContains(t, body, "not reported")
}

func TestWithoutDSNNothingChanges(t *testing.T) {
	t.Parallel()
	base := zaptest.NewLogger(t)
	log, flush, err := errtrack.Wrap(base, config.Base{}, "svc", "v1")
	require.NoError(t, err)
	require.Same(t, base, log)
	flush()
}

func TestInvalidDSNIsAConfigError(t *testing.T) {
	t.Parallel()
	_, _, err := errtrack.Wrap(zaptest.NewLogger(t), config.Base{SentryDSN: "not a dsn with key-sentinel"}, "svc", "v1")
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, "SENTRY_DSN", cerr.Var)
	require.NotContains(t, err.Error(), "sentinel")
}
