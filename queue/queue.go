// Package queue opens natif-uploader's asynq queue in Redis and checks that it
// is reachable. The task type and its payload belong to the worker; this
// package knows only where the queue lives.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/natif-uploader/natif-uploader/redact"
)

// ErrNoRedis is returned by Open when no Redis URL is configured: the caller
// uses the embedded queue instead.
var ErrNoRedis = errors.New("no REDIS_URL configured")

// Open parses a Redis URL (redis://, rediss://, redis-socket://,
// redis-sentinel://) the way asynq does. Its error never quotes the URL, which
// may hold a password.
func Open(u redact.SecretURL) (asynq.RedisConnOpt, error) {
	if !u.IsSet() {
		return nil, ErrNoRedis
	}
	opt, err := asynq.ParseRedisURI(u.Reveal())
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL %s: not a Redis URL asynq can use", u)
	}
	return opt, nil
}

// Ping checks that Redis answers within timeout, with the credentials given.
// Readiness checks and start-up use it to fail with one clear line.
func Ping(ctx context.Context, opt asynq.RedisConnOpt, timeout time.Duration) error {
	c, err := Client(opt)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	return nil
}

// Client returns a go-redis client for opt, for the few keys natif-uploader
// keeps beside asynq's (the shared credentials flag). The caller closes it.
func Client(opt asynq.RedisConnOpt) (redis.UniversalClient, error) {
	c, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("redis: unexpected client type")
	}
	return c, nil
}
