//go:build integration

package worker

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/internal/testredis"
)

func TestRoundTripRealRedis(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	roundTrip(t, asynq.RedisClientOpt{Addr: srv.Addr}, NewRedisLedger(srv.Client(t), "natif-uploader:"))
}

// The pause works on a real queue: asynq's inspector pauses it for every
// process and resumes it after the wait.
func TestPauseRealQueue(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	client := asynq.NewClient(opt)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("noop", nil), asynq.Queue("natif")); err != nil {
		t.Fatal(err)
	}
	p := &Pause{Queue: "natif", Control: insp, Min: 300 * time.Millisecond, Logger: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	p.Trip("quota")
	info, err := insp.GetQueueInfo("natif")
	if err != nil || !info.Paused {
		t.Fatalf("queue after Trip: %+v, %v; want paused", info, err)
	}
	waitUntil(t, func() bool { info, err := insp.GetQueueInfo("natif"); return err == nil && !info.Paused })
}
