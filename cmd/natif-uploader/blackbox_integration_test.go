//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/internal/testredis"
)

// These tests run the built binary, as an operator would.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "natif-uploader-bin-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "natif-uploader")
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// front stands before the simulator: a test can refuse chosen uploads, by
// file name, once.
type front struct {
	sim    http.Handler
	mu     sync.Mutex
	refuse map[string]int // file name -> status to answer once
	delay  time.Duration  // before each upload is read
	busy   int            // uploads in flight
}

func (f *front) inflight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.busy
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/documents/" {
		f.sim.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	f.busy++
	delay := f.delay
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.busy--
		f.mu.Unlock()
	}()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	var buf bytes.Buffer
	buf.ReadFrom(r.Body)
	peek := r.Clone(r.Context())
	peek.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	if err := peek.ParseMultipartForm(32 << 20); err == nil {
		if fh := peek.MultipartForm.File["file"]; len(fh) == 1 {
			f.mu.Lock()
			status, ok := f.refuse[fh[0].Filename]
			delete(f.refuse, fh[0].Filename)
			f.mu.Unlock()
			if ok {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"detail":"refused by the test (%d)"}`, status)
				return
			}
		}
		peek.MultipartForm.RemoveAll()
	}
	r.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	f.sim.ServeHTTP(w, r)
}

type site struct {
	t                   *testing.T
	dir                 string
	inbox, done, failed string
	sim                 *fakeapi.Server
	front               *front
	env                 []string
	redis               *testredis.Server
}

func newSite(t *testing.T, simOpts fakeapi.Options) *site {
	t.Helper()
	dir := t.TempDir()
	s := &site{t: t, dir: dir, inbox: filepath.Join(dir, "inbox"), done: filepath.Join(dir, "done"), failed: filepath.Join(dir, "failed")}
	for _, d := range []string{s.inbox, s.done, s.failed} {
		os.MkdirAll(d, 0o755)
	}
	simOpts.Password = "pw-Blackbox-7"
	s.sim = fakeapi.New(simOpts)
	t.Cleanup(s.sim.Close)
	s.front = &front{sim: s.sim, refuse: map[string]int{}}
	srv := httptest.NewServer(s.front)
	t.Cleanup(srv.Close)
	s.redis = testredis.Start(t, testredis.Options{})
	s.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"NATIF_BASE_URL=" + srv.URL, "NATIF_USERNAME=demo", "NATIF_PASSWORD=pw-Blackbox-7",
		"REDIS_URL=" + s.redis.URL(), "NATIF_INBOX=" + s.inbox, "NATIF_DONE_DIR=" + s.done, "NATIF_FAILED_DIR=" + s.failed,
		"NATIF_SETTLE=200ms", "NATIF_METRICS_ADDR=", "NATIF_LOG_FORMAT=json", "NATIF_SHUTDOWN_TIMEOUT=5s",
	}
	return s
}

func (s *site) with(extra ...string) []string {
	return append(append([]string(nil), s.env...), extra...)
}

// cli runs one command and returns its exit code and output.
func (s *site) cli(env []string, args ...string) (int, string, string) {
	s.t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env, cmd.Dir = env, s.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// daemon starts a long-running command; it is stopped with SIGTERM at the end.
func (s *site) daemon(env []string, args ...string) *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env, cmd.Dir = env, s.dir
	logf, _ := os.Create(filepath.Join(s.dir, fmt.Sprintf("%s-%d.log", args[0], time.Now().UnixNano())))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
	})
	return cmd
}

func (s *site) write(rel string, content []byte, old bool) string {
	p := filepath.Join(s.inbox, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, content, 0o644)
	if old {
		t := time.Now().Add(-time.Hour)
		os.Chtimes(p, t, t)
	}
	return p
}

func doc(salt string) []byte { return []byte("%PDF-1.4\n% " + salt + "\n<< /Type /Page >>\n%%EOF\n") }

func waitUntil(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func have(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestRealDemoBinary(t *testing.T) {
	s := newSite(t, fakeapi.Options{})
	code, out, errOut := s.cli([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir}, "demo")
	if code != 0 || !strings.Contains(out, "notes.pdf") || strings.Contains(out, "UNEXPECTED") {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "duplicate of") || !strings.Contains(out, "failed/") {
		t.Errorf("demo output lacks the duplicate or the failed file:\n%s", out)
	}
}

func TestRealEnqueueWaitStatusRetry(t *testing.T) {
	s := newSite(t, fakeapi.Options{})
	// status before anything was ever queued: all zero, not an error.
	code, out, errOut := s.cli(s.env, "status", "--json")
	var fresh struct {
		Pending, Archived int
	}
	if err := json.Unmarshal([]byte(out), &fresh); err != nil || code != 0 || fresh.Pending != 0 || fresh.Archived != 0 {
		t.Fatalf("status --json on a fresh queue: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	s.daemon(s.env, "work", "--concurrency", "4")

	// 0: everything uploaded.
	for i := range 8 {
		s.write(fmt.Sprintf("batch1/%d.pdf", i), doc(fmt.Sprint("one", i)), true)
	}
	code, out, errOut = s.cli(s.env, "enqueue", "--wait", filepath.Join(s.inbox, "batch1"))
	if code != 0 || !strings.Contains(out, "uploaded 8, failed 0") {
		t.Fatalf("enqueue --wait (all good): exit %d\n%s\n%s", code, out, errOut)
	}
	// 1: one file refused by natif, one not a document.
	s.front.mu.Lock()
	s.front.refuse["refused.pdf"] = http.StatusUnprocessableEntity
	s.front.mu.Unlock()
	s.write("batch2/ok.pdf", doc("two"), true)
	s.write("batch2/refused.pdf", doc("refused"), true)
	s.write("batch2/notes.pdf", []byte("plain text"), true)
	code, out, errOut = s.cli(s.env, "enqueue", "--wait", filepath.Join(s.inbox, "batch2"))
	if code != 1 || !strings.Contains(out, "failed: "+filepath.Join(s.inbox, "batch2/refused.pdf")) {
		t.Fatalf("enqueue --wait (some failed): exit %d, want 1 listing the failure\n%s\n%s", code, out, errOut)
	}
	if !have(filepath.Join(s.failed, "batch2/notes.pdf.error.json")) || !have(filepath.Join(s.failed, "batch2/refused.pdf.error.json")) {
		t.Errorf("the failed files are not in the failed folder with their reasons")
	}

	// status --json parses and shows the failure.
	code, out, _ = s.cli(s.env, "status", "--json")
	var st struct {
		Archived int `json:"archived"`
		Failures []struct {
			TaskID string `json:"task_id"`
			File   string `json:"file"`
			Reason string `json:"reason"`
		} `json:"recent_failures"`
		Workers int `json:"workers"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	// Both failures are listed: the upload natif refused (an archived task)
	// and the file that failed before it was queued (no task).
	reasons := map[string]string{}
	for _, f := range st.Failures {
		reasons[filepath.Base(f.File)] = f.TaskID + " | " + f.Reason
	}
	if st.Archived != 1 || len(st.Failures) != 2 || st.Workers != 4 ||
		!strings.Contains(reasons["refused.pdf"], "refused by the test") || !strings.HasPrefix(reasons["refused.pdf"], "sha256:") ||
		!strings.HasPrefix(reasons["notes.pdf"], " | unsupported file type") {
		t.Errorf("status = %+v, want one archived failure with natif's reason and its task, the unsupported file without one, and 4 workers", st)
	}

	// retry brings the refused file back; natif takes it this time.
	code, out, errOut = s.cli(s.env, "retry", "--all")
	if code != 0 || !strings.Contains(out, "retrying 1 uploads (1 files moved back") {
		t.Fatalf("retry --all: exit %d\n%s\n%s", code, out, errOut)
	}
	waitUntil(t, 20*time.Second, func() bool { return have(filepath.Join(s.done, "batch2/refused.pdf.natif.json")) }, "the retried file uploaded")
	if have(filepath.Join(s.failed, "batch2/refused.pdf")) {
		t.Errorf("the retried file is still in the failed folder")
	}
}

func TestRealEnqueueWaitExit3OnRejectedCredentials(t *testing.T) {
	s := newSite(t, fakeapi.Options{})
	wrong := s.with("NATIF_PASSWORD=wrong-Blackbox-8")
	s.daemon(wrong, "work")
	s.write("a.pdf", doc("cred"), true)
	code, out, errOut := s.cli(wrong, "enqueue", "--wait", s.inbox)
	if code != 3 || !strings.Contains(out, "natif rejected the credentials") {
		t.Fatalf("enqueue --wait with a wrong password: exit %d, want 3\n%s\n%s", code, out, errOut)
	}
	if !have(filepath.Join(s.inbox, "a.pdf")) || s.sim.Stats().Lockouts != 0 || s.sim.Stats().PasswordGrantsFailed != 1 {
		t.Errorf("want the file kept in the inbox, one failed login and no lockout; stats %+v", s.sim.Stats())
	}
	for _, secret := range []string{"wrong-Blackbox-8", "pw-Blackbox-7"} {
		if strings.Contains(out+errOut, secret) {
			t.Errorf("output holds a password")
		}
	}
}

// SIGTERM during uploads loses nothing: after a restart every file is in
// done, and no content was uploaded more than twice.
func TestRealSIGTERMLosesNothing(t *testing.T) {
	s := newSite(t, fakeapi.Options{Faults: fakeapi.Faults{Latency: 150 * time.Millisecond}})
	const n = 40
	for i := range n {
		s.write(fmt.Sprintf("f%02d.pdf", i), doc(fmt.Sprint("term", i)), true)
	}
	d := s.daemon(s.env, "run", "--concurrency", "4")
	waitUntil(t, 30*time.Second, func() bool { return s.sim.Stats().Uploads >= 8 }, "some uploads")
	d.Process.Signal(syscall.SIGTERM)
	state, err := d.Process.Wait()
	if err != nil || state.ExitCode() != 0 {
		t.Fatalf("daemon after SIGTERM: %v, exit %d; want a clean stop", err, state.ExitCode())
	}
	s.daemon(s.env, "run", "--concurrency", "4")
	waitUntil(t, 60*time.Second, func() bool {
		entries, _ := filepath.Glob(filepath.Join(s.done, "*.pdf"))
		return len(entries) == n
	}, "every file in done after the restart")
	if left, _ := filepath.Glob(filepath.Join(s.inbox, "*.pdf")); len(left) != 0 {
		t.Errorf("files left in the inbox: %v", left)
	}
	// The grace period lets the in-flight uploads finish and archive their
	// files before the exit, so none is uploaded again after the restart.
	byContent := s.sim.Stats().UploadsBySHA256
	if len(byContent) != n {
		t.Errorf("%d contents uploaded, want %d", len(byContent), n)
	}
	for sha, c := range byContent {
		if c != 1 {
			t.Errorf("content %s uploaded %d times, want once", sha[:12], c)
		}
	}
}

// A second signal ends the daemon at once (exit 130), while its uploads are
// still in flight; nothing is lost: the files are in the inbox or in done,
// and a restart uploads the rest.
func TestRealSecondSignalExitsAtOnce(t *testing.T) {
	s := newSite(t, fakeapi.Options{})
	s.front.mu.Lock()
	s.front.delay = 6 * time.Second // longer than the second signal may take
	s.front.mu.Unlock()
	const n = 4
	for i := range n {
		s.write(fmt.Sprintf("slow%02d.pdf", i), doc(fmt.Sprint("slow", i)), true)
	}
	d := s.daemon(s.env, "run", "--concurrency", "4")
	waitUntil(t, 30*time.Second, func() bool { return s.front.inflight() > 0 }, "an upload in flight")
	d.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	d.Process.Signal(syscall.SIGTERM)
	state, err := d.Process.Wait()
	if err != nil || state.ExitCode() != 130 {
		t.Fatalf("daemon after a second SIGTERM: %v, exit %d; want 130", err, state.ExitCode())
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the second signal took %v to end the daemon; want at once", took)
	}
	for i := range n {
		name := fmt.Sprintf("slow%02d.pdf", i)
		if !have(filepath.Join(s.inbox, name)) && !have(filepath.Join(s.done, name)) {
			t.Errorf("%s is neither in the inbox nor in done", name)
		}
	}
}

func TestRealInvalidConfigurationExits2(t *testing.T) {
	s := newSite(t, fakeapi.Options{})
	before, _ := os.ReadDir(s.dir)
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{s.with("NATIF_CONCURRENCY=0"), []string{"run"}, "NATIF_CONCURRENCY=\"0\""},
		{s.with("NATIF_INBOX=" + filepath.Join(s.dir, "inbox", "..", "done")), []string{"watch"}, "NATIF_DONE_DIR"},
		{s.with("REDIS_URL=http://nowhere"), []string{"status"}, "REDIS_URL"},
	} {
		code, _, errOut := s.cli(tc.env, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", tc.args, code, errOut, tc.want)
		}
	}
	after, _ := os.ReadDir(s.dir)
	if len(after) != len(before) {
		t.Errorf("invalid configuration created something: %v -> %v", before, after)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The metrics endpoint answers while the daemon runs.
func TestRealMetricsAndHealth(t *testing.T) {
	s := newSite(t, fakeapi.Options{})
	addr := freePort(t)
	s.daemon(s.with("NATIF_METRICS_ADDR="+addr), "run")
	var body string
	waitUntil(t, 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		body = b.String()
		return resp.StatusCode == 200
	}, "/readyz ready")
	s.write("m.pdf", doc("metrics"), false)
	waitUntil(t, 15*time.Second, func() bool { return have(filepath.Join(s.done, "m.pdf.natif.json")) }, "uploaded")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`natif_uploader_files_total{result="uploaded"} 1`, `natif_uploader_token_requests_total{grant="password",result="ok"} 1`, `natif_uploader_queue_tasks{queue="natif",state="completed"}`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(b.String(), "pw-Blackbox-7") {
		t.Errorf("/metrics holds the password")
	}
	_ = body
}
