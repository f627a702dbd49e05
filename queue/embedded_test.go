package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

func TestEmbeddedQueue(t *testing.T) {
	dir := t.TempDir()
	if _, err := ConnectEmbedded(dir); !errors.Is(err, ErrNoEmbedded) {
		t.Fatalf("before start: %v, want ErrNoEmbedded", err)
	}
	e, err := StartEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartEmbedded(dir); err == nil {
		t.Errorf("a second embedded queue on one state folder started; want refused")
	}
	opt, err := ConnectEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Ping(context.Background(), opt, time.Second); err != nil {
		t.Fatalf("ping through the state file: %v", err)
	}
	// Without the password the queue refuses.
	noPW := asynq.RedisClientOpt{Addr: opt.(asynq.RedisClientOpt).Addr}
	if err := Ping(context.Background(), noPW, time.Second); err == nil {
		t.Errorf("the embedded queue answered without its password")
	}
	e.Close()
	if _, err := ConnectEmbedded(dir); !errors.Is(err, ErrNoEmbedded) {
		t.Errorf("after close: %v, want ErrNoEmbedded", err)
	}
}
