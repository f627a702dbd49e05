package watcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/logging"
	"github.com/natif-uploader/natif-uploader/worker"
)

// Enqueuer queues an upload; asynq.ErrTaskIDConflict means "already queued".
// *worker.Enqueuer satisfies it.
type Enqueuer interface {
	Enqueue(ctx context.Context, p worker.Payload) error
}

// Options configure the watcher and the one-shot scan.
type Options struct {
	// Inboxes are the watched folders (absolute).
	Inboxes []string
	// AllowedRoots are further folders a one-shot scan may take files from.
	AllowedRoots []string
	DoneDir      string
	FailedDir    string
	// Settle is the quiet time before a file counts as completely written.
	Settle time.Duration
	// MaxFileSize: larger files fail without being hashed or uploaded.
	MaxFileSize int64
	// Mode is auto, events or poll (see config.Config.WatchMode).
	Mode              string
	PollInterval      time.Duration
	RescanInterval    time.Duration
	IncompleteTimeout time.Duration
	Filter            Filter
	Enqueuer          Enqueuer
	Ledger            worker.Ledger
	// Failures, when set, is told of each file failed before it was
	// queued, so that `status` lists it with the upload failures.
	Failures interface {
		Record(ctx context.Context, f worker.Failure) error
	}
	// Hashers is how many files are hashed and queued at once (default 4).
	Hashers int
	Logger  zerolog.Logger
}

func (o *Options) defaults() {
	if o.Mode == "" {
		o.Mode = "auto"
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.RescanInterval <= 0 {
		o.RescanInterval = time.Minute
	}
	if o.IncompleteTimeout <= 0 {
		o.IncompleteTimeout = time.Hour
	}
	if o.Hashers <= 0 {
		o.Hashers = 4
	}
}

// Outcome is what became of one file.
type Outcome int

const (
	Queued        Outcome = iota // a new upload task
	AlreadyQueued                // its content's task is queued, running or retained
	Elsewhere                    // its content is queued from another file: look again later
	Duplicate                    // its content was uploaded before: moved to done
	Failed                       // moved to failed without an upload
	Waiting                      // not complete yet: left in place
)

func (o Outcome) String() string {
	return [...]string{"queued", "already-queued", "queued-elsewhere", "duplicate", "failed", "waiting"}[o]
}

// file is one candidate: where it is and what its last look saw.
type file struct {
	root, rel, path string
	size            int64
	mtime           time.Time
	ctime           time.Time // status change (ctimeOf); zero where unknown
}

// unchanged reports whether fi still shows the size, mtime and ctime of f.
func (f *file) unchanged(fi fs.FileInfo) bool {
	return fi.Size() == f.size && fi.ModTime().Equal(f.mtime) && ctimeOf(fi).Equal(f.ctime)
}

// record takes size, mtime and ctime from fi.
func (f *file) record(fi fs.FileInfo) {
	f.size, f.mtime, f.ctime = fi.Size(), fi.ModTime(), ctimeOf(fi)
}

// lastChange is the later of the recorded mtime and ctime: when the file
// was last written, renamed or had its times set. A copy that keeps the
// source's old mtime still shows a recent ctime while it is written.
func (f *file) lastChange() time.Time {
	if f.ctime.After(f.mtime) {
		return f.ctime
	}
	return f.mtime
}

// lastChange is lastChange of a file recorded from fi.
func lastChange(fi fs.FileInfo) time.Time {
	var f file
	f.record(fi)
	return f.lastChange()
}

// judge looks at a stable file: empty, too large, unsupported, incomplete or
// complete. It reads the first bytes and the last kilobyte.
func (o *Options) judge(f file) (Completeness, string, error) {
	switch {
	case f.size == 0:
		return Unsupported, "empty file", nil
	case o.MaxFileSize > 0 && f.size > o.MaxFileSize:
		return Unsupported, fmt.Sprintf("file of %d bytes is larger than NATIF_MAX_FILE_SIZE (%d bytes)", f.size, o.MaxFileSize), nil
	}
	fh, err := openRegular(f.path)
	if errors.Is(err, fs.ErrPermission) {
		return Unreadable, unreadableReason, nil
	}
	if err != nil {
		return Incomplete, "", err
	}
	defer fh.Close()
	c, err := CheckComplete(fh, f.size)
	if err != nil {
		return Incomplete, "", err
	}
	if c == Unsupported {
		return Unsupported, "unsupported file type (natif takes PDF, JPEG, PNG, GIF and TIFF, recognised by content, not by name)", nil
	}
	return c, "", nil
}

// openRegular opens path for reading only if it is still a regular file: a
// name swapped for a symbolic link (O_NOFOLLOW) or a FIFO (O_NONBLOCK, then
// the type check) since it was looked at is not read, so nothing outside
// the inbox is hashed and no hasher blocks.
func openRegular(path string) (*os.File, error) {
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		fh.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: errors.New("no longer a regular file")}
	}
	return fh, nil
}

// unreadableReason is why a file this process may not read is not queued.
const unreadableReason = "cannot read the file: permission denied (the daemon's user needs read permission on it)"

// payload hashes the file (streamed) into its task payload. It fails if the
// file changed size while it was read.
func payload(f file) (worker.Payload, error) {
	fh, err := openRegular(f.path)
	if err != nil {
		return worker.Payload{}, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return worker.Payload{}, err
	}
	if n != f.size {
		return worker.Payload{}, errChanged
	}
	return worker.Payload{Path: f.path, Root: f.root, Rel: f.rel, Size: n, MTime: f.mtime.UTC(),
		SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

var errChanged = errors.New("file changed while it was read")

// submit hashes a complete file and queues it, or moves it to done when its
// content was uploaded before.
func (o *Options) submit(ctx context.Context, f file, source string) (Outcome, worker.Payload, error) {
	p, err := payload(f)
	if err != nil {
		return Waiting, p, err
	}
	p.Source = source
	log := o.Logger.With().Str(logging.FieldFile, f.path).Str(logging.FieldSHA256, p.SHA256).Logger()
	if o.Ledger != nil {
		rec, err := o.Ledger.Get(ctx, p.SHA256)
		if err != nil {
			return Waiting, p, err
		}
		if rec != nil {
			final, err := worker.ArchiveDone(f.path, o.DoneDir, p, rec)
			if err != nil {
				return Waiting, p, fmt.Errorf("move duplicate to done: %w", err)
			}
			log.Info().Str("duplicate_of", rec.DocumentID).Str("done", final).Msg("content already uploaded: moved to done without an upload")
			return Duplicate, p, nil
		}
	}
	err = o.Enqueuer.Enqueue(ctx, p)
	switch {
	case errors.Is(err, worker.ErrQueuedElsewhere):
		log.Debug().Msg("the same content is queued from another file; looking again once it is uploaded")
		return Elsewhere, p, nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		log.Debug().Msg("content already queued")
		return AlreadyQueued, p, nil
	case err != nil:
		return Waiting, p, fmt.Errorf("enqueue: %w", err)
	}
	log.Info().Str(logging.FieldTaskID, worker.TaskID(p.SHA256)).Int64("size", p.Size).Msg("queued")
	return Queued, p, nil
}

// fail moves a file that can never be uploaded to the failed folder.
func (o *Options) fail(f file, reason string) error {
	p := worker.Payload{Path: f.path, Root: f.root, Rel: f.rel, Size: f.size}
	if f.size <= 64<<20 { // identify small files; a huge one is not read just for its sidecar
		if hp, err := payload(f); err == nil {
			p.SHA256 = hp.SHA256
		}
	}
	final, err := worker.ArchiveFailed(f.path, o.FailedDir, p, 0, reason, 0)
	if err != nil {
		return fmt.Errorf("move to failed: %w", err)
	}
	o.Logger.Warn().Str(logging.FieldFile, f.path).Str("reason", reason).Str("failed", final).Msg("file failed without an upload")
	if o.Failures != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := o.Failures.Record(ctx, worker.Failure{File: f.path, Reason: reason, FailedAt: time.Now().UTC()}); err != nil {
			o.Logger.Warn().Err(err).Str(logging.FieldFile, f.path).Msg("the failure could not be recorded for status (the file and its .error.json are in the failed folder)")
		}
	}
	return nil
}
