package queue

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"

	"github.com/natif-uploader/natif-uploader/redact"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		desc    string
		url     string
		wantErr string
	}{
		{"unset", "", "no REDIS_URL"},
		{"plain", "redis://127.0.0.1:6379/3", ""},
		{"tls", "rediss://:pw@127.0.0.1:6380/0", ""},
		{"socket", "redis-socket:///run/redis.sock", ""},
		{"sentinel", "redis-sentinel://127.0.0.1:26379?master=mymaster", ""},
		{"bad scheme keeps the password out", "http://:hunter2@127.0.0.1:6379", "not a Redis URL"},
	}
	for _, tt := range tests {
		_, err := Open(redact.NewSecretURL(tt.url))
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: Open(%q) = %v, want nil", tt.desc, tt.url, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Open(%q) = %v, want an error with %q", tt.desc, tt.url, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %q shows the password", tt.desc, err)
		}
	}
	if _, err := Open(redact.NewSecretURL("")); !errors.Is(err, ErrNoRedis) {
		t.Errorf("Open(unset) = %v, want ErrNoRedis", err)
	}
}

func TestPingMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	opt, err := Open(redact.NewSecretURL("redis://" + mr.Addr() + "/0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Ping(context.Background(), opt, time.Second); err != nil {
		t.Errorf("Ping(running) = %v, want nil", err)
	}
	mr.Close()
	if err := Ping(context.Background(), opt, time.Second); err == nil {
		t.Errorf("Ping(stopped) = nil, want an error")
	}
}

func TestPingNobodyListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	opt, _ := Open(redact.NewSecretURL("redis://" + addr))
	err = Ping(context.Background(), opt, 500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "redis unreachable") {
		t.Errorf("Ping(closed port) = %v, want redis unreachable", err)
	}
}

// The design deduplicates by task ID; the queue wiring must surface a second
// enqueue of one ID as asynq.ErrTaskIDConflict.
func TestTaskIDConflictMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	opt, _ := Open(redact.NewSecretURL("redis://" + mr.Addr()))
	c := asynq.NewClient(opt)
	defer c.Close()
	task := asynq.NewTask("document:upload", []byte(`{}`))
	if _, err := c.Enqueue(task, asynq.TaskID("sha-1"), asynq.Queue("natif")); err != nil {
		t.Fatalf("first enqueue: %v", err)
	}
	if _, err := c.Enqueue(task, asynq.TaskID("sha-1"), asynq.Queue("natif")); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("second enqueue of one ID = %v, want ErrTaskIDConflict", err)
	}
}
