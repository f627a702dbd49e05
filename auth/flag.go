package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RejectionFlag shares "natif rejected these credentials" between processes,
// so that one wrong password costs the account one failed login, not one per
// process (SPEC section 5). It is keyed by user name and holds no secret: a
// salted scrypt verifier of the rejected password lets a process with a
// different (fixed) password go ahead, while the same password stays blocked.
type RejectionFlag interface {
	// Get returns the rejection recorded for username, or nil.
	Get(ctx context.Context, username string) (*RejectedError, error)
	// Set records a rejection for username.
	Set(ctx context.Context, username string, r RejectedError) error
	// Clear removes it (after a successful login with fixed credentials).
	Clear(ctx context.Context, username string) error
}

// RedisFlag is a RejectionFlag in Redis, one key per user name under prefix.
// The key has no expiry: only a successful operator login clears it.
type RedisFlag struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisFlag stores flags as "<prefix>credentials-rejected:<username>".
func NewRedisFlag(client redis.UniversalClient, prefix string) *RedisFlag {
	return &RedisFlag{client: client, prefix: prefix}
}

type flagValue struct {
	Reason   string    `json:"reason"`
	Hint     string    `json:"hint"`
	Host     string    `json:"host"`
	At       time.Time `json:"at"`
	Salt     []byte    `json:"salt,omitempty"`
	Verifier []byte    `json:"scrypt,omitempty"` // scrypt of the rejected password, never the password
}

func (f *RedisFlag) key(username string) string { return f.prefix + "credentials-rejected:" + username }

// Get reads the flag.
func (f *RedisFlag) Get(ctx context.Context, username string) (*RejectedError, error) {
	b, err := f.client.Get(ctx, f.key(username)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the credentials flag: %w", err)
	}
	var v flagValue
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("read the credentials flag: %w", err)
	}
	return &RejectedError{Reason: v.Reason, Hint: v.Hint, Host: v.Host, At: v.At, salt: v.Salt, verifier: v.Verifier}, nil
}

// Set writes the flag.
func (f *RedisFlag) Set(ctx context.Context, username string, r RejectedError) error {
	b, err := json.Marshal(flagValue{Reason: r.Reason, Hint: r.Hint, Host: r.Host, At: r.At, Salt: r.salt, Verifier: r.verifier})
	if err != nil {
		return err
	}
	return f.client.Set(ctx, f.key(username), b, 0).Err()
}

// Clear deletes the flag.
func (f *RedisFlag) Clear(ctx context.Context, username string) error {
	return f.client.Del(ctx, f.key(username)).Err()
}
