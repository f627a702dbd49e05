package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestRoundTripMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	roundTrip(t, asynq.RedisClientOpt{Addr: mr.Addr()}, NewRedisLedger(client, "natif-uploader:"))
}

// The failure log keeps the newest FailureLogSize failures, newest first.
func TestFailureLog(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	l := NewFailureLog(client, "natif")
	ctx := context.Background()
	start := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	for i := range FailureLogSize + 5 {
		if err := l.Record(ctx, Failure{File: fmt.Sprintf("/in/%03d.pdf", i), Reason: "empty file", FailedAt: start.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Recent(ctx, 3)
	if err != nil || len(got) != 3 || got[0].File != fmt.Sprintf("/in/%03d.pdf", FailureLogSize+4) || got[2].File != fmt.Sprintf("/in/%03d.pdf", FailureLogSize+2) {
		t.Errorf("Recent(3) = %+v, %v; want the three newest, newest first", got, err)
	}
	if n := client.LLen(ctx, "natif-uploader:failures:natif").Val(); n != FailureLogSize {
		t.Errorf("log holds %d entries, want %d", n, FailureLogSize)
	}
	if other, _ := NewFailureLog(client, "other").Recent(ctx, 10); len(other) != 0 {
		t.Errorf("another queue's log holds %v", other)
	}
}
