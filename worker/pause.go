package worker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/auth"
)

// QueueControl pauses and resumes an asynq queue for every process that
// shares it; *asynq.Inspector satisfies it.
type QueueControl interface {
	PauseQueue(queue string) error
	UnpauseQueue(queue string) error
}

// Pause handles account-level trouble (402 quota, 403 scope, rejected
// credentials): no file fails; the queue pauses for every process sharing it,
// readiness reports why, and after a wait the queue resumes so that the next
// upload probes whether the trouble is over. A probe that trips again doubles
// the wait, from Min up to Max. With rejected credentials there is nothing to
// probe until the credentials are reset (SIGHUP or a new login), so the queue
// stays paused until the source is no longer rejected.
type Pause struct {
	Queue   string
	Control QueueControl
	Source  auth.Source
	Min     time.Duration // first wait; default 1m
	Max     time.Duration // longest wait; default 30m
	Logger  zerolog.Logger
	Metrics *Metrics
	// Redis, when set, records the pause under "natif-uploader:paused:<queue>"
	// so that `status` and `enqueue --wait` in other processes see it.
	Redis redis.UniversalClient

	mu     sync.Mutex
	paused bool
	reason string
	wait   time.Duration
	until  time.Time
	// looked is when adopt last read the recorded pause.
	looked time.Time
}

// adoptEvery is how often a process that is not paused itself looks for a
// pause recorded by another process.
const adoptEvery = 5 * time.Second

// Trip pauses the queue for reason (what to fix).
func (p *Pause) Trip(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	minWait, maxWait := p.bounds()
	switch {
	case p.paused:
		return // already paused: the in-flight uploads that hit the same wall
	case p.wait == 0:
		p.wait = minWait
	default:
		p.wait = min(2*p.wait, maxWait)
	}
	p.paused, p.reason, p.until = true, reason, time.Now().Add(p.wait)
	if err := p.Control.PauseQueue(p.Queue); err != nil && !strings.Contains(err.Error(), "already paused") {
		p.Logger.Error().Err(err).Msg("cannot pause the queue")
	}
	credentials := p.Source != nil && p.Source.Status().State == auth.StateRejected
	p.record(&PauseInfo{Reason: reason, Credentials: credentials, At: time.Now().UTC(), ProbeAt: p.until.UTC()})
	if p.Metrics != nil {
		p.Metrics.Pauses.Inc()
	}
	p.Logger.Error().Str("reason", reason).Time("probe_at", p.until).Msg("natif account problem: uploads paused, no file fails; " + reason)
}

// Succeeded resets the back-off after an upload went through.
func (p *Pause) Succeeded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.wait = 0
	}
}

// ProbeNow ends the current wait: the next check resumes the queue (unless
// the credentials are still rejected), so that an operator's fix, delivered
// by SIGHUP, is tried at once instead of at the next probe time. The back-off
// is kept: a probe that trips again waits longer, as before.
func (p *Pause) ProbeNow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.until = time.Now()
	}
}

// Paused reports whether uploads are paused and why.
func (p *Pause) Paused() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused, p.reason
}

func (p *Pause) bounds() (time.Duration, time.Duration) {
	minWait, maxWait := p.Min, p.Max
	if minWait <= 0 {
		minWait = time.Minute
	}
	if maxWait < minWait {
		maxWait = max(minWait, 30*time.Minute)
	}
	return minWait, maxWait
}

// Run resumes the queue when a pause is over, until ctx ends. A pause that
// another process recorded (it may have crashed or stopped since, leaving
// the queue paused in Redis for good) is adopted: this process resumes the
// queue when that pause's probe time comes, as if it had paused it itself.
func (p *Pause) Run(ctx context.Context) {
	p.mu.Lock()
	p.adopt()
	p.mu.Unlock()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.check()
		}
	}
}

func (p *Pause) check() {
	if p.resumeIfDue() {
		p.releaseHeld()
	}
}

// heldPrefix starts the error of every task that met account trouble: asynq
// keeps it as the task's last error, so that a resume can find the tasks
// held back for the account, and only those, in the retry set.
const heldPrefix = "held while the natif account is paused: "

// TaskRunner finds and runs retry tasks at once; *asynq.Inspector satisfies
// it. A Control that is one too lets a resume release the tasks that met
// the account trouble (each waits a minute in the retry set) instead of
// leaving them to their retry time.
type TaskRunner interface {
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	RunTask(queue, id string) error
}

// releaseHeld runs now the retry tasks of the queue that met account trouble.
// There are few: while the queue is paused only the uploads in flight when
// the trouble started can meet it; the rest wait as pending tasks.
func (p *Pause) releaseHeld() {
	r, ok := p.Control.(TaskRunner)
	if !ok {
		return
	}
	released := 0
	for page := 1; page <= 100; page++ {
		tasks, err := r.ListRetryTasks(p.Queue, asynq.PageSize(100), asynq.Page(page))
		if err != nil {
			p.Logger.Warn().Err(err).Msg("cannot list the held uploads; they run at their retry time")
			return
		}
		for _, t := range tasks {
			if strings.HasPrefix(t.LastErr, heldPrefix) && r.RunTask(p.Queue, t.ID) == nil {
				released++
			}
		}
		if len(tasks) < 100 {
			break
		}
	}
	if released > 0 {
		p.Logger.Info().Int("tasks", released).Msg("uploads held for the account problem run now")
	}
}

// resumeIfDue resumes the queue when the wait is over and reports whether it did.
func (p *Pause) resumeIfDue() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused && time.Since(p.looked) >= adoptEvery {
		p.adopt()
	}
	if !p.paused || time.Now().Before(p.until) {
		return false
	}
	if p.Source != nil && p.Source.Status().State == auth.StateRejected {
		p.until = time.Now().Add(p.wait)
		return false
	}
	if err := p.Control.UnpauseQueue(p.Queue); err != nil && !strings.Contains(err.Error(), "not paused") {
		p.Logger.Error().Err(err).Msg("cannot resume the queue; trying again")
		p.until = time.Now().Add(p.wait)
		return false
	}
	p.paused = false
	p.record(nil)
	p.Logger.Info().Str("reason", p.reason).Msg("uploads resumed: the next upload probes natif")
	return true
}

// adopt takes over a pause recorded by another process. The caller holds mu.
// A queue paused with no record (an operator's asynq CLI) is left alone.
func (p *Pause) adopt() {
	p.looked = time.Now()
	if p.Redis == nil || p.paused {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := ReadPause(ctx, p.Redis, p.Queue)
	if err != nil || info == nil {
		return
	}
	minWait, _ := p.bounds()
	p.paused, p.reason, p.until = true, info.Reason, info.ProbeAt
	p.wait = max(minWait, info.ProbeAt.Sub(info.At))
	p.Logger.Warn().Str("reason", info.Reason).Time("probe_at", info.ProbeAt).
		Msg("the queue was paused by a natif-uploader process for an account problem; this process resumes it at the probe time unless that process does first")
}

// PauseInfo is the pause as other processes see it.
type PauseInfo struct {
	Reason string `json:"reason"`
	// Credentials is true when natif rejected the credentials: waiting does
	// not help, an operator must fix them.
	Credentials bool      `json:"credentials_rejected"`
	At          time.Time `json:"at"`
	ProbeAt     time.Time `json:"probe_at"`
}

func pauseKey(queue string) string { return "natif-uploader:paused:" + queue }

// record writes the pause to Redis (nil clears it). Errors are logged only:
// the queue's own pause flag is what stops the workers.
func (p *Pause) record(info *PauseInfo) {
	if p.Redis == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if info == nil {
		err = p.Redis.Del(ctx, pauseKey(p.Queue)).Err()
	} else {
		b, _ := json.Marshal(info)
		err = p.Redis.Set(ctx, pauseKey(p.Queue), b, 0).Err()
	}
	if err != nil {
		p.Logger.Warn().Err(err).Msg("cannot record the pause for other processes")
	}
}

// ReadPause returns the pause recorded for queue, or nil.
func ReadPause(ctx context.Context, c redis.UniversalClient, queue string) (*PauseInfo, error) {
	b, err := c.Get(ctx, pauseKey(queue)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var info PauseInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	return &info, nil
}
