package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/natif-uploader/natif-uploader/logging"
	"github.com/natif-uploader/natif-uploader/natif"
)

// Options configure a Handler.
type Options struct {
	Roots     Roots
	DoneDir   string
	FailedDir string
	// MaxFileSize: larger files fail without an upload.
	MaxFileSize int64
	Uploader    *Uploader
	Ledger      Ledger
	// Requeue enqueues a file whose content changed since its task was made,
	// under its new identity. An asynq.ErrTaskIDConflict is fine.
	Requeue func(ctx context.Context, p Payload) error
	// Pauser pauses the queue on account-level trouble; nil: none.
	Pauser interface{ Trip(reason string) }
	// OnSuccess is told about each successful upload (the pause resets its back-off).
	OnSuccess func()
	// RateLimit caps uploads per second in this process; 0: none.
	RateLimit float64
	// InAttempt bounds the quick retries within one attempt (default 2m, and
	// never past the task's deadline).
	InAttempt time.Duration
	// RateLimitCap is how many 429s in a row one file may collect before it
	// fails: natif answers 429 forever for a document over the page limit
	// (default 20).
	RateLimitCap int
	// FetchResults waits for natif's processing and saves the extractions.
	FetchResults bool
	Metrics      *Metrics
	Logger       zerolog.Logger
}

// Handler uploads one queued file: asynq.Handler for TaskType.
type Handler struct {
	o       Options
	limiter *rate.Limiter
	log     zerolog.Logger

	mu      sync.Mutex
	limited map[string]int // 429s in a row, by content; removed when the file ends
}

// NewHandler returns a Handler.
func NewHandler(o Options) *Handler {
	if o.InAttempt <= 0 {
		o.InAttempt = 2 * time.Minute
	}
	if o.RateLimitCap <= 0 {
		o.RateLimitCap = 20
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	h := &Handler{o: o, log: o.Logger, limited: map[string]int{}}
	if o.RateLimit > 0 {
		h.limiter = rate.NewLimiter(rate.Limit(o.RateLimit), 1)
	}
	return h
}

// nonFailure marks an error that retries the task later without spending one
// of its retries (IsFailure reports false): rate limits and account pauses.
type nonFailure struct {
	err   error
	after time.Duration // when known, how long to wait
}

func (e *nonFailure) Error() string { return e.err.Error() }
func (e *nonFailure) Unwrap() error { return e.err }

// IsFailure is asynq's Config.IsFailure: rate limits and account pauses do
// not count as failed attempts.
func IsFailure(err error) bool {
	var nf *nonFailure
	return err != nil && !errors.As(err, &nf)
}

// LedgerRetry bounds the retries of the ledger record after an upload.
var LedgerRetry = 30 * time.Second

// LeaseExpiredRetry is the wait of a task whose lease expired: the process
// that held it was killed, or lost Redis while it took the task (a Redis
// restart between the dequeue and its answer). Nothing is wrong with natif,
// so there is no reason to back off; whether the upload happened is for the
// ledger to say. asynq finds such tasks only after the lease (30 s) and its
// recoverer's next run (up to a minute); the exponential delay after that
// doubled the wait (measured: 163 s for the last file of a Redis restart).
const LeaseExpiredRetry = 5 * time.Second

// RetryDelay is asynq's Config.RetryDelayFunc: 5 s after a lease expiry,
// the wait a rate limit asked for, else exponential from 30 s, doubling, capped at 15 minutes, with ±25 %
// jitter (12 retries span about two and a half hours).
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, asynq.ErrLeaseExpired) {
		return LeaseExpiredRetry
	}
	var nf *nonFailure
	if errors.As(err, &nf) {
		if nf.after > 0 {
			return nf.after
		}
		return 30 * time.Second
	}
	d := 30 * time.Second << min(n, 10)
	d = min(d, 15*time.Minute)
	b := backoff.ExponentialBackOff{InitialInterval: d, RandomizationFactor: 0.25, Multiplier: 1, MaxInterval: d, Clock: backoff.SystemClock}
	b.Reset()
	return b.NextBackOff()
}

// fileError is a reason for the failed folder.
type fileError struct {
	status int // natif's HTTP status, 0 for a local reason
	reason string
}

func (e *fileError) Error() string { return e.reason }

// attemptInfo is what asynq tells a handler about the attempt.
type attemptInfo struct {
	taskID            string
	retried, maxRetry int
}

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	a := attemptInfo{maxRetry: 1} // outside asynq: the first attempt is the last
	a.taskID, _ = asynq.GetTaskID(ctx)
	if n, ok := asynq.GetRetryCount(ctx); ok {
		a.retried = n
	}
	if n, ok := asynq.GetMaxRetry(ctx); ok {
		a.maxRetry = n
	}
	return h.handle(ctx, t, a)
}

func (h *Handler) handle(ctx context.Context, t *asynq.Task, a attemptInfo) error {
	taskID, attempt := a.taskID, a.retried+1
	// One retry of asynq's count is kept spare (see NewTask): the last
	// failure this handler allows moves the file to failed itself, so a
	// rate limit or pause on the last attempt never archives the task.
	final := a.retried >= a.maxRetry-1
	// The spare attempt itself runs only when the last allowed one ended
	// in a way asynq counted without the handler's say (a timeout, a
	// crash): any error now would archive the task with its file still in
	// the inbox, so the file fails at once, before any upload.
	spare := a.retried >= a.maxRetry

	p, err := ParsePayload(t.Payload())
	if err != nil {
		h.o.Metrics.Files.WithLabelValues("rejected").Inc()
		h.log.Error().Err(err).Str(logging.FieldTaskID, taskID).Msg("task refused: its payload names no file safely")
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	log := h.log.With().Str(logging.FieldFile, p.Path).Str(logging.FieldSHA256, p.SHA256).
		Str(logging.FieldTaskID, taskID).Int(logging.FieldAttempt, attempt).Logger()

	o, err := h.o.Roots.Open(p)
	var fe *fileError
	switch {
	case errors.Is(err, ErrOutsideRoots), errors.Is(err, ErrBadPayload):
		h.o.Metrics.Files.WithLabelValues("rejected").Inc()
		log.Error().Err(err).Msg("task refused: the file was not read")
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	case errors.Is(err, ErrRootUnavailable):
		log.Warn().Err(err).Msg("the file's inbox is unavailable here (an unmounted share?): the upload waits a minute, without spending an attempt")
		return &nonFailure{err: err, after: time.Minute}
	case errors.Is(err, fs.ErrNotExist):
		h.o.Metrics.Files.WithLabelValues("vanished").Inc()
		log.Warn().Msg("file vanished before its upload; task dropped")
		h.forget(p.SHA256)
		return nil
	case errors.As(err, &fe):
		// Unreadable: it fails without being read, moved by its path.
		return h.failPath(log, p, fe, attempt)
	case err != nil:
		return fmt.Errorf("open %s: %w", p.Path, err)
	}
	defer o.Close()

	s, ferr := h.check(p, o)
	if ferr != nil {
		var changed *changedError
		if errors.As(ferr, &changed) {
			return h.requeue(ctx, log, p, o)
		}
		if errors.As(ferr, &fe) {
			return h.fail(log, p, o, fe, attempt)
		}
		return ferr
	}

	// Content already uploaded: a redelivery after a crash, or a second
	// copy. Only a file that still holds that content is moved to done.
	rec, err := h.o.Ledger.Get(ctx, p.SHA256)
	if err != nil {
		return fmt.Errorf("completion ledger: %w", err)
	}
	if rec != nil {
		sum, err := hashFile(o.f)
		if err != nil {
			return fmt.Errorf("hash %s: %w", p.Path, err)
		}
		if sum != p.SHA256 {
			return h.requeue(ctx, log, p, o)
		}
		return h.finishDuplicate(log, p, o, rec)
	}
	// Only now, after the ledger: the attempt that timed out or crashed may
	// have uploaded the file, which then goes to done, not to failed.
	if spare {
		return h.fail(log, p, o, &fileError{reason: fmt.Sprintf("retries exhausted: the last of %d attempts ended without an answer (timeout or restart)", a.maxRetry)}, attempt)
	}

	if h.limiter != nil {
		if err := h.limiter.Wait(ctx); err != nil {
			return &nonFailure{err: fmt.Errorf("client-side rate limit: %w", err)}
		}
	}
	return h.upload(ctx, log, p, o, s, attempt, final)
}

// hashFile is the SHA-256 of the whole file, read through its descriptor.
func hashFile(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// changedError: the file on disk is not the content the task names.
type changedError struct{ why string }

func (e *changedError) Error() string { return "file changed since it was queued: " + e.why }

// check compares the file with its task and decides whether it can be sent:
// size, emptiness, size limit and type by magic bytes. It reads 8 bytes.
func (h *Handler) check(p Payload, o *opened) (sendable, error) {
	fi := o.info
	if fi.Size() != p.Size {
		return sendable{}, &changedError{why: fmt.Sprintf("size %d, queued as %d", fi.Size(), p.Size)}
	}
	if fi.Size() == 0 {
		return sendable{}, &fileError{reason: "empty file"}
	}
	if h.o.MaxFileSize > 0 && fi.Size() > h.o.MaxFileSize {
		return sendable{}, &fileError{reason: fmt.Sprintf("file of %d bytes is larger than NATIF_MAX_FILE_SIZE (%d bytes)", fi.Size(), h.o.MaxFileSize)}
	}
	head := make([]byte, SniffLen)
	n, _ := o.f.ReadAt(head, 0)
	ctype, ok := Sniff(head[:n])
	if !ok {
		return sendable{}, &fileError{reason: "unsupported file type (natif takes PDF, JPEG, PNG, GIF and TIFF, recognised by content, not by name)"}
	}
	return sendable{file: o.f, name: filepath.Base(p.Path), contentType: ctype, size: fi.Size(), sha256: p.SHA256}, nil
}

// upload sends the file, retrying quickly within the attempt, and ends the
// file in done or failed, or hands the task back to asynq.
func (h *Handler) upload(ctx context.Context, log zerolog.Logger, p Payload, o *opened, s sendable, attempt int, final bool) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = min(time.Second, h.o.InAttempt/4)
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = h.o.InAttempt
	bo.Reset()
	for tries := 1; ; tries++ {
		start := time.Now()
		res, err := h.o.Uploader.Upload(ctx, s)
		if err == nil || errors.Is(err, errPollFailed) {
			if err != nil {
				log.Warn().Err(err).Msg("uploaded; the processing result could not be fetched")
			}
			took := time.Since(start)
			h.o.Metrics.Duration.Observe(took.Seconds())
			h.o.Metrics.Bytes.Add(float64(s.size))
			log := log.With().Int(logging.FieldStatus, res.status).Int64(logging.FieldDuration, took.Milliseconds()).Logger()
			return h.succeed(ctx, log, p, o, res, attempt)
		}
		if errors.Is(err, errFileChanged) {
			return h.requeue(ctx, log, p, o)
		}
		class, status, wait := Transient, 0, time.Duration(0)
		var apiErr *natif.APIError
		if errors.As(err, &apiErr) {
			class, status, wait = ClassifyStatus(apiErr.Status), apiErr.Status, apiErr.RetryAfter
		} else if ctx.Err() != nil {
			return fmt.Errorf("upload attempt ended: %w", ctx.Err())
		} else {
			class = ClassifyError(err)
		}
		log := log.With().Int(logging.FieldStatus, status).Str("class", class.String()).Logger()
		switch class {
		case Permanent:
			return h.fail(log, p, o, &fileError{status: status, reason: err.Error()}, attempt)
		case Account:
			h.o.Metrics.Retries.WithLabelValues("account").Inc()
			if h.o.Pauser != nil {
				reason := err.Error()
				if hint := AccountHint(status); hint != "" {
					reason = hint + " (" + reason + ")"
				}
				h.o.Pauser.Trip(reason)
			}
			return &nonFailure{err: fmt.Errorf("%s%w", heldPrefix, err), after: time.Minute}
		case RateLimited:
			h.o.Metrics.Retries.WithLabelValues("rate-limited").Inc()
			if n := h.note429(p.SHA256); n >= h.o.RateLimitCap {
				return h.fail(log, p, o, &fileError{status: status, reason: fmt.Sprintf(
					"natif answered 429 %d times in a row for this file; a document over the plan's page limit is refused this way every time: %v", n, err)}, attempt)
			}
			next := bo.NextBackOff()
			wait = max(wait, next)
			if next == backoff.Stop || !fits(ctx, wait) {
				log.Warn().Err(err).Dur("retry_in", wait).Msg("rate limited; the task waits without spending a retry")
				return &nonFailure{err: err, after: wait}
			}
		case Transient:
			h.o.Metrics.Retries.WithLabelValues("transient").Inc()
			next := bo.NextBackOff()
			wait = max(wait, next)
			if next == backoff.Stop || !fits(ctx, wait) {
				if final {
					return h.fail(log, p, o, &fileError{status: status, reason: fmt.Sprintf("retries exhausted after %d attempts: %v", attempt, err)}, attempt)
				}
				log.Warn().Err(err).Msg("upload failed; retrying later")
				return err
			}
		}
		log.Info().Err(err).Dur("retry_in", wait).Int("try", tries).Msg("upload failed; retrying")
		select {
		case <-ctx.Done():
			return fmt.Errorf("upload attempt ended: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// fits reports whether waiting d leaves time before ctx's deadline.
func fits(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > d+5*time.Second
}

func (h *Handler) note429(sha string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.limited[sha]++
	return h.limited[sha]
}

func (h *Handler) forget(sha string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.limited, sha)
}

// doneSidecar is <file>.natif.json (SPEC section 4).
type doneSidecar struct {
	File        string          `json:"file"`
	Source      string          `json:"source"`
	SHA256      string          `json:"sha256"`
	Size        int64           `json:"size"`
	DocumentID  string          `json:"document_id"`
	Endpoint    string          `json:"endpoint"`
	Attempts    int             `json:"attempts"`
	UploadedAt  time.Time       `json:"uploaded_at"`
	Response    json.RawMessage `json:"response"`
	DuplicateOf string          `json:"duplicate_of,omitempty"`
}

// succeed records the upload in the ledger, then archives the file in done.
func (h *Handler) succeed(ctx context.Context, log zerolog.Logger, p Payload, o *opened, res *result, attempt int) error {
	h.forget(p.SHA256)
	if h.o.OnSuccess != nil {
		h.o.OnSuccess()
	}
	rec := Record{SHA256: p.SHA256, DocumentID: res.documentID, Endpoint: h.o.Uploader.Endpoint, Source: p.Path,
		Size: p.Size, Attempts: attempt, UploadedAt: time.Now().UTC()}
	// The ledger first: if the move below fails, a redelivered task finds
	// the record and moves the file without uploading it again.
	// Its own context: a deadline reached during the upload must not cost
	// the record. Retried for up to LedgerRetry (a Redis restart takes
	// seconds); without it, the same content could be uploaded again once
	// the task ID's retention ends.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LedgerRetry)
	defer cancel()
	lbo := &backoff.ExponentialBackOff{InitialInterval: 200 * time.Millisecond, RandomizationFactor: 0.25, Multiplier: 2,
		MaxInterval: 5 * time.Second, MaxElapsedTime: LedgerRetry, Clock: backoff.SystemClock}
	lbo.Reset()
	tries := 0
	if err := backoff.Retry(func() error { tries++; return h.o.Ledger.Put(lctx, rec) }, backoff.WithContext(lbo, lctx)); err != nil {
		log.Error().Err(err).Int("tries", tries).Msg("uploaded, but the completion ledger could not record it; moving the file anyway")
	}
	final, err := archive(o, h.o.DoneDir, p.Rel, DoneSuffix, p.SHA256, func(final string) ([]byte, error) {
		return json.MarshalIndent(doneSidecar{File: final, Source: p.Path, SHA256: p.SHA256, Size: p.Size,
			DocumentID: res.documentID, Endpoint: rec.Endpoint, Attempts: attempt, UploadedAt: rec.UploadedAt,
			Response: res.response}, "", "  ")
	})
	if err != nil {
		log.Error().Err(err).Msg("uploaded, but the file could not be moved to the done folder; the task retries the move, not the upload")
		return fmt.Errorf("move to done: %w", err)
	}
	h.o.Metrics.Files.WithLabelValues("uploaded").Inc()
	log.Info().Str("document_id", res.documentID).Str("done", final).Msg("uploaded")
	if h.o.FetchResults && res.documentID != "" && !h.o.Uploader.Processing {
		h.fetchExtractions(ctx, log, res.documentID, final)
	}
	return nil
}

// finishDuplicate archives a file whose content the ledger has: without an
// upload, with "duplicate_of" when it is another file than the one uploaded.
func (h *Handler) finishDuplicate(log zerolog.Logger, p Payload, o *opened, rec *Record) error {
	h.forget(p.SHA256)
	dup := ""
	if rec.Source != p.Path {
		dup = rec.DocumentID
	}
	final, err := archiveDone(o, h.o.DoneDir, p, rec)
	if err != nil {
		return fmt.Errorf("move to done: %w", err)
	}
	if dup != "" {
		h.o.Metrics.Files.WithLabelValues("duplicate").Inc()
		log.Info().Str("duplicate_of", dup).Str("done", final).Msg("content already uploaded: moved to done without an upload")
	} else {
		h.o.Metrics.Files.WithLabelValues("uploaded").Inc()
		log.Info().Str("document_id", rec.DocumentID).Str("done", final).Msg("already uploaded before a restart: moved to done")
	}
	return nil
}

// failedSidecar is <file>.error.json (SPEC section 4).
type failedSidecar struct {
	File     string    `json:"file"`
	Source   string    `json:"source"`
	SHA256   string    `json:"sha256"`
	Status   int       `json:"status"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	FailedAt time.Time `json:"failed_at"`
}

// ArchiveFailed moves the file at path (named by p) to failedDir at p.Rel,
// with <file>.error.json giving status (0 for a local reason) and reason. The
// watcher uses it for files that fail before they are queued.
func ArchiveFailed(path, failedDir string, p Payload, status int, reason string, attempts int) (string, error) {
	return archiveFailed(pathSource(path), failedDir, p, status, reason, attempts)
}

func archiveFailed(src source, failedDir string, p Payload, status int, reason string, attempts int) (string, error) {
	now := time.Now().UTC()
	return archive(src, failedDir, p.Rel, FailedSuffix, p.SHA256, func(final string) ([]byte, error) {
		return json.MarshalIndent(failedSidecar{File: final, Source: p.Path, SHA256: p.SHA256, Status: status,
			Error: reason, Attempts: attempts, FailedAt: now}, "", "  ")
	})
}

// ArchiveDone moves the file at path (named by p), whose content the ledger
// records as rec, to doneDir without an upload: with "duplicate_of" when rec
// was uploaded from another path.
func ArchiveDone(path, doneDir string, p Payload, rec *Record) (string, error) {
	return archiveDone(pathSource(path), doneDir, p, rec)
}

func archiveDone(src source, doneDir string, p Payload, rec *Record) (string, error) {
	dup := ""
	if rec.Source != p.Path {
		dup = rec.DocumentID
	}
	return archive(src, doneDir, p.Rel, DoneSuffix, p.SHA256, func(final string) ([]byte, error) {
		return json.MarshalIndent(doneSidecar{File: final, Source: p.Path, SHA256: p.SHA256, Size: p.Size,
			DocumentID: rec.DocumentID, Endpoint: rec.Endpoint, Attempts: rec.Attempts, UploadedAt: rec.UploadedAt,
			Response: json.RawMessage(`null`), DuplicateOf: dup}, "", "  ")
	})
}

// fail moves the file to the failed folder with its reason and ends the task.
func (h *Handler) fail(log zerolog.Logger, p Payload, src source, fe *fileError, attempt int) error {
	h.forget(p.SHA256)
	final, err := archiveFailed(src, h.o.FailedDir, p, fe.status, fe.reason, attempt)
	if err != nil {
		log.Error().Err(err).Str("reason", fe.reason).Msg("file failed, but could not be moved to the failed folder; retrying the move")
		return fmt.Errorf("move to failed: %w", err)
	}
	h.o.Metrics.Files.WithLabelValues("failed").Inc()
	log.Warn().Int(logging.FieldStatus, fe.status).Str("reason", fe.reason).Str("failed", final).Msg("file failed")
	return fmt.Errorf("%s: %w", fe.reason, asynq.SkipRetry)
}

// failPath fails a file the worker cannot open (permissions): it is moved by
// its path, which Open checked lies inside its root.
func (h *Handler) failPath(log zerolog.Logger, p Payload, fe *fileError, attempt int) error {
	return h.fail(log, p, pathSource(p.Path), fe, attempt)
}

// requeue enqueues a changed file under its new content hash and drops this
// task. The new task goes through the same checks; the watcher, which also
// sees the change, waits for the file to settle before it queues it.
func (h *Handler) requeue(ctx context.Context, log zerolog.Logger, p Payload, o *opened) error {
	h.forget(p.SHA256)
	h.o.Metrics.Files.WithLabelValues("changed").Inc()
	f, err := h.o.Roots.Open(Payload{Path: p.Path, Root: p.Root, Rel: p.Rel, Size: p.Size, SHA256: p.SHA256})
	if err != nil {
		log.Warn().Err(err).Msg("file changed and cannot be read again; task dropped")
		return nil
	}
	defer f.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, io.NewSectionReader(f.f, 0, 1<<62))
	if err != nil {
		return fmt.Errorf("hash changed file: %w", err)
	}
	fi := f.info
	np := p
	np.SHA256, np.Size, np.EnqueuedAt, np.Source = hex.EncodeToString(hash.Sum(nil)), n, time.Time{}, "requeue"
	np.MTime = fi.ModTime().UTC()
	if h.o.Requeue == nil {
		log.Warn().Msg("file changed since it was queued; no requeue configured, the watcher will find it")
		return nil
	}
	if err := h.o.Requeue(ctx, np); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("requeue changed file: %w", err)
	}
	log.Info().Str("new_sha256", np.SHA256).Msg("file changed since it was queued: queued again under its new content")
	return nil
}
