package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/redact"
)

// env is one handler against one simulator, with its folders.
type env struct {
	t                   *testing.T
	inbox, done, failed string
	sim                 *fakeapi.Server
	srv                 *httptest.Server
	front               *front
	ledger              *MemoryLedger
	handler             *Handler
	pauser              *tripRecorder
	requeued            []Payload
	requeueMu           sync.Mutex
	logs                *lockedBuffer
	opts                Options
}

// front stands before the simulator so a test can replace an answer.
type front struct {
	sim  http.Handler
	mu   sync.Mutex
	hook func(w http.ResponseWriter, r *http.Request) bool
	hits int // upload requests seen
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hook := f.hook
	if r.Method == http.MethodPost && r.URL.Path != "/token" {
		f.hits++
	}
	f.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	f.sim.ServeHTTP(w, r)
}

func (f *front) set(h func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

func (f *front) uploads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

type tripRecorder struct {
	mu      sync.Mutex
	reasons []string
}

func (p *tripRecorder) Trip(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reasons = append(p.reasons, reason)
}

func (p *tripRecorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reasons)
}

const testKey = "key-Worker-Test-9001"

func newEnv(t *testing.T, simOpts fakeapi.Options, tweak func(*Options, *Uploader)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, inbox: filepath.Join(dir, "inbox"), done: filepath.Join(dir, "done"), failed: filepath.Join(dir, "failed"),
		ledger: NewMemoryLedger(), pauser: &tripRecorder{}, logs: &lockedBuffer{}}
	for _, d := range []string{e.inbox, e.done, e.failed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	simOpts.APIKeys = []string{testKey}
	e.sim = fakeapi.New(simOpts)
	t.Cleanup(e.sim.Close)
	e.front = &front{sim: e.sim}
	e.srv = httptest.NewServer(e.front)
	t.Cleanup(e.srv.Close)
	roots, _ := NewRoots(e.inbox)
	up := &Uploader{
		Client:       &http.Client{Transport: &auth.Transport{Source: auth.NewAPIKey(redact.NewSecret(testKey)), BaseURL: e.srv.URL}},
		BaseURL:      e.srv.URL,
		Endpoint:     "/documents/",
		PollInterval: 20 * time.Millisecond,
	}
	e.opts = Options{
		Roots: roots, DoneDir: e.done, FailedDir: e.failed, MaxFileSize: 100_000_000,
		Uploader: up, Ledger: e.ledger, Pauser: e.pauser,
		Requeue: func(_ context.Context, p Payload) error {
			e.requeueMu.Lock()
			defer e.requeueMu.Unlock()
			e.requeued = append(e.requeued, p)
			return nil
		},
		InAttempt: 300 * time.Millisecond,
		Logger:    zerolog.New(e.logs),
	}
	if tweak != nil {
		tweak(&e.opts, up)
	}
	e.handler = NewHandler(e.opts)
	return e
}

// drop writes a file into the inbox and returns its payload.
func (e *env) drop(rel string, content []byte) Payload {
	e.t.Helper()
	path := filepath.Join(e.inbox, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	return Payload{Path: path, Root: e.inbox, Rel: rel, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
}

// process runs the handler on p as asynq would, on the given attempt of
// maxRetry (0 and 1: the first attempt is the last).
func (e *env) process(p Payload) error {
	e.t.Helper()
	b, _ := json.Marshal(p)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.handler.ProcessTask(ctx, asynq.NewTask(TaskType, b))
}

func (e *env) sidecar(path string) map[string]any {
	e.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatalf("sidecar: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatalf("sidecar %s is not JSON: %v", path, err)
	}
	return m
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func pdf(pages int, salt string) []byte {
	var b strings.Builder
	b.WriteString("%PDF-1.4\n% " + salt + "\n")
	for i := range pages {
		b.WriteString("<< /Type /Page /N " + string(rune('0'+i%10)) + " >>\n")
	}
	b.WriteString("%%EOF\n")
	return []byte(b.String())
}

// lockedBuffer is a log sink that many workers may write at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
