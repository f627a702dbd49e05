package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

func shaOf(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// Review R1: a file replaced after its task was made is not moved to done as
// a duplicate of the old content: it is queued again under its new hash.
func TestRegressionDuplicateMovesChangedContent(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	p := e.drop("scan.pdf", pdf(1, "A")) // task for content A
	e.ledger.Put(context.Background(), Record{SHA256: p.SHA256, DocumentID: "doc-A", Source: "/elsewhere/a.pdf"})
	for _, newScan := range [][]byte{pdf(4, "B, a new scan under the same name"), pdf(1, "C")} { // other size, then same size
		os.WriteFile(p.Path, newScan, 0o644) // replaced before the task ran
		if err := e.process(p); err != nil {
			t.Fatal(err)
		}
		if exists(filepath.Join(e.done, "scan.pdf")) {
			t.Fatalf("new content %s was moved to done as a duplicate of %s", shaOf(newScan)[:12], p.SHA256[:12])
		}
		e.requeueMu.Lock()
		last := e.requeued[len(e.requeued)-1]
		e.requeueMu.Unlock()
		if last.SHA256 != shaOf(newScan) {
			t.Errorf("requeued %s, want the new content %s", last.SHA256[:12], shaOf(newScan)[:12])
		}
	}
}

// Review R2 (the scenario; the test asserts it no longer happens): the file is replaced (rename over it) after its bytes went out and
// before the move: the new content lands in done under the old upload.
func TestRegressionReplacedAfterUpload(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	p := e.drop("scan.pdf", pdf(1, "A"))
	newScan := pdf(3, "B")
	e.front.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		e.sim.ServeHTTP(w, r)
		tmp := p.Path + ".tmp"
		os.WriteFile(tmp, newScan, 0o644)
		os.Rename(tmp, p.Path)
		return true
	})
	if err := e.process(p); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(e.done, "scan.pdf"))
	sc := e.sidecar(filepath.Join(e.done, "scan.pdf") + DoneSuffix)
	if shaOf(got) != sc["sha256"] {
		t.Errorf("done/scan.pdf is content B (uploads of B: %d), sidecar says sha %v; content A is gone from disk, B never uploaded",
			e.sim.Stats().UploadsBySHA256[shaOf(newScan)], sc["sha256"].(string)[:12])
	}
}

// Review R3 (the scenario; the test asserts it no longer happens): across file systems, a source that cannot be removed leaves a copy in
// done and the sidecar is deleted: a file in done without a sidecar, one more
// per retry.
func TestRegressionCrossDeviceCopyWithoutSidecar(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "done-")
	if err != nil {
		t.Skip("no /dev/shm")
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	e := newEnv(t, fakeapi.Options{}, func(o *Options, _ *Uploader) { o.DoneDir = shm })
	p := e.drop("ro/a.pdf", pdf(1, "xdev"))
	dir := filepath.Dir(p.Path)
	if out, err := exec.Command("chattr", "+a", dir).CombinedOutput(); err != nil { // files in it cannot be removed
		t.Skipf("chattr: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-a", dir).Run() })
	for range 3 {
		err = e.process(p)
	}
	ents, _ := os.ReadDir(filepath.Join(shm, "ro"))
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".json") && !exists(filepath.Join(shm, "ro", n)+DoneSuffix) {
			t.Errorf("done/ro/%s has no sidecar (done holds %v; last err %v; still in inbox %v)", n, names, err, exists(p.Path))
			break
		}
	}
}

// Review R4 (the scenario; the test asserts it no longer happens): the path is resolved once, then opened and renamed by name: a folder
// swapped for a symlink after Resolve makes the worker move a file outside
// its roots.
type hookLedger struct {
	*MemoryLedger
	once sync.Once
	hook func()
}

func (l *hookLedger) Get(ctx context.Context, sha string) (*Record, error) {
	l.once.Do(l.hook)
	return l.MemoryLedger.Get(ctx, sha)
}

func TestRegressionSymlinkSwapAfterResolve(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "a.pdf")
	os.WriteFile(secret, []byte("%PDF-1.4 not yours"), 0o600)
	hl := &hookLedger{MemoryLedger: NewMemoryLedger()}
	e := newEnv(t, fakeapi.Options{}, func(o *Options, _ *Uploader) { o.Ledger = hl })
	p := e.drop("sub/a.pdf", pdf(1, "inside"))
	hl.MemoryLedger.Put(context.Background(), Record{SHA256: p.SHA256, DocumentID: "d", Source: "/x"})
	hl.hook = func() { // the owner of the inbox swaps the folder between Resolve and the move
		sub := filepath.Join(e.inbox, "sub")
		os.Rename(sub, sub+".old")
		os.Symlink(outside, sub)
	}
	e.process(p)
	if !exists(secret) {
		b, _ := os.ReadFile(filepath.Join(e.done, "sub/a.pdf"))
		t.Errorf("%s (outside every root) was moved into done: done/sub/a.pdf = %q", secret, b)
	}
}

// Review R5 (the scenario; the test asserts it no longer happens): a 202 whose poll answers with an error status is treated as a failed
// upload: the file is uploaded again (and again), then failed.
func TestRegressionPollErrorReuploads(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, func(_ *Options, u *Uploader) {
		u.Endpoint, u.Processing, u.WaitFor = "/processing/invoice_extraction", true, 0
	})
	e.front.set(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			r.Body.Close()
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"processing_id":"p-1","status":"pending","url":"/processing/results/p-1"}`)
			return true
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"detail":"results store busy"}`)
		return true
	})
	p := e.drop("a.pdf", pdf(1, "poll"))
	err := e.process(p)
	if n := e.front.uploads(); n != 1 || !exists(filepath.Join(e.done, "a.pdf")) {
		t.Errorf("natif accepted the file (202) but: uploads %d, in done %v, in failed %v, err %v",
			n, exists(filepath.Join(e.done, "a.pdf")), exists(filepath.Join(e.failed, "a.pdf")), err)
	}
}

// Review R6 (the scenario; the test asserts it no longer happens): through asynq: the last attempt times out (a failure asynq counts);
// then the spare attempt hits a 402 (a "non-failure"): asynq archives the
// task, the file stays in the inbox.
func TestRegressionTimeoutOnLastAttemptArchives(t *testing.T) {
	mr := miniredis.RunT(t)
	redisOpt := asynq.RedisClientOpt{Addr: mr.Addr()}
	e := newEnv(t, fakeapi.Options{}, nil)
	var mu sync.Mutex
	posts := 0
	e.front.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		mu.Lock()
		posts++
		n := posts
		mu.Unlock()
		if n == 1 { // slow link: the attempt runs out of time
			io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return true
		}
		w.WriteHeader(http.StatusPaymentRequired)
		fmt.Fprint(w, `{"detail":"quota"}`)
		return true
	})
	opts := TaskOptions{Queue: "rv", MaxRetry: 0, Timeout: 1500 * time.Millisecond, Retention: time.Hour}
	cfg := ServerConfig(opts.Queue, 1, time.Second, zerolog.Nop())
	cfg.RetryDelayFunc = func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond } // test speed only
	srv := asynq.NewServer(redisOpt, cfg)
	mux := asynq.NewServeMux()
	mux.Handle(TaskType, e.handler)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	p := e.drop("a.pdf", pdf(1, "slow"))
	task, _ := NewTask(p, opts)
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(redisOpt)
	defer insp.Close()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ts, _ := insp.ListArchivedTasks(opts.Queue); len(ts) > 0 {
			if exists(p.Path) {
				t.Errorf("task archived (%q) while its file is still in the inbox; pauses %d", ts[0].LastErr, e.pauser.count())
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	if exists(p.Path) {
		t.Errorf("after 15s the file is still in the inbox")
	}
	if !exists(filepath.Join(e.failed, "a.pdf") + FailedSuffix) {
		t.Errorf("want the file failed with retries exhausted once the last attempt timed out")
	}
}

// Review R7: only clean relative paths are accepted: "scan.pdf/" would have
// put a name clash's candidate inside the clashing file.
func TestRegressionTrailingSlashRelStuck(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	os.WriteFile(filepath.Join(e.done, "scan.pdf"), []byte("older"), 0o644)
	p := e.drop("scan.pdf", pdf(1, "slash"))
	for _, rel := range []string{"scan.pdf/", "./scan.pdf", "sub/../scan.pdf"} {
		q := p
		q.Rel = rel
		if err := q.Validate(); !errors.Is(err, ErrBadPayload) {
			t.Errorf("rel %q: Validate = %v, want ErrBadPayload (only clean paths)", rel, err)
		}
	}
}

func TestRegressionNoFDLeak(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	count := func() int { ents, _ := os.ReadDir("/proc/self/fd"); return len(ents) }
	for i := range 3 {
		e.process(e.drop(fmt.Sprintf("w%d.pdf", i), pdf(1, fmt.Sprint("w", i))))
	}
	before := count()
	e.front.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		http.Error(w, `{"detail":"x"}`, http.StatusServiceUnavailable)
		return true
	})
	for i := range 5 {
		e.process(e.drop(fmt.Sprintf("f%d.pdf", i), pdf(1, fmt.Sprint("f", i))))
	}
	e.front.set(nil)
	for i := range 5 {
		p := e.drop(fmt.Sprintf("c%d.pdf", i), pdf(1, "c"))
		os.WriteFile(p.Path, pdf(1, "d"), 0o644)
		e.process(p)
	}
	e.srv.CloseClientConnections()
	time.Sleep(100 * time.Millisecond)
	if after := count(); after > before+2 {
		t.Errorf("fds %d -> %d", before, after)
	}
}

// Review G4: the last allowed attempt uploaded the file, then timed out or
// crashed before the move. The spare attempt finds the upload in the ledger
// and moves the file to done, not to failed as "retries exhausted".
func TestRegressionSpareAttemptAfterUploadGoesToDone(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	p := e.drop("late.pdf", pdf(1, "late"))
	if err := e.ledger.Put(context.Background(), Record{SHA256: p.SHA256, DocumentID: "doc-1", Endpoint: "/documents/", Source: p.Path, Size: p.Size, Attempts: 3, UploadedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	err := e.handler.handle(context.Background(), asynq.NewTask(TaskType, b), attemptInfo{taskID: "t", retried: 3, maxRetry: 3})
	if err != nil {
		t.Fatalf("spare attempt: %v", err)
	}
	if !exists(filepath.Join(e.done, "late.pdf")) || exists(filepath.Join(e.failed, "late.pdf")) {
		t.Errorf("in done %v, in failed %v; want done", exists(filepath.Join(e.done, "late.pdf")), exists(filepath.Join(e.failed, "late.pdf")))
	}
	if n := e.front.uploads(); n != 0 {
		t.Errorf("uploaded %d times, want 0 (already in the ledger)", n)
	}
}

// createFileSynced (O_TMPFILE) and its named fallback write the whole file,
// refuse to replace one (os.ErrExist, the old content kept) and leave nothing
// else in the folder.
func TestCreateFileSynced(t *testing.T) {
	for name, create := range map[string]func(string, []byte) error{
		"tmpfile": createFileSynced, "named": createFileSyncedNamed,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.pdf"+DoneSuffix)
			if err := create(path, []byte(`{"sha256":"1"}`)); err != nil {
				t.Fatalf("create: %v", err)
			}
			err := create(path, []byte(`{"sha256":"2"}`))
			if !errors.Is(err, os.ErrExist) {
				t.Fatalf("second create: %v, want os.ErrExist", err)
			}
			if b, _ := os.ReadFile(path); string(b) != `{"sha256":"1"}` {
				t.Errorf("content %q, want the first write's", b)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("mode: %v %v, want 0600", fi.Mode(), err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("folder holds %q, want only the file", names)
			}
		})
	}
}

// flakyLedger fails its first n Puts, as Redis does while it restarts.
type flakyLedger struct {
	Ledger
	mu   sync.Mutex
	fail int
	puts int
}

func (l *flakyLedger) Put(ctx context.Context, r Record) error {
	l.mu.Lock()
	l.puts++
	failing := l.puts <= l.fail
	l.mu.Unlock()
	if failing {
		return errors.New("redis: connection refused")
	}
	return l.Ledger.Put(ctx, r)
}

// A ledger that fails for a moment (a Redis restart) still gets the record
// of an upload: the worker retries it before moving the file.
func TestLedgerPutRetried(t *testing.T) {
	var fl *flakyLedger
	e := newEnv(t, fakeapi.Options{}, func(o *Options, _ *Uploader) {
		fl = &flakyLedger{Ledger: o.Ledger, fail: 3}
		o.Ledger = fl
	})
	p := e.drop("a.pdf", pdf(1, "flaky ledger"))
	if err := e.process(p); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	if rec, _ := e.ledger.Get(context.Background(), p.SHA256); rec == nil {
		t.Errorf("no ledger record after %d Puts (3 failed)", fl.puts)
	}
	if fl.puts != 4 || !exists(filepath.Join(e.done, "a.pdf")) {
		t.Errorf("%d Puts, file in done %v; want 4 and the file moved", fl.puts, exists(filepath.Join(e.done, "a.pdf")))
	}
}
