// Package testredis starts a private redis-server for tests: on a free
// loopback port, in the test's temporary folder, stopped when the test ends.
// Tests that need Redis use a real server, never only a stand-in.
package testredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"
)

// ErrNoServer is the one-line reason a test cannot run without redis-server.
var ErrNoServer = errors.New("redis-server not found on PATH: install it (Debian: apt-get install redis-server) to run the integration tests")

// Options tune the server.
type Options struct {
	// Password sets requirepass.
	Password string
	// AppendOnly turns AOF on (fsync every write), so Restart keeps the data.
	AppendOnly bool
}

// Server is one running redis-server.
type Server struct {
	Addr string // 127.0.0.1:port
	Dir  string
	opts Options
	cmd  *exec.Cmd
	done chan error
}

// Start starts a server for t and registers its stop with t.Cleanup. It fails
// the test with ErrNoServer when redis-server is not installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal(ErrNoServer)
	}
	s := &Server{Dir: t.TempDir(), opts: opts}
	var err error
	// A free port can be taken between our probe and redis' bind: try again.
	for range 5 {
		if err = s.start(""); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL is the redis:// URL of the server, with its password when it has one.
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", s.opts.Password, s.Addr)
	}
	return "redis://" + s.Addr + "/0"
}

// Client returns a go-redis client for the server, closed at the test's end.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s). Idempotent.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart stops the server and starts it again on the same port and folder,
// as an operator restarting Redis would.
func (s *Server) Restart() error {
	s.Stop()
	var err error
	for range 50 { // the port may linger a moment after the stop
		if err = s.start(s.Addr); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (s *Server) start(addr string) error {
	if addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr = l.Addr().String()
		_ = l.Close()
	}
	_, port, _ := net.SplitHostPort(addr)
	args := []string{
		"--bind", "127.0.0.1", "--port", port, "--dir", s.Dir,
		"--save", "", "--daemonize", "no", "--protected-mode", "yes",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s.cmd, s.done, s.Addr = cmd, done, addr

	c := redis.NewClient(&redis.Options{Addr: addr, Password: s.opts.Password, MaxRetries: -1})
	defer c.Close()
	b := backoff.WithMaxRetries(backoff.NewConstantBackOff(20*time.Millisecond), 250)
	err := backoff.Retry(func() error {
		select {
		case err := <-done:
			done <- err
			return backoff.Permanent(fmt.Errorf("redis-server exited: %v; log: %s", err, s.logTail()))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	}, b)
	if err != nil {
		s.Stop()
		return err
	}
	return nil
}

func (s *Server) logTail() string {
	f, err := os.Open(filepath.Join(s.Dir, "redis.log"))
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}
