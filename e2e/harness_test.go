//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/internal/testredis"
)

// front stands before the simulator and records what the simulator cannot
// tell: every access and refresh token it handed out (for the secrets
// checks), and how /token requests of each grant ended.
type front struct {
	sim *fakeapi.Server

	mu     sync.Mutex
	issued map[string]struct{} // every access and refresh token delivered

	passwordRequests atomic.Int64 // password grants sent, whatever their answer
	refreshRequests  atomic.Int64
	refresh5xx       atomic.Int64 // refreshes answered 5xx: the token was consumed (burned)
	password5xx      atomic.Int64
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" || r.Method != http.MethodPost {
		f.sim.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	grant := ""
	if form, err := url.ParseQuery(string(body)); err == nil {
		grant = form.Get("grant_type")
	}
	switch grant {
	case "password":
		f.passwordRequests.Add(1)
	case "refresh_token":
		f.refreshRequests.Add(1)
	}
	rec := &recorder{ResponseWriter: w}
	f.sim.ServeHTTP(rec, r)
	switch {
	case rec.status >= 500 && grant == "refresh_token":
		f.refresh5xx.Add(1)
	case rec.status >= 500 && grant == "password":
		f.password5xx.Add(1)
	case rec.status == http.StatusOK:
		var tok struct {
			Access  string `json:"access_token"`
			Refresh string `json:"refresh_token"`
		}
		if json.Unmarshal(rec.buf.Bytes(), &tok) == nil {
			f.mu.Lock()
			for _, s := range []string{tok.Access, tok.Refresh} {
				if s != "" {
					f.issued[s] = struct{}{}
				}
			}
			f.mu.Unlock()
		}
	}
}

// tokens returns every token the simulator delivered.
func (f *front) tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.issued))
	for s := range f.issued {
		out = append(out, s)
	}
	return out
}

// recorder copies a /token answer on its way out. Unwrap lets the simulator
// hijack the connection (lost refreshes) through http.ResponseController.
type recorder struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.buf.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// site is one installation: folders, the simulator behind its front, maybe a
// redis-server, and the environment the daemons get.
type site struct {
	t                   *testing.T
	dir                 string
	inbox, done, failed string
	sim                 *fakeapi.Server
	front               *front
	url                 string
	redis               *testredis.Server // nil: the embedded queue
	password            string
	metricsAddr         string
	env                 []string
	started             time.Time

	// cred, when set, runs the daemons as that user (see runAsNobody).
	cred *syscall.Credential

	mu      sync.Mutex
	daemons []*daemon
}

type siteOptions struct {
	sim        fakeapi.Options
	redis      bool
	appendOnly bool
	metrics    bool
	// passwordFile: the daemons read the password from a file (NATIF_PASSWORD_FILE).
	passwordFile bool
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newSite(t *testing.T, o siteOptions) *site {
	t.Helper()
	dir := t.TempDir()
	s := &site{t: t, dir: dir, inbox: filepath.Join(dir, "inbox"), done: filepath.Join(dir, "done"),
		failed: filepath.Join(dir, "failed"), started: time.Now()}
	for _, d := range []string{s.inbox, s.done, s.failed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.password = "pw-E2E-" + randomHex(12)
	o.sim.Password = s.password
	s.sim = fakeapi.New(o.sim)
	t.Cleanup(s.sim.Close)
	s.front = &front{sim: s.sim, issued: map[string]struct{}{}}
	srv := httptest.NewServer(s.front) // 127.0.0.1 only
	t.Cleanup(srv.Close)
	s.url = srv.URL
	s.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"NATIF_BASE_URL=" + srv.URL, "NATIF_USERNAME=demo",
		"NATIF_INBOX=" + s.inbox, "NATIF_DONE_DIR=" + s.done, "NATIF_FAILED_DIR=" + s.failed,
		"NATIF_SETTLE=200ms", "NATIF_LOG_FORMAT=json", "NATIF_LOG_LEVEL=info", "NATIF_SHUTDOWN_TIMEOUT=5s",
	}
	if o.passwordFile {
		pf := filepath.Join(dir, "password")
		s.writePasswordFile(s.password)
		s.env = append(s.env, "NATIF_PASSWORD_FILE="+pf)
	} else {
		s.env = append(s.env, "NATIF_PASSWORD="+s.password)
	}
	t.Cleanup(s.keepLogsOnFailure)
	if o.redis {
		s.redis = testredis.Start(t, testredis.Options{AppendOnly: o.appendOnly})
		s.env = append(s.env, "REDIS_URL="+s.redis.URL())
	}
	if o.metrics {
		s.metricsAddr = freeAddr(t)
		s.env = append(s.env, "NATIF_METRICS_ADDR="+s.metricsAddr)
	} else {
		s.env = append(s.env, "NATIF_METRICS_ADDR=")
	}
	return s
}

// writePasswordFile replaces the password file atomically.
func (s *site) writePasswordFile(pw string) {
	s.t.Helper()
	pf := filepath.Join(s.dir, "password")
	tmp := pf + ".new"
	if err := os.WriteFile(tmp, []byte(pw+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, pf); err != nil {
		s.t.Fatal(err)
	}
}

// with returns the site's environment with more variables (later ones win).
func (s *site) with(extra ...string) []string {
	return append(append([]string(nil), s.env...), extra...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon is one started natif-uploader process.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done closes
}

// start starts natif-uploader with args; its output goes to a log file. It
// is stopped (SIGTERM, then SIGKILL) when the test ends.
func (s *site) start(env []string, args ...string) *daemon {
	s.t.Helper()
	s.mu.Lock()
	n := len(s.daemons)
	s.mu.Unlock()
	d := &daemon{name: fmt.Sprintf("%s#%d", args[0], n), done: make(chan struct{})}
	d.log = filepath.Join(s.dir, fmt.Sprintf("daemon-%02d-%s.log", n, args[0]))
	logf, err := os.Create(d.log)
	if err != nil {
		s.t.Fatal(err)
	}
	d.cmd = exec.Command(binPath, args...)
	d.cmd.Env, d.cmd.Dir = env, s.dir
	if s.cred != nil {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	s.mu.Lock()
	s.daemons = append(s.daemons, d)
	s.mu.Unlock()
	s.t.Cleanup(func() { d.stop(10 * time.Second) })
	return d
}

// alive reports whether the process is still running.
func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// kill9 kills the process with SIGKILL and waits for it.
func (d *daemon) kill9() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// stop sends SIGTERM and waits up to grace, then SIGKILL. It returns the exit
// code, or -1 when the process had to be killed.
func (d *daemon) stop(grace time.Duration) int {
	if d.alive() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(grace):
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
			return -1
		}
	}
	if d.cmd.ProcessState == nil {
		return -1
	}
	return d.cmd.ProcessState.ExitCode()
}

// logs returns the output of every daemon of the site so far.
func (s *site) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, d := range s.daemons {
		data, _ := os.ReadFile(d.log)
		b.Write(data)
	}
	return b.String()
}

// keepLogsOnFailure copies the daemon logs of a failed test (of every test
// with E2E_KEEP_LOGS set) out of its temporary folder, for the bug report.
func (s *site) keepLogsOnFailure() {
	if !s.t.Failed() && os.Getenv("E2E_KEEP_LOGS") == "" {
		return
	}
	dst := filepath.Join(os.TempDir(), "natif-e2e-logs", strings.ReplaceAll(s.t.Name(), "/", "_")+"-"+time.Now().Format("150405"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.daemons {
		if b, err := os.ReadFile(d.log); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(d.log)), b, 0o644)
		}
	}
	s.t.Logf("daemon logs kept in %s", dst)
}

// logTail returns the last n lines of a daemon's log, for failure messages.
func (d *daemon) logTail(n int) string {
	data, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// crashMarks are what a Go process prints when it dies of a bug.
var crashMarks = []string{"panic:", "fatal error:", "DATA RACE", "goroutine 1 ["}

// checkNoCrash fails the test if any daemon log shows a panic.
func (s *site) checkNoCrash() {
	s.t.Helper()
	logs := s.logs()
	for _, m := range crashMarks {
		if i := strings.Index(logs, m); i >= 0 {
			s.t.Errorf("a daemon log shows %q:\n%s", m, excerpt(logs, i, 1500))
		}
	}
}

func excerpt(s string, i, n int) string {
	start, end := max(0, i-200), min(len(s), i+n)
	return s[start:end]
}

// waitFor polls cond until it holds or d passes; then it fails the test with
// what and the output of diag.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if diag != nil {
				msg = diag()
			}
			t.Fatalf("not within %v: %s\n%s", d, what, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pdf is a small, complete, unique PDF of about size bytes.
func pdf(salt string, size int) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n% " + salt + "\n1 0 obj << /Type /Page >> endobj\n")
	for b.Len() < size-40 {
		b.WriteString("% padding " + salt + " 0123456789abcdefghijklmnopqrstuvwxyz\n")
	}
	b.WriteString("trailer << /Root 1 0 R >>\n%%EOF\n")
	return b.Bytes()
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// writeBacklog writes n unique PDFs into the inbox in folders of 100, with an
// old modification time (a backlog present before the daemon starts), and
// returns their SHA-256 by path relative to the inbox.
func (s *site) writeBacklog(prefix string, n int) map[string]string {
	s.t.Helper()
	want := make(map[string]string, n)
	old := time.Now().Add(-time.Hour)
	for i := range n {
		rel := filepath.Join(fmt.Sprintf("%s-%02d", prefix, i/100), fmt.Sprintf("invoice-%05d.pdf", i))
		content := pdf(fmt.Sprintf("%s %d %s", prefix, i, randomHex(4)), 1500+i%700)
		s.writeFile(rel, content, old)
		want[rel] = sha(content)
	}
	return want
}

// writeFile writes content at rel in the inbox (atomically: a temporary name
// the watcher ignores, then a rename), with mtime when it is not zero.
func (s *site) writeFile(rel string, content []byte, mtime time.Time) string {
	s.t.Helper()
	p := filepath.Join(s.inbox, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(p), ".writing-"+randomHex(4)+".tmp")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// doneSidecar is the part of <file>.natif.json the suite checks.
type doneSidecar struct {
	File        string          `json:"file"`
	SHA256      string          `json:"sha256"`
	Size        int64           `json:"size"`
	DocumentID  string          `json:"document_id"`
	DuplicateOf string          `json:"duplicate_of"`
	Response    json.RawMessage `json:"response"`
}

type failedSidecar struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// files lists the regular files under dir (relative paths), leaving out the
// sidecars and the embedded queue's state folder.
func files(dir string) map[string]bool {
	out := map[string]bool{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if d.Name() == ".natif-uploader" {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasSuffix(rel, ".natif.json") || strings.HasSuffix(rel, ".error.json") || strings.HasSuffix(rel, ".extractions.json") {
			return nil
		}
		out[rel] = true
		return nil
	})
	return out
}

// waitInboxEmpty waits until no file of want is left in the inbox (each is
// then in done or failed, or lost, which the checks that follow find), while
// the daemon d keeps running, then gives the last archive a moment.
func (s *site) waitInboxEmpty(d *daemon, timeout time.Duration, want map[string]string) {
	s.t.Helper()
	left := func() int {
		n := 0
		for rel := range want {
			if _, err := os.Lstat(filepath.Join(s.inbox, rel)); err == nil {
				n++
			}
		}
		return n
	}
	waitFor(s.t, timeout, "every file out of the inbox", func() bool {
		if d != nil && !d.alive() {
			s.t.Fatalf("the daemon exited by itself: %v\n%s", d.err, d.logTail(30))
		}
		return left() == 0
	}, func() string {
		tail := ""
		if d != nil {
			tail = d.logTail(30)
		}
		return fmt.Sprintf("%d of %d still in the inbox, %d in done, %d in failed; %s\n%s",
			left(), len(want), s.countDone(want), len(files(s.failed)), s.statsLine(), tail)
	})
	time.Sleep(time.Second)
}

// countDone counts the files of want that are in done with their sidecar.
func (s *site) countDone(want map[string]string) int {
	n := 0
	for rel := range want {
		if _, err := os.Lstat(filepath.Join(s.done, rel+".natif.json")); err != nil {
			continue
		}
		if _, err := os.Lstat(filepath.Join(s.done, rel)); err == nil {
			n++
		}
	}
	return n
}

// checkAllDone asserts that every file of want is in done with a sidecar
// naming its content, that nothing is left in the inbox or in failed, and
// that no done file is marked a duplicate (all contents differ). It returns
// how many hidden temporary files a crash left in done (the README allows
// them: "a crash leaves at most a temporary file"); they are logged, not
// counted as errors.
func (s *site) checkAllDone(want map[string]string) (leftovers int) {
	s.t.Helper()
	missing := 0
	for rel, sum := range want {
		fp := filepath.Join(s.done, rel)
		b, err := os.ReadFile(fp + ".natif.json")
		if err != nil {
			if missing++; missing <= 5 {
				s.t.Errorf("%s: no sidecar in done: %v", rel, err)
			}
			continue
		}
		content, err := os.ReadFile(fp)
		if err != nil {
			if missing++; missing <= 5 {
				s.t.Errorf("%s: not in done: %v", rel, err)
			}
			continue
		}
		var sc doneSidecar
		if err := json.Unmarshal(b, &sc); err != nil {
			s.t.Errorf("%s: sidecar is not JSON: %v", rel, err)
			continue
		}
		if sc.SHA256 != sum || sha(content) != sum || sc.File != fp || sc.DocumentID == "" {
			s.t.Errorf("%s: sidecar %+v (content %s) does not match the file (want sha256 %s, file %s)", rel, sc, sha(content)[:12], sum, fp)
		}
		if sc.DuplicateOf != "" {
			s.t.Errorf("%s: marked a duplicate of %s, but its content is unique", rel, sc.DuplicateOf)
		}
	}
	if missing > 0 {
		s.t.Errorf("%d of %d files are not in done with their sidecar", missing, len(want))
	}
	if left := files(s.inbox); len(left) > 0 {
		s.t.Errorf("%d files left in the inbox, e.g. %v", len(left), firstKeys(left, 5))
	}
	if f := files(s.failed); len(f) > 0 {
		s.t.Errorf("%d files in failed, e.g. %v", len(f), firstKeys(f, 5))
		for rel := range f {
			b, _ := os.ReadFile(filepath.Join(s.failed, rel+".error.json"))
			s.t.Logf("failed/%s: %s", rel, b)
			break
		}
	}
	var extra []string
	for rel := range files(s.done) {
		if _, ok := want[rel]; ok {
			continue
		}
		if base := filepath.Base(rel); strings.HasPrefix(base, ".") && (strings.Contains(base, ".tmp-") || strings.Contains(base, ".copy-")) {
			leftovers++
			s.t.Logf("temporary file left in done by a crash: %q", rel)
			continue
		}
		extra = append(extra, rel)
		side, _ := os.ReadFile(filepath.Join(s.done, rel+".natif.json"))
		s.t.Logf("unexpected done/%s, sidecar: %s", rel, side)
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		s.t.Errorf("done holds %d files that were not written to the inbox: %q", len(extra), extra[:min(len(extra), 10)])
	}
	return leftovers
}

func firstKeys(m map[string]bool, n int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// uploadCheck compares the simulator's uploads with the expected contents:
// every expected content uploaded at least once, nothing else uploaded. It
// returns the number of extra (duplicate) uploads.
func (s *site) uploadCheck(want map[string]string) (duplicates int) {
	s.t.Helper()
	expected := map[string]bool{}
	for _, sum := range want {
		expected[sum] = true
	}
	by := s.sim.Stats().UploadsBySHA256
	for sum, n := range by {
		if !expected[sum] {
			s.t.Errorf("the simulator received content %s (%d times) that no test file holds", sum[:12], n)
		}
		duplicates += n - 1
	}
	for sum := range expected {
		if by[sum] == 0 {
			s.t.Errorf("content %s was never uploaded", sum[:12])
		}
	}
	return duplicates
}

// explainDuplicates logs, for a few contents uploaded more than once, the
// daemon log lines that name their file.
func (s *site) explainDuplicates(want map[string]string, max int) {
	s.t.Helper()
	byHash := map[string]string{}
	for rel, sum := range want {
		byHash[sum] = rel
	}
	logs := strings.Split(s.logs(), "\n")
	shown := 0
	for sum, n := range s.sim.Stats().UploadsBySHA256 {
		if n < 2 || shown >= max {
			continue
		}
		shown++
		rel := byHash[sum]
		var lines []string
		for _, l := range logs {
			if rel != "" && strings.Contains(l, rel) || strings.Contains(l, sum) {
				lines = append(lines, l)
			}
		}
		s.t.Logf("uploaded %d times: %s\n%s", n, rel, strings.Join(lines, "\n"))
	}
}

// httpGet fetches a URL on loopback and returns its status and body.
func httpGet(u string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// figures prints the scenario's measured figures on one parseable line.
func figures(t *testing.T, kv ...any) {
	t.Helper()
	var b strings.Builder
	b.WriteString("E2E-FIGURES: test=" + t.Name())
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if d, ok := v.(time.Duration); ok {
			v = fmt.Sprintf("%.1fs", d.Seconds())
		}
		fmt.Fprintf(&b, " %v=%v", kv[i], v)
	}
	t.Log(b.String())
}

// statsLine is the simulator's counters in one line, for failure messages.
func (s *site) statsLine() string {
	st := s.sim.Stats()
	st.UploadsBySHA256 = nil
	b, _ := json.Marshal(st)
	return string(b)
}
