package worker

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
)

// TaskType is the asynq task type of an upload. Other programs may enqueue
// it directly, with a Payload as JSON.
const TaskType = "document:upload"

// Payload names one file to upload. Its JSON form is the task payload:
//
//	{
//	  "path":   "/srv/scans/inbox/2026/invoice-17.pdf",  // absolute path of the file (required)
//	  "root":   "/srv/scans/inbox",                      // the inbox or allowed root it lies in (required)
//	  "rel":    "2026/invoice-17.pdf",                   // path relative to root (required; no "..")
//	  "size":   48213,                                   // bytes (required)
//	  "mtime":  "2026-12-03T09:14:07.123456789Z",        // modification time, RFC 3339 (optional)
//	  "sha256": "9f86d0...",                             // 64 hex digits of the content (required)
//	  "enqueued_at": "2026-12-03T09:14:09Z",             // optional
//	  "source": "watcher"                                // who enqueued it, for logs (optional)
//	}
//
// The worker uploads a file only if path lies under a configured inbox or
// NATIF_ALLOWED_ROOTS, equals root/rel, and still has this size and SHA-256.
//
// File names on Linux are bytes, and a file server's may not be UTF-8 (a
// Latin-1 "rechnung-\xe4.pdf" from an old SMB client), which a JSON string
// cannot carry: encoding/json would turn the byte into U+FFFD and the worker
// would look for a file that does not exist. So when path, root or rel is not
// valid UTF-8, the JSON also holds "path_b64", "root_b64" and "rel_b64", the
// standard base64 of the exact bytes, and readers take those over the
// (then lossy, for humans only) text fields. Producers whose names are UTF-8
// never need them.
type Payload struct {
	Path       string    `json:"path"`
	Root       string    `json:"root"`
	Rel        string    `json:"rel"`
	Size       int64     `json:"size"`
	MTime      time.Time `json:"mtime,omitzero"`
	SHA256     string    `json:"sha256"`
	EnqueuedAt time.Time `json:"enqueued_at,omitzero"`
	Source     string    `json:"source,omitempty"`
}

// wirePayload is the JSON form of a Payload: its fields plus the exact
// bytes of names that are not UTF-8.
type wirePayload struct {
	Path       string    `json:"path"`
	PathB64    string    `json:"path_b64,omitempty"`
	Root       string    `json:"root"`
	RootB64    string    `json:"root_b64,omitempty"`
	Rel        string    `json:"rel"`
	RelB64     string    `json:"rel_b64,omitempty"`
	Size       int64     `json:"size"`
	MTime      time.Time `json:"mtime,omitzero"`
	SHA256     string    `json:"sha256"`
	EnqueuedAt time.Time `json:"enqueued_at,omitzero"`
	Source     string    `json:"source,omitempty"`
}

// rawName returns s for the JSON text field and, when s is not UTF-8, the
// base64 of its bytes for the *_b64 field.
func rawName(s string) (text, b64 string) {
	if utf8.ValidString(s) {
		return s, ""
	}
	return strings.ToValidUTF8(s, "\uFFFD"), base64.StdEncoding.EncodeToString([]byte(s))
}

// MarshalJSON writes the payload, with the exact bytes of names that are
// not UTF-8 in the *_b64 fields.
func (p Payload) MarshalJSON() ([]byte, error) {
	w := wirePayload{Size: p.Size, MTime: p.MTime, SHA256: p.SHA256, EnqueuedAt: p.EnqueuedAt, Source: p.Source}
	w.Path, w.PathB64 = rawName(p.Path)
	w.Root, w.RootB64 = rawName(p.Root)
	w.Rel, w.RelB64 = rawName(p.Rel)
	return json.Marshal(w)
}

// UnmarshalJSON reads a payload; a *_b64 field, when present, gives the
// exact bytes of its name and overrides the text field.
func (p *Payload) UnmarshalJSON(b []byte) error {
	var w wirePayload
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*p = Payload{Path: w.Path, Root: w.Root, Rel: w.Rel, Size: w.Size, MTime: w.MTime, SHA256: w.SHA256,
		EnqueuedAt: w.EnqueuedAt, Source: w.Source}
	for _, f := range []struct {
		name string
		b64  string
		dst  *string
	}{{"path_b64", w.PathB64, &p.Path}, {"root_b64", w.RootB64, &p.Root}, {"rel_b64", w.RelB64, &p.Rel}} {
		if f.b64 == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(f.b64)
		if err != nil {
			return fmt.Errorf("%s is not standard base64: %v", f.name, err)
		}
		*f.dst = string(raw)
	}
	return nil
}

// maxPayload bounds what the handler will parse: a path is at most a few KB.
const maxPayload = 16 << 10

// ErrBadPayload is wrapped by every payload that cannot name a file safely.
var ErrBadPayload = errors.New("bad task payload")

// ParsePayload decodes and checks a task payload. It checks the shape only:
// whether the path is allowed is decided against the configured roots.
func ParsePayload(b []byte) (Payload, error) {
	if len(b) > maxPayload {
		return Payload{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadPayload, len(b), maxPayload)
	}
	var p Payload
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Payload{}, fmt.Errorf("%w: not the JSON of a document:upload task: %v", ErrBadPayload, err)
	}
	return p, p.Validate()
}

// Validate checks the payload's fields on their own.
func (p Payload) Validate() error {
	switch {
	case p.Path == "" || !filepath.IsAbs(p.Path) || filepath.Clean(p.Path) != p.Path:
		return fmt.Errorf("%w: path %q must be absolute and clean", ErrBadPayload, p.Path)
	case p.Root == "" || !filepath.IsAbs(p.Root) || filepath.Clean(p.Root) != p.Root:
		return fmt.Errorf("%w: root %q must be absolute and clean", ErrBadPayload, p.Root)
	case p.Rel == "" || filepath.IsAbs(p.Rel) || !filepath.IsLocal(p.Rel) || filepath.Clean(p.Rel) != p.Rel:
		return fmt.Errorf("%w: rel %q must be a clean relative path inside root (no \"..\")", ErrBadPayload, p.Rel)
	case filepath.Join(p.Root, p.Rel) != p.Path:
		return fmt.Errorf("%w: path %q is not root %q joined with rel %q", ErrBadPayload, p.Path, p.Root, p.Rel)
	case p.Size < 0:
		return fmt.Errorf("%w: negative size", ErrBadPayload)
	case !isSHA256(p.SHA256):
		return fmt.Errorf("%w: sha256 %q is not 64 lowercase hex digits", ErrBadPayload, p.SHA256)
	case !utf8.ValidString(p.Source):
		return fmt.Errorf("%w: source %q is not UTF-8 text", ErrBadPayload, p.Source)
	}
	return nil
}

func isSHA256(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// TaskOptions shape the tasks NewTask builds. Start from DefaultTaskOptions.
type TaskOptions struct {
	Queue     string        // asynq queue (NATIF_QUEUE)
	MaxRetry  int           // failed attempts retried before the file fails (NATIF_MAX_RETRY)
	Timeout   time.Duration // one attempt (NATIF_TASK_TIMEOUT)
	Retention time.Duration // how long a completed task keeps its ID in the queue
}

// DefaultTaskOptions are the configuration's defaults: queue "natif", 12
// retries, 30 minutes an attempt, completed tasks kept 7 days. The completion
// ledger, not the retention, is what keeps content from being uploaded twice
// after that.
func DefaultTaskOptions() TaskOptions {
	return TaskOptions{Queue: "natif", MaxRetry: 12, Timeout: 30 * time.Minute, Retention: 7 * 24 * time.Hour}
}

// TaskID is the asynq task ID of a content hash: the same content is never
// queued twice while its task is pending, running or retained.
func TaskID(sha256 string) string { return "sha256:" + sha256 }

// NewTask builds the upload task of p, with its ID derived from the content.
// Enqueueing it again while the first is queued, running or retained fails
// with asynq.ErrTaskIDConflict, which callers treat as "already queued".
func NewTask(p Payload, o TaskOptions) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.EnqueuedAt.IsZero() {
		p.EnqueuedAt = time.Now().UTC()
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TaskType, b,
		asynq.TaskID(TaskID(p.SHA256)),
		asynq.Queue(o.Queue),
		// One spare retry: the handler moves the file to failed on the last
		// failure it allows, so a rate limit or an account pause on that
		// attempt (which spends no retry) never lets asynq archive the task.
		asynq.MaxRetry(o.MaxRetry+1),
		asynq.Timeout(o.Timeout),
		asynq.Retention(o.Retention),
	), nil
}
