package queue

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"golang.org/x/sys/unix"
)

// Embedded is the queue used when REDIS_URL is unset: an in-memory Redis
// inside the daemon, on a loopback port with a random password. Other
// commands on the same machine (enqueue, status, retry) find it through a
// file in the state folder, readable by this user only.
//
// It holds its tasks in memory: after a restart the watcher's start-up scan
// queues every file still in an inbox again, and the file ledger keeps what
// was uploaded from being uploaded twice.
type Embedded struct {
	srv  *miniredis.Miniredis
	dir  string
	lock *os.File
}

// embeddedInfo is the state file other processes read.
type embeddedInfo struct {
	Addr     string `json:"addr"`
	Password string `json:"password"`
	PID      int    `json:"pid"`
}

// ErrNoEmbedded is returned when no daemon serves an embedded queue.
var ErrNoEmbedded = errors.New("no queue: REDIS_URL is unset and no natif-uploader run or work serves the embedded queue on this machine; start one, or set REDIS_URL")

func infoPath(dir string) string { return filepath.Join(dir, "queue.json") }

// StartEmbedded starts the embedded queue with its state in dir. One daemon
// per state folder: a second one fails with a message saying so.
func StartEmbedded(dir string) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another natif-uploader serves the embedded queue of %s; to run several processes, set REDIS_URL", dir)
	}
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		lock.Close()
		return nil, err
	}
	srv := miniredis.NewMiniRedis()
	srv.RequireAuth(hex.EncodeToString(pw))
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		lock.Close()
		return nil, err
	}
	e := &Embedded{srv: srv, dir: dir, lock: lock}
	b, _ := json.Marshal(embeddedInfo{Addr: srv.Addr(), Password: hex.EncodeToString(pw), PID: os.Getpid()})
	tmp := infoPath(dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		e.Close()
		return nil, err
	}
	if err := os.Rename(tmp, infoPath(dir)); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// ConnOpt is how this process reaches the embedded queue.
func (e *Embedded) ConnOpt() asynq.RedisConnOpt {
	return asynq.RedisClientOpt{Addr: e.srv.Addr(), Password: e.password()}
}

func (e *Embedded) password() string {
	b, _ := os.ReadFile(infoPath(e.dir))
	var info embeddedInfo
	_ = json.Unmarshal(b, &info)
	return info.Password
}

// Close stops the queue and removes its state file.
func (e *Embedded) Close() {
	os.Remove(infoPath(e.dir))
	e.srv.Close()
	e.lock.Close()
}

// ConnectEmbedded finds the embedded queue a daemon on this machine serves
// from dir, or returns ErrNoEmbedded.
func ConnectEmbedded(dir string) (asynq.RedisConnOpt, error) {
	// A daemon killed with -9 leaves its state file; its lock died with it.
	if lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0); err == nil {
		free := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
		lock.Close()
		if free {
			return nil, ErrNoEmbedded
		}
	}
	b, err := os.ReadFile(infoPath(dir))
	if err != nil {
		return nil, ErrNoEmbedded
	}
	var info embeddedInfo
	if err := json.Unmarshal(b, &info); err != nil || info.Addr == "" {
		return nil, ErrNoEmbedded
	}
	return asynq.RedisClientOpt{Addr: info.Addr, Password: info.Password}, nil
}
