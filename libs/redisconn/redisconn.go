// Package redisconn opens the go-redis client of a process with short timeouts, so that a slow
// or absent Redis degrades a request instead of stalling it.
package redisconn

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Timeouts of every Redis client.
const (
	DialTimeout  = 2 * time.Second
	ReadTimeout  = 500 * time.Millisecond
	WriteTimeout = 500 * time.Millisecond
	PoolTimeout  = time.Second
)

// Connect returns a client. Like postgres.Connect it does not fail when Redis is down at
// start-up.
func Connect(ctx context.Context, cfg config.Redis, log *zap.Logger) *redis.Client {
	opts := &redis.Options{
		Addr:         net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		Password:     cfg.Password,
		DB:           cfg.DB,
		DialTimeout:  DialTimeout,
		ReadTimeout:  ReadTimeout,
		WriteTimeout: WriteTimeout,
		PoolTimeout:  PoolTimeout,
		MaxRetries:   1,
	}
	if cfg.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.Host}
	}
	client := redis.NewClient(opts)
	pingCtx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		log.Warn("redis not reachable at start-up; readiness stays 503 until it is",
			zap.String("addr", opts.Addr))
	}
	return client
}
