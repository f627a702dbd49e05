package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/worker"
)

// queue is an Enqueuer that behaves like asynq's task IDs: a second enqueue
// of the same content is a conflict.
type queue struct {
	mu    sync.Mutex
	tasks map[string]worker.Payload
	order []worker.Payload
	at    map[string]time.Time
}

func newQueue() *queue { return &queue{tasks: map[string]worker.Payload{}, at: map[string]time.Time{}} }

func (q *queue) Enqueue(_ context.Context, p worker.Payload) error {
	if err := p.Validate(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.tasks[p.SHA256]; ok {
		return asynq.ErrTaskIDConflict
	}
	q.tasks[p.SHA256] = p
	q.order = append(q.order, p)
	q.at[p.Path] = time.Now()
	return nil
}

func (q *queue) payloads() []worker.Payload {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]worker.Payload(nil), q.order...)
}

func (q *queue) has(path string) (worker.Payload, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range q.order {
		if p.Path == path {
			return p, true
		}
	}
	return worker.Payload{}, false
}

type fixture struct {
	t            *testing.T
	base, inbox  string
	done, failed string
	q            *queue
	ledger       *worker.MemoryLedger
	opts         Options
	cancel       context.CancelFunc
	stopped      chan struct{}
	w            *Watcher
}

func newFixture(t *testing.T, tweak func(*Options)) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, base: base, inbox: filepath.Join(base, "inbox"), done: filepath.Join(base, "done"),
		failed: filepath.Join(base, "failed"), q: newQueue(), ledger: worker.NewMemoryLedger()}
	for _, d := range []string{f.inbox, f.done, f.failed} {
		os.MkdirAll(d, 0o755)
	}
	f.opts = Options{
		Inboxes: []string{f.inbox}, DoneDir: f.done, FailedDir: f.failed,
		Settle: 300 * time.Millisecond, MaxFileSize: 1 << 20, Mode: "events",
		PollInterval: 200 * time.Millisecond, RescanInterval: time.Minute, IncompleteTimeout: time.Hour,
		Enqueuer: f.q, Ledger: f.ledger, Logger: zerolog.Nop(),
	}
	if tweak != nil {
		tweak(&f.opts)
	}
	return f
}

func (f *fixture) start() {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.stopped = cancel, make(chan struct{})
	f.w = New(f.opts)
	go func() {
		defer close(f.stopped)
		if err := f.w.Run(ctx); err != nil {
			f.t.Errorf("Run: %v", err)
		}
	}()
	f.t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	if f.cancel != nil {
		f.cancel()
		<-f.stopped
		f.cancel = nil
	}
}

func (f *fixture) write(rel string, content []byte) string {
	f.t.Helper()
	p := filepath.Join(f.inbox, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pdf(salt string) []byte { return []byte("%PDF-1.4\n% " + salt + "\n<< /Type /Page >>\n%%EOF\n") }

func TestChunkedWriteQueuedOnceAfterLastChunk(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	path := filepath.Join(f.inbox, "scan.pdf")
	fh, _ := os.Create(path)
	content := pdf("chunked")
	var last time.Time
	for i := 0; i < len(content); i += len(content) / 8 {
		end := min(i+len(content)/8, len(content))
		fh.Write(content[i:end])
		fh.Sync()
		last = time.Now()
		time.Sleep(200 * time.Millisecond) // under the settle time: still writing
	}
	fh.Close()
	eventually(t, 5*time.Second, func() bool { _, ok := f.q.has(path); return ok }, "the file is queued")
	time.Sleep(500 * time.Millisecond)
	ps := f.q.payloads()
	if len(ps) != 1 || ps[0].Size != int64(len(content)) {
		t.Fatalf("queued %d tasks (%+v), want one for the whole file", len(ps), ps)
	}
	f.q.mu.Lock()
	at := f.q.at[path]
	f.q.mu.Unlock()
	if at.Before(last.Add(f.opts.Settle)) {
		t.Errorf("queued %v after the last chunk, want at least the settle time %v", at.Sub(last), f.opts.Settle)
	}
	if ps[0].Rel != "scan.pdf" || ps[0].Root != f.inbox || ps[0].Source != "watcher" {
		t.Errorf("payload = %+v", ps[0])
	}
}

func TestRenameAndFolderMovedIn(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	outside := filepath.Join(f.base, "staging")
	os.MkdirAll(filepath.Join(outside, "batch", "deep"), 0o755)
	os.WriteFile(filepath.Join(outside, "single.pdf"), pdf("single"), 0o644)
	for i := range 5 {
		os.WriteFile(filepath.Join(outside, "batch", "deep", fmt.Sprintf("%d.pdf", i)), pdf(fmt.Sprint("b", i)), 0o644)
	}
	time.Sleep(100 * time.Millisecond) // the watcher is running
	if err := os.Rename(filepath.Join(outside, "single.pdf"), filepath.Join(f.inbox, "single.pdf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(outside, "batch"), filepath.Join(f.inbox, "batch")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return len(f.q.payloads()) == 6 }, "6 files queued")
	// A new file in the moved-in folder is watched too.
	f.write("batch/deep/later.pdf", pdf("later"))
	eventually(t, 5*time.Second, func() bool { _, ok := f.q.has(filepath.Join(f.inbox, "batch/deep/later.pdf")); return ok }, "a file in a moved-in folder")
}

func TestLargeTreeAtStartOnceEachAndRestart(t *testing.T) {
	const n = 10000
	f := newFixture(t, func(o *Options) { o.Hashers = 8 })
	for i := range n {
		f.write(fmt.Sprintf("d%02d/f%05d.pdf", i%50, i), pdf(fmt.Sprint(i)))
	}
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(f.inbox, func(p string, d os.DirEntry, err error) error {
		if !d.IsDir() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	f.start()
	eventually(t, 60*time.Second, func() bool { return len(f.q.payloads()) >= n }, "10,000 files queued")
	time.Sleep(300 * time.Millisecond)
	seen := map[string]bool{}
	for _, p := range f.q.payloads() {
		if seen[p.Path] {
			t.Fatalf("%s queued twice", p.Path)
		}
		seen[p.Path] = true
	}
	if len(seen) != n {
		t.Fatalf("queued %d files, want %d", len(seen), n)
	}
	f.stop()
	// Restart over the same tree: nothing new is queued.
	f.start()
	eventually(t, 60*time.Second, func() bool { return f.w.Counts()[AlreadyQueued] >= n }, "every file looked at again")
	if got := len(f.q.payloads()); got != n {
		t.Errorf("after a restart %d tasks, want still %d", got, n)
	}
	if c := f.w.Counts(); c[Queued] != 0 || c[AlreadyQueued] != n {
		t.Errorf("restart counts = %v, want 0 queued and %d already queued", c, n)
	}
}

func TestPollingFindsFilesWithoutEvents(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Mode = "poll" })
	f.start()
	time.Sleep(100 * time.Millisecond)
	p := f.write("sub/polled.pdf", pdf("poll"))
	eventually(t, 5*time.Second, func() bool { _, ok := f.q.has(p); return ok }, "polled file queued")
}

// When inotify cannot be had (its instance limit reached), every inbox is
// polled, with one log line saying what to raise, and files are still found.
func TestNoEventsFallsBackToPolling(t *testing.T) {
	saved := newFSWatcher
	newFSWatcher = func() (*fsnotify.Watcher, error) { return nil, syscall.EMFILE }
	t.Cleanup(func() { newFSWatcher = saved })
	var logs strings.Builder
	var mu sync.Mutex
	f := newFixture(t, func(o *Options) {
		o.Logger = zerolog.New(zerolog.SyncWriter(lockedWriter{&mu, &logs}))
	})
	f.start()
	p := f.write("sub/polled.pdf", pdf("no-inotify"))
	eventually(t, 5*time.Second, func() bool { _, ok := f.q.has(p); return ok }, "file queued by polling")
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "fs.inotify.max_user_instances") || !strings.Contains(out, "polling inbox") {
		t.Errorf("log does not say that events are unavailable and the inbox is polled:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestIneligibleNamesAndSymlinks(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Filter = Filter{Exclude: []string{"draft*"}} })
	f.start()
	names := []string{".hidden.pdf", "a.tmp", "b.part", "c.crdownload", "~lock.pdf", "~$word.pdf", "Thumbs.db", ".DS_Store",
		"@eaDir/x.pdf", ".git/y.pdf", "draft-1.pdf"}
	for _, n := range names {
		f.write(n, pdf(n))
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(f.inbox, "passwd.pdf")); err != nil {
		t.Fatal(err)
	}
	good := f.write("good.pdf", pdf("good"))
	eventually(t, 5*time.Second, func() bool { _, ok := f.q.has(good); return ok }, "the eligible file queued")
	time.Sleep(500 * time.Millisecond)
	if ps := f.q.payloads(); len(ps) != 1 {
		t.Errorf("queued %d files, want only good.pdf: %+v", len(ps), ps)
	}
	for _, n := range append(names, "passwd.pdf") {
		if _, err := os.Lstat(filepath.Join(f.inbox, n)); err != nil {
			t.Errorf("%s was moved: ineligible files stay where they are", n)
		}
	}
}

func TestTruncatedPDFWaitsThenCompletes(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	p := f.write("partial.pdf", []byte("%PDF-1.4\n<< /Type /Page >>\n"))
	time.Sleep(1200 * time.Millisecond)
	if _, ok := f.q.has(p); ok {
		t.Fatal("a PDF without its end marker was queued")
	}
	fh, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	fh.WriteString("%%EOF\r\n")
	fh.Close()
	eventually(t, 5*time.Second, func() bool { _, ok := f.q.has(p); return ok }, "the completed PDF queued")
}

func TestIncompleteTimeoutFails(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.IncompleteTimeout = 700 * time.Millisecond })
	f.start()
	f.write("broken.jpg", []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4})
	failed := filepath.Join(f.failed, "broken.jpg")
	eventually(t, 10*time.Second, func() bool { return exists(failed + worker.FailedSuffix) }, "the incomplete file failed")
	b, _ := os.ReadFile(failed + worker.FailedSuffix)
	if !strings.Contains(string(b), "incomplete file") {
		t.Errorf("sidecar %s, want the reason", b)
	}
}

func TestBadFilesFailWithoutQueue(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxFileSize = 100 })
	f.start()
	f.write("empty.pdf", nil)
	f.write("text.pdf", []byte("just text, named like a PDF"))
	f.write("huge.pdf", append(pdf("x"), make([]byte, 200)...))
	for _, n := range []string{"empty.pdf", "text.pdf", "huge.pdf"} {
		eventually(t, 5*time.Second, func() bool { return exists(filepath.Join(f.failed, n) + worker.FailedSuffix) }, n+" failed")
	}
	if ps := f.q.payloads(); len(ps) != 0 {
		t.Errorf("queued %v, want nothing", ps)
	}
}

func TestDuplicateOfUploadedContentGoesToDone(t *testing.T) {
	f := newFixture(t, nil)
	content := pdf("dup")
	p, _ := payload(file{path: writeTmp(t, content), size: int64(len(content))})
	f.ledger.Put(context.Background(), worker.Record{SHA256: p.SHA256, DocumentID: "doc-1", Source: "/elsewhere/a.pdf"})
	f.start()
	f.write("copy.pdf", content)
	eventually(t, 5*time.Second, func() bool { return exists(filepath.Join(f.done, "copy.pdf") + worker.DoneSuffix) }, "duplicate moved to done")
	b, _ := os.ReadFile(filepath.Join(f.done, "copy.pdf") + worker.DoneSuffix)
	if !strings.Contains(string(b), `"duplicate_of": "doc-1"`) {
		t.Errorf("sidecar %s, want duplicate_of doc-1", b)
	}
	if len(f.q.payloads()) != 0 {
		t.Errorf("a duplicate was queued")
	}
}

func TestInboxRemovedAndRecreated(t *testing.T) {
	f := newFixture(t, nil)
	f.start()
	time.Sleep(100 * time.Millisecond)
	if err := os.RemoveAll(f.inbox); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	os.MkdirAll(f.inbox, 0o755)
	p := f.write("after.pdf", pdf("after"))
	eventually(t, 15*time.Second, func() bool { _, ok := f.q.has(p); return ok }, "a file in the recreated inbox")
}

func writeTmp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, b, 0o644)
	return p
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// An inbox that goes away (an unmounted share) and comes back: a queued file
// whose task a worker dropped meanwhile (it found the share gone too) is
// queued again, not left in the inbox until a restart.
func TestInboxBackRequeuesDroppedTasks(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.PollInterval = 100 * time.Millisecond })
	p := f.write("kept.pdf", pdf("kept"))
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	f.start()
	eventually(t, 5*time.Second, func() bool { _, ok := f.q.has(p); return ok }, "the file queued")
	aside := f.inbox + ".unmounted"
	if err := os.Rename(f.inbox, aside); err != nil {
		t.Fatal(err)
	}
	queued, _ := f.q.has(p)
	f.q.mu.Lock()
	delete(f.q.tasks, queued.SHA256) // a worker dropped the task: the file had vanished for it
	f.q.mu.Unlock()
	time.Sleep(1500 * time.Millisecond) // the watcher's next look finds the inbox missing
	if err := os.Rename(aside, f.inbox); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() bool { return len(f.q.payloads()) == 2 }, "the file queued again once the inbox is back")
}
