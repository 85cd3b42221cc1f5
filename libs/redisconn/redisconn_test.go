package redisconn_test

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/heraldmail/herald/libs/redisconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

func TestConnect(t *testing.T) {
	t.Parallel()
	host, port, err := net.SplitHostPort(testenv.RedisAddr(t))
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	c := redisconn.Connect(context.Background(), config.Redis{Host: host, Port: p}, zaptest.NewLogger(t))
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Ping(context.Background()).Err())
	require.Equal(t, redisconn.ReadTimeout, c.Options().ReadTimeout)

	tlsClient := redisconn.Connect(context.Background(), config.Redis{Host: "127.0.0.1", Port: 1, TLS: true}, zaptest.NewLogger(t))
	t.Cleanup(func() { _ = tlsClient.Close() })
	require.NotNil(t, tlsClient.Options().TLSConfig, "TLS is configured when asked for")
}
