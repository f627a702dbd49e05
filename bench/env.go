package main

// The benchmark's private world: a redis-server, the natif simulator, the product binary and
// the daemon processes it runs. Everything listens on 127.0.0.1 and every child gets an
// environment without proxies, so nothing reaches another machine.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// redisServer is a private redis-server without persistence.
type redisServer struct {
	cmd  *exec.Cmd
	URL  string
	Addr string
	c    *redis.Client
}

func startRedis(dir string) (*redisServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no",
			"--logfile", filepath.Join(dir, "redis.log"), "--maxmemory-policy", "noeviction")
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start redis-server (is it installed?): %w", err)
		}
		c := redis.NewClient(&redis.Options{Addr: addr})
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if err := c.Ping(context.Background()).Err(); err == nil {
				return &redisServer{cmd: cmd, URL: "redis://" + addr + "/0", Addr: addr, c: c}, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return nil, errors.New("redis-server did not answer PING (see its redis.log)")
}

func (r *redisServer) Flush() error { return r.c.FlushAll(context.Background()).Err() }

// Calls returns the calls per command from INFO commandstats.
func (r *redisServer) Calls() (map[string]int64, error) {
	s, err := r.c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return commandCalls(s)
}

func (r *redisServer) Version() string {
	s, err := r.c.Info(context.Background(), "server").Result()
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

func (r *redisServer) Stop() {
	r.c.Close()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}

// sim is the natif simulator (zero latency, no faults, no page limits) behind a wrapper that
// counts 201 answers to POST /documents/ and records when each upload's request arrived, by
// the file name of its part.
type sim struct {
	fa  *fakeapi.Server
	srv *httptest.Server
	URL string

	ok      atomic.Int64 // 201 answers to POST /documents/
	conns   atomic.Int64 // TCP connections accepted
	mu      sync.Mutex
	arrived map[string]time.Time // first arrival per file name
}

func newSim() *sim {
	s := &sim{fa: fakeapi.New(fakeapi.Options{
		AccessTTL:       time.Hour, // long runs must not depend on refreshes; they still work
		ProcessingDelay: 0,
		Faults:          fakeapi.Faults{Latency: 0},
	}), arrived: map[string]time.Time{}}
	s.srv = httptest.NewUnstartedServer(s) // 127.0.0.1:0
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

func (s *sim) Close() {
	s.srv.Close()
	s.fa.Close()
}

func (s *sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/documents/" {
		s.fa.ServeHTTP(w, r)
		return
	}
	t := time.Now()
	pr := &prefixReader{r: r.Body}
	r.Body = pr
	sw := &statusWriter{ResponseWriter: w}
	s.fa.ServeHTTP(sw, r)
	if name := multipartFileName(pr.buf); name != "" {
		s.mu.Lock()
		if _, seen := s.arrived[name]; !seen {
			s.arrived[name] = t
		}
		s.mu.Unlock()
	}
	if sw.status == http.StatusCreated {
		s.ok.Add(1)
	}
}

func (s *sim) Arrivals() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.arrived))
	for k, v := range s.arrived {
		out[k] = v
	}
	return out
}

// prefixReader keeps the first 512 bytes read through it: enough for the first part header.
type prefixReader struct {
	r   io.ReadCloser
	buf []byte
}

func (p *prefixReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if room := 512 - len(p.buf); room > 0 && n > 0 {
		p.buf = append(p.buf, b[:min(n, room)]...)
	}
	return n, err
}

func (p *prefixReader) Close() error { return p.r.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// buildProduct builds the natif-uploader binary from the product module (the parent folder).
func buildProduct(productDir, out string) error {
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		cmd := exec.Command("go", "build", "-o", out, "./cmd/natif-uploader")
		cmd.Dir = productDir
		b, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		// Others edit the product concurrently: a broken build may be momentary.
		lastErr = fmt.Errorf("go build ./cmd/natif-uploader: %w\n%s", err, b)
		if attempt < 3 {
			fmt.Fprintf(os.Stderr, "product build failed (attempt %d), retrying in 60 s:\n%s\n", attempt, b)
			time.Sleep(60 * time.Second)
		}
	}
	return lastErr
}

// childEnv is this process's environment without any natif, Redis or proxy setting, plus vars.
func childEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		lk := strings.ToLower(k)
		if strings.HasPrefix(k, "NATIF_") || k == "REDIS_URL" || strings.HasSuffix(lk, "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "NO_PROXY=*", "no_proxy=*")
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// folders of one daemon configuration.
type folders struct {
	Inbox, Done, Failed string
}

func newFolders(base string) (folders, error) {
	f := folders{Inbox: filepath.Join(base, "inbox"), Done: filepath.Join(base, "done"), Failed: filepath.Join(base, "failed")}
	for _, d := range []string{f.Inbox, f.Done, f.Failed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return f, err
		}
	}
	return f, nil
}

// productEnv is the configuration of every product process of the benchmark.
func (b *bench) productEnv(f folders, concurrency int, metricsAddr string) map[string]string {
	return map[string]string{
		"NATIF_BASE_URL":      b.sim.URL,
		"NATIF_USERNAME":      "demo",
		"NATIF_PASSWORD":      "demo",
		"REDIS_URL":           b.redis.URL,
		"NATIF_INBOX":         f.Inbox,
		"NATIF_DONE_DIR":      f.Done,
		"NATIF_FAILED_DIR":    f.Failed,
		"NATIF_CONCURRENCY":   strconv.Itoa(concurrency),
		"NATIF_SETTLE":        b.cfg.Settle.String(),
		"NATIF_MAX_FILE_SIZE": "100MB", // 100,000,000 bytes: the simulator's limit too
		"NATIF_METRICS_ADDR":  metricsAddr,
		"NATIF_LOG_FORMAT":    "json",
		"NATIF_LOG_LEVEL":     b.cfg.LogLevel,
	}
}

// daemon is a running run or work process.
type daemon struct {
	cmd     *exec.Cmd
	pid     int
	logPath string
	metrics string
	exited  chan struct{}
	waitErr error
}

func (b *bench) startDaemon(name, command string, f folders, concurrency int) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	metrics := fmt.Sprintf("127.0.0.1:%d", port)
	logPath := filepath.Join(b.logDir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.bin, command)
	cmd.Dir = b.tmp // no configs/natif-uploader.yaml here
	cmd.Env = childEnv(b.productEnv(f, concurrency, metrics))
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	d := &daemon{cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, metrics: metrics, exited: make(chan struct{})}
	go func() { d.waitErr = cmd.Wait(); lf.Close(); close(d.exited) }()
	// Ready: /readyz answers 200, and the log says the watcher (run) or the workers (work) started.
	want := "workers started"
	if command == "run" {
		want = "watching inbox"
	}
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	ready := false
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("%s %s exited at start: %v\n%s", name, command, d.waitErr, tail(logPath, 20))
		default:
		}
		if !ready {
			if resp, err := client.Get("http://" + metrics + "/readyz"); err == nil {
				ready = resp.StatusCode == http.StatusOK
				resp.Body.Close()
			}
		}
		if ready {
			if lb, err := os.ReadFile(logPath); err == nil && bytes.Contains(lb, []byte(want)) {
				return d, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Stop()
	return nil, fmt.Errorf("%s %s not ready in 30 s\n%s", name, command, tail(logPath, 20))
}

// CPU returns the process's user+system CPU time so far.
func (d *daemon) CPU() (time.Duration, error) {
	u, s, err := d.CPUSplit()
	return u + s, err
}

// CPUSplit returns the process's user and system CPU time so far.
func (d *daemon) CPUSplit() (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.pid))
	if err != nil {
		return 0, 0, err
	}
	u, s, err := procCPUTicks(string(b))
	if err != nil {
		return 0, 0, err
	}
	tick := time.Second / time.Duration(clockTicks)
	return time.Duration(u) * tick, time.Duration(s) * tick, nil
}

// PeakRSS returns VmHWM in bytes.
func (d *daemon) PeakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid))
	if err != nil {
		return 0, err
	}
	kb, err := procStatusKB(string(b), "VmHWM")
	return kb * 1024, err
}

// Stop sends SIGTERM and waits (SIGKILL after 60 s).
func (d *daemon) Stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// clockTicks is USER_HZ (getconf CLK_TCK; 100 on every Linux this runs on).
var clockTicks = func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}()

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
