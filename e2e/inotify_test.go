//go:build e2e

package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// accessWatch records, with inotify, every open and read of a file in one
// folder, by any process: the proof that the daemons never read a file
// outside their roots (or one they must not read at all).
type accessWatch struct {
	fd   int
	mu   sync.Mutex
	seen []string // "name: OPEN|ACCESS"
	stop chan struct{}
	done chan struct{}
}

func watchAccess(t *testing.T, dir string) *accessWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_OPEN|unix.IN_ACCESS); err != nil {
		unix.Close(fd)
		t.Fatalf("inotify watch %s: %v", dir, err)
	}
	a := &accessWatch{fd: fd, stop: make(chan struct{}), done: make(chan struct{})}
	go a.loop()
	t.Cleanup(func() { a.events() })
	return a
}

func (a *accessWatch) loop() {
	defer close(a.done)
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-a.stop:
			return
		default:
		}
		n, err := unix.Read(a.fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(a.fd), Events: unix.POLLIN}}, 100)
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			l := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+l]
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			off += unix.SizeofInotifyEvent + l
			if len(name) == 0 {
				continue // the folder itself (listed, not a file read)
			}
			what := "OPEN"
			if mask&unix.IN_ACCESS != 0 {
				what = "ACCESS"
			}
			a.mu.Lock()
			a.seen = append(a.seen, fmt.Sprintf("%s: %s", name, what))
			a.mu.Unlock()
		}
	}
}

// events stops the watch (idempotent) and returns what it saw.
func (a *accessWatch) events() []string {
	select {
	case <-a.stop:
	default:
		close(a.stop)
		<-a.done
		unix.Close(a.fd)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}
