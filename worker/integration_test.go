//go:build integration

package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// On resume, the tasks that met the account trouble (each would wait a
// minute in the retry set) run at once; a task retrying for another reason
// keeps its retry time.
func TestPauseReleasesHeldTasksReal(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	client := asynq.NewClient(opt)
	defer client.Close()

	var mu sync.Mutex
	calls := map[string]int{}
	mux := asynq.NewServeMux()
	mux.HandleFunc("probe", func(_ context.Context, task *asynq.Task) error {
		mu.Lock()
		defer mu.Unlock()
		id := string(task.Payload())
		calls[id]++
		switch {
		case id == "held" && calls[id] == 1:
			return &nonFailure{err: fmt.Errorf("%s%w", heldPrefix, errors.New("natif answered 402")), after: time.Minute}
		case id == "other":
			return errors.New("natif answered 503")
		}
		return nil
	})
	qsrv := asynq.NewServer(opt, ServerConfig("natif", 2, time.Second, zerolog.Nop()))
	if err := qsrv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer qsrv.Shutdown()
	for _, id := range []string{"held", "other"} {
		if _, err := client.Enqueue(asynq.NewTask("probe", []byte(id)), asynq.Queue("natif"), asynq.TaskID(id), asynq.MaxRetry(5)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { info, err := insp.GetQueueInfo("natif"); return err == nil && info.Retry == 2 })

	p := &Pause{Queue: "natif", Control: insp, Min: 200 * time.Millisecond, Logger: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	p.Trip("quota")
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls["held"] == 2 })
	if ti, err := insp.GetTaskInfo("natif", "other"); err != nil || ti.State != asynq.TaskStateRetry {
		t.Errorf("the task retrying for a 503: %v, %v; want it still waiting in retry", ti, err)
	}
}
