package worker

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/fakeapi"
)

func TestRetryDelay(t *testing.T) {
	task := asynq.NewTask(TaskType, nil)
	prev := time.Duration(0)
	for n := range 13 {
		d := RetryDelay(n, errors.New("503"), task)
		base := min(30*time.Second<<n, 15*time.Minute)
		if d < base*3/4 || d > base*5/4 {
			t.Errorf("retry %d: %v, want %v ±25%%", n, d, base)
		}
		if n < 5 && d < prev/2 {
			t.Errorf("retry %d: %v shorter than half the previous %v", n, d, prev)
		}
		prev = d
	}
	if d := RetryDelay(3, &nonFailure{err: errors.New("429"), after: 7 * time.Second}, task); d != 7*time.Second {
		t.Errorf("rate-limited retry waits %v, want the 7s natif asked for", d)
	}
	if d := RetryDelay(4, asynq.ErrLeaseExpired, task); d != LeaseExpiredRetry {
		t.Errorf("a task whose lease expired waits %v, want %v: its worker is gone, not natif in trouble", d, LeaseExpiredRetry)
	}
	if !IsFailure(asynq.ErrLeaseExpired) {
		t.Errorf("a lease expiry must spend a retry, or a file that kills its worker would loop forever")
	}
	if IsFailure(&nonFailure{err: errors.New("429")}) || !IsFailure(errors.New("503")) || IsFailure(nil) {
		t.Errorf("IsFailure: rate limits and pauses must not count, errors must")
	}
}

func TestNewTaskIDAndOptions(t *testing.T) {
	p := Payload{Path: "/in/a.pdf", Root: "/in", Rel: "a.pdf", Size: 3, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	opts := DefaultTaskOptions()
	task, err := NewTask(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TaskType {
		t.Errorf("type = %q", task.Type())
	}
	back, err := ParsePayload(task.Payload())
	if err != nil || back.SHA256 != p.SHA256 || back.EnqueuedAt.IsZero() {
		t.Errorf("payload round trip: %+v, %v", back, err)
	}
	if _, err := NewTask(Payload{Path: "relative.pdf"}, opts); !errors.Is(err, ErrBadPayload) {
		t.Errorf("NewTask of a bad payload = %v, want ErrBadPayload", err)
	}
}

// fakeControl records pauses and resumes.
type fakeControl struct {
	mu              sync.Mutex
	pauses, resumes int
	paused          bool
}

func (c *fakeControl) PauseQueue(string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pauses++
	c.paused = true
	return nil
}

func (c *fakeControl) UnpauseQueue(string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resumes++
	c.paused = false
	return nil
}

func (c *fakeControl) state() (int, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pauses, c.resumes, c.paused
}

type stateSource struct {
	auth.Source
	mu    sync.Mutex
	state auth.State
}

func (s *stateSource) Status() auth.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return auth.Status{State: s.state}
}

func TestPauseResumesAfterWaitAndBacksOff(t *testing.T) {
	ctl := &fakeControl{}
	src := &stateSource{state: auth.StateValid}
	p := &Pause{Queue: "natif", Control: ctl, Source: src, Min: 100 * time.Millisecond, Max: 400 * time.Millisecond, Logger: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)

	p.Trip("quota")
	p.Trip("quota") // a second in-flight upload hitting the same wall
	if paused, reason := p.Paused(); !paused || reason != "quota" {
		t.Fatalf("Paused = %v %q, want paused for quota", paused, reason)
	}
	waitUntil(t, func() bool { _, r, paused := ctl.state(); return r == 1 && !paused })
	if pauses, _, _ := ctl.state(); pauses != 1 {
		t.Errorf("queue paused %d times for one trip, want 1", pauses)
	}
	// The probe trips again: the wait doubles.
	start := time.Now()
	p.Trip("quota")
	waitUntil(t, func() bool { _, r, _ := ctl.state(); return r == 2 })
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Errorf("second pause lasted %v, want about 200ms (doubled)", d)
	}
	// Rejected credentials: no probe until the source is reset.
	src.mu.Lock()
	src.state = auth.StateRejected
	src.mu.Unlock()
	p.Trip("credentials rejected")
	time.Sleep(900 * time.Millisecond)
	if _, r, paused := ctl.state(); r != 2 || !paused {
		t.Errorf("resumed while the credentials are rejected (resumes %d, paused %v)", r, paused)
	}
	src.mu.Lock()
	src.state = auth.StateValid
	src.mu.Unlock()
	waitUntil(t, func() bool { _, r, _ := ctl.state(); return r == 3 })
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The whole path through asynq: tasks enqueued with NewTask, served by an
// asynq server with the handler, the same content refused a second time.
func roundTrip(t *testing.T, redisOpt asynq.RedisConnOpt, ledger Ledger) {
	e := newEnv(t, fakeapi.Options{}, func(o *Options, _ *Uploader) { o.Ledger = ledger })
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	opts := DefaultTaskOptions()
	opts.Queue = "natif-test"
	srv := asynq.NewServer(redisOpt, ServerConfig(opts.Queue, 4, 5*time.Second, zerolog.Nop()))
	mux := asynq.NewServeMux()
	mux.Handle(TaskType, e.handler)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	var payloads []Payload
	for i := range 10 {
		payloads = append(payloads, e.drop(filepath.Join("batch", string(rune('a'+i))+".pdf"), pdf(1, string(rune('a'+i)))))
	}
	for _, p := range payloads {
		task, err := NewTask(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
		if _, err := client.Enqueue(task); !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Errorf("second enqueue of the same content = %v, want ErrTaskIDConflict", err)
		}
	}
	waitUntil(t, func() bool {
		for _, p := range payloads {
			if !exists(filepath.Join(e.done, p.Rel) + DoneSuffix) {
				return false
			}
		}
		return true
	})
	if n := e.sim.Stats().Uploads; n != 10 {
		t.Errorf("documents stored = %d, want 10", n)
	}
	for _, p := range payloads {
		if rec, err := ledger.Get(context.Background(), p.SHA256); err != nil || rec == nil {
			t.Errorf("ledger has no record of %s: %v", p.Rel, err)
		}
	}
}

// A pause recorded by a process that is gone (crashed, or stopped while
// paused) is adopted by another: the queue is resumed at the probe time and
// the record cleared, instead of staying paused in Redis for good.
func TestPauseOfAGoneProcessIsAdopted(t *testing.T) {
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rc.Close()
	ctl := &fakeControl{}
	gone := &Pause{Queue: "natif", Control: ctl, Min: 400 * time.Millisecond, Logger: zerolog.Nop(), Redis: rc}
	gone.Trip("natif answered 402: quota exhausted") // and the process dies: its Run never resumes
	if info, err := ReadPause(context.Background(), rc, "natif"); err != nil || info == nil {
		t.Fatalf("recorded pause = %v, %v; want one", info, err)
	}

	other := &Pause{Queue: "natif", Control: ctl, Min: time.Minute, Logger: zerolog.Nop(), Redis: rc}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	go other.Run(ctx)
	waitUntil(t, func() bool { paused, _ := other.Paused(); return paused })
	if _, reason := other.Paused(); reason != "natif answered 402: quota exhausted" {
		t.Errorf("adopted reason %q, want the recorded one", reason)
	}
	waitUntil(t, func() bool { _, r, paused := ctl.state(); return r == 1 && !paused })
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("resumed after %v, before the recorded probe time (about 400ms)", d)
	}
	waitUntil(t, func() bool {
		info, err := ReadPause(context.Background(), rc, "natif")
		return err == nil && info == nil
	})
	if paused, _ := other.Paused(); paused {
		t.Errorf("still paused after resuming")
	}
}

// A queue paused without a record (an operator's asynq CLI) is left alone.
func TestPauseWithoutRecordIsLeftAlone(t *testing.T) {
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rc.Close()
	ctl := &fakeControl{paused: true}
	p := &Pause{Queue: "natif", Control: ctl, Min: 50 * time.Millisecond, Logger: zerolog.Nop(), Redis: rc}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	time.Sleep(500 * time.Millisecond)
	if _, r, paused := ctl.state(); r != 0 || !paused {
		t.Errorf("resumes %d, paused %v; want the operator's pause kept", r, paused)
	}
}

// ProbeNow (an operator's SIGHUP) ends the wait: the queue resumes at the
// next check, not at the probe time a minute away.
func TestPauseProbeNow(t *testing.T) {
	ctl := &fakeControl{}
	src := &stateSource{state: auth.StateValid}
	p := &Pause{Queue: "natif", Control: ctl, Source: src, Min: time.Hour, Logger: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	p.Trip("quota")
	time.Sleep(300 * time.Millisecond)
	if _, r, paused := ctl.state(); r != 0 || !paused {
		t.Fatalf("resumes %d, paused %v before ProbeNow; want still paused (an hour's wait)", r, paused)
	}
	start := time.Now()
	p.ProbeNow()
	waitUntil(t, func() bool { _, r, paused := ctl.state(); return r == 1 && !paused })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("resumed %v after ProbeNow; want at the next check", d)
	}
}
