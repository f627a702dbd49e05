package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"
)

// FailureLogSize is how many failures a FailureLog keeps.
const FailureLogSize = 100

// Failure is one file that went to the failed folder without an upload task
// (empty, unsupported, too large, incomplete, unreadable): asynq has no
// archived task for it, so `status` reads it here.
type Failure struct {
	File     string    `json:"file"`
	Reason   string    `json:"reason"`
	FailedAt time.Time `json:"failed_at"`
}

// FailureLog is a capped list in Redis of the files the watcher and
// `enqueue` failed before queueing them, newest first, shared by every
// process on the queue. It holds paths and reasons only.
type FailureLog struct {
	rc  redis.UniversalClient
	key string
}

// NewFailureLog returns the log of queue.
func NewFailureLog(rc redis.UniversalClient, queue string) *FailureLog {
	return &FailureLog{rc: rc, key: "natif-uploader:failures:" + queue}
}

// Record adds a failure, dropping the oldest past FailureLogSize.
func (l *FailureLog) Record(ctx context.Context, f Failure) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	_, err = l.rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, l.key, b)
		p.LTrim(ctx, l.key, 0, FailureLogSize-1)
		return nil
	})
	return err
}

// Recent returns up to n failures, newest first.
func (l *FailureLog) Recent(ctx context.Context, n int) ([]Failure, error) {
	if n <= 0 {
		return nil, nil
	}
	items, err := l.rc.LRange(ctx, l.key, 0, int64(n-1)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Failure, 0, len(items))
	for _, it := range items {
		var f Failure
		if json.Unmarshal([]byte(it), &f) == nil {
			out = append(out, f)
		}
	}
	return out, nil
}
