package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// ErrQueuedElsewhere is returned (it wraps asynq.ErrTaskIDConflict) when the
// same content is queued from another file: that file is a duplicate, to be
// moved to done once the first upload is recorded.
var ErrQueuedElsewhere = fmt.Errorf("the same content is queued from another file: %w", asynq.ErrTaskIDConflict)

// Enqueuer puts upload tasks on the asynq queue. A second enqueue of content
// that is queued, running, or uploaded returns asynq.ErrTaskIDConflict, which
// callers treat as "already queued".
type Enqueuer struct {
	Client  *asynq.Client
	Options TaskOptions
	// Inspector and Ledger, when set, free a task ID that no longer stands
	// for work: an archived task (its file failed and was put back in an
	// inbox) or a completed one whose content was never uploaded (its file
	// vanished or changed before the upload). Without them such content
	// waits for the task's retention to end.
	Inspector *asynq.Inspector
	Ledger    Ledger
}

// Enqueue queues the upload of p.
func (e *Enqueuer) Enqueue(ctx context.Context, p Payload) error {
	task, err := NewTask(p, e.Options)
	if err != nil {
		return err
	}
	_, err = e.Client.EnqueueContext(ctx, task)
	if !errors.Is(err, asynq.ErrTaskIDConflict) || e.Inspector == nil {
		return err
	}
	id := TaskID(p.SHA256)
	info, ierr := e.Inspector.GetTaskInfo(e.Options.Queue, id)
	if ierr != nil {
		return err
	}
	switch info.State {
	case asynq.TaskStateArchived:
	case asynq.TaskStateCompleted:
		if e.Ledger == nil {
			return err
		}
		rec, lerr := e.Ledger.Get(ctx, p.SHA256)
		if lerr != nil || rec != nil {
			return err // uploaded: a duplicate, for the ledger check to move
		}
	default: // pending, active, scheduled or retrying: queued already
		if q, perr := ParsePayload(info.Payload); perr == nil && q.Path != p.Path {
			return ErrQueuedElsewhere
		}
		return err
	}
	if derr := e.Inspector.DeleteTask(e.Options.Queue, id); derr != nil {
		return err
	}
	_, err = e.Client.EnqueueContext(ctx, task)
	return err
}
