package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Record is what the completion ledger keeps of one uploaded content.
type Record struct {
	SHA256     string    `json:"sha256"`
	DocumentID string    `json:"document_id"`
	Endpoint   string    `json:"endpoint"`
	Source     string    `json:"source"` // the path the content was uploaded from
	Size       int64     `json:"size"`
	Attempts   int       `json:"attempts"`
	UploadedAt time.Time `json:"uploaded_at"`
}

// Ledger records every upload by SHA-256 before its file moves, so that the
// same content is never uploaded twice: not after a crash between upload and
// move, not from a second copy, not from another process.
type Ledger interface {
	// Get returns the record of sha, or nil when the content was never uploaded.
	Get(ctx context.Context, sha string) (*Record, error)
	// Put records an upload. It must be durable when it returns.
	Put(ctx context.Context, r Record) error
}

// RedisLedger keeps records in Redis under "<prefix>ledger:<sha256>", without
// expiry: about 250 bytes per uploaded content.
type RedisLedger struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisLedger returns a ledger in Redis.
func NewRedisLedger(client redis.UniversalClient, prefix string) *RedisLedger {
	return &RedisLedger{client: client, prefix: prefix}
}

func (l *RedisLedger) key(sha string) string { return l.prefix + "ledger:" + sha }

// Get reads a record.
func (l *RedisLedger) Get(ctx context.Context, sha string) (*Record, error) {
	b, err := l.client.Get(ctx, l.key(sha)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("ledger record %s: %w", sha, err)
	}
	return &r, nil
}

// Put writes a record; the first record of a content wins.
func (l *RedisLedger) Put(ctx context.Context, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := l.client.SetNX(ctx, l.key(r.SHA256), b, 0).Err(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// MemoryLedger is a Ledger in this process's memory, for tests.
type MemoryLedger struct {
	mu sync.Mutex
	m  map[string]Record
}

// NewMemoryLedger returns an empty in-memory ledger.
func NewMemoryLedger() *MemoryLedger { return &MemoryLedger{m: map[string]Record{}} }

// Get reads a record.
func (l *MemoryLedger) Get(_ context.Context, sha string) (*Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.m[sha]; ok {
		return &r, nil
	}
	return nil, nil
}

// Put writes a record; the first record of a content wins.
func (l *MemoryLedger) Put(_ context.Context, r Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.m[r.SHA256]; !ok {
		l.m[r.SHA256] = r
	}
	return nil
}
