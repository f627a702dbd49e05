//go:build integration

package watcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/natif-uploader/natif-uploader/internal/testredis"
	"github.com/natif-uploader/natif-uploader/worker"
)

// The watcher against a real Redis: every file queued once under its content
// ID, and a restart over the same tree queues nothing new.
func TestWatcherQueuesIntoRealRedis(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	client := asynq.NewClient(opt)
	defer client.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	opts := worker.DefaultTaskOptions()
	f := newFixture(t, func(o *Options) {
		o.Enqueuer = &worker.Enqueuer{Client: client, Options: opts}
		o.Ledger = worker.NewRedisLedger(srv.Client(t), "natif-uploader:")
	})
	for i := range 50 {
		f.write(fmt.Sprintf("s/%02d.pdf", i), pdf(fmt.Sprint("r", i)))
	}
	f.start()
	eventually(t, 15*time.Second, func() bool { return f.w.Counts()[Queued] == 50 }, "50 files queued")
	f.stop()
	f.start()
	eventually(t, 15*time.Second, func() bool { return f.w.Counts()[AlreadyQueued] == 50 }, "50 files seen again")
	info, err := insp.GetQueueInfo(opts.Queue)
	if err != nil || info.Pending != 50 {
		t.Fatalf("queue: %+v, %v; want 50 pending tasks", info, err)
	}
	tasks, _ := insp.ListPendingTasks(opts.Queue, asynq.PageSize(100))
	for _, ti := range tasks {
		p, err := worker.ParsePayload(ti.Payload)
		if err != nil || ti.ID != worker.TaskID(p.SHA256) {
			t.Errorf("task %s: payload %+v, %v; want the ID derived from its sha256", ti.ID, p, err)
		}
	}
}
