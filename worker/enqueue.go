package worker

import (
	"context"

	"github.com/hibiken/asynq"
)

// Enqueuer puts upload tasks on the asynq queue. A second enqueue of content
// that is queued, running or retained returns asynq.ErrTaskIDConflict, which
// callers treat as "already queued".
type Enqueuer struct {
	Client  *asynq.Client
	Options TaskOptions
}

// Enqueue queues the upload of p.
func (e *Enqueuer) Enqueue(ctx context.Context, p Payload) error {
	task, err := NewTask(p, e.Options)
	if err != nil {
		return err
	}
	_, err = e.Client.EnqueueContext(ctx, task)
	return err
}
