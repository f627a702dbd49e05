//go:build integration

package queue

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/natif-uploader/natif-uploader/internal/testredis"
	"github.com/natif-uploader/natif-uploader/redact"
)

func TestPingRealRedisWithPassword(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t, testredis.Options{Password: "pw-Integration7"})
	opt, err := Open(redact.NewSecretURL(srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	if err := Ping(context.Background(), opt, 2*time.Second); err != nil {
		t.Fatalf("Ping with the right password = %v, want nil", err)
	}
	wrong, _ := Open(redact.NewSecretURL("redis://:not-the-password@" + srv.Addr + "/0"))
	err = Ping(context.Background(), wrong, 2*time.Second)
	if err == nil {
		t.Fatal("Ping with a wrong password = nil, want an error")
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error %q shows the password", err)
	}
}

// One task through a real Redis: enqueued once per ID, processed once, and its
// ID still refused while the completed task is retained.
func TestAsynqRoundTripRealRedis(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t, testredis.Options{})
	opt, _ := Open(redact.NewSecretURL(srv.URL()))
	client := asynq.NewClient(opt)
	defer client.Close()

	var handled atomic.Int32
	done := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("document:upload", func(ctx context.Context, task *asynq.Task) error {
		if handled.Add(1) == 1 {
			close(done)
		}
		return nil
	})
	server := asynq.NewServer(opt, asynq.Config{
		Concurrency: 2, Queues: map[string]int{"natif": 1},
		LogLevel: asynq.FatalLevel,
	})
	if err := server.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer server.Shutdown()

	task := asynq.NewTask("document:upload", []byte(`{"sha256":"abc"}`))
	opts := []asynq.Option{asynq.TaskID("abc"), asynq.Queue("natif"), asynq.Retention(time.Hour)}
	if _, err := client.Enqueue(task, opts...); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("task not handled within 15s")
	}
	// Completed and retained: the same ID is still a conflict.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := client.Enqueue(task, opts...)
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			break
		}
		if err != nil {
			t.Fatalf("re-enqueue: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("re-enqueue of a retained task's ID was accepted, want ErrTaskIDConflict")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := handled.Load(); n != 1 {
		t.Errorf("handled %d times, want 1", n)
	}
}

// With AOF on, a queued task survives a Redis restart.
func TestQueuedTaskSurvivesRealRedisRestart(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t, testredis.Options{AppendOnly: true})
	opt, _ := Open(redact.NewSecretURL(srv.URL()))
	client := asynq.NewClient(opt)
	if _, err := client.Enqueue(asynq.NewTask("document:upload", nil), asynq.TaskID("kept"), asynq.Queue("natif")); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if err := srv.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	info, err := insp.GetTaskInfo("natif", "kept")
	if err != nil {
		t.Fatalf("task after restart: %v", err)
	}
	if info.State != asynq.TaskStatePending {
		t.Errorf("state after restart = %v, want pending", info.State)
	}
}
