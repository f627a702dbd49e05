//go:build integration

package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/internal/testredis"
	"github.com/natif-uploader/natif-uploader/worker"
)

// backlog writes n files of size bytes under dir, with an old mtime.
func backlog(tb testing.TB, dir string, n, size int) {
	tb.Helper()
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	old := time.Now().Add(-time.Hour)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i%200), fmt.Sprintf("f%06d.pdf", i))
		if i < 200 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		content := fmt.Appendf(nil, "%%PDF-1.4\n%%%08d\n", i)
		content = append(content, body[:size-len(content)-6]...)
		content = append(content, "%%EOF\n"...)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			tb.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
}

// peakRSS is the process's high-water resident set (VmHWM), in MB.
func peakRSS() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkScanEnqueueBacklog: `natif-uploader enqueue` over 100,000 files of
// 10 KB into a real Redis: files per second, and the heap it needed.
// go test -tags integration -run XXX -bench ScanEnqueueBacklog -benchtime 1x ./watcher/
func BenchmarkScanEnqueueBacklog(b *testing.B) {
	n := 100_000
	if s := os.Getenv("BACKLOG_FILES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	base := b.TempDir()
	inbox := filepath.Join(base, "inbox")
	backlog(b, inbox, n, 10_000)
	srv := testredis.Start(b, testredis.Options{})
	opt := asynq.RedisClientOpt{Addr: srv.Addr}
	client := asynq.NewClient(opt)
	defer client.Close()
	opts := worker.DefaultTaskOptions()
	o := Options{Inboxes: []string{inbox}, DoneDir: filepath.Join(base, "done"), FailedDir: filepath.Join(base, "failed"),
		Settle: time.Second, MaxFileSize: 100_000_000, Hashers: 8,
		Enqueuer: &worker.Enqueuer{Client: client, Options: opts}, Ledger: worker.NewRedisLedger(srv.Client(b), "natif-uploader:"),
		Logger: zerolog.Nop()}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		sum, err := Scan(context.Background(), o, []string{inbox}, nil)
		elapsed := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if sum.Queued+sum.AlreadyQueued != int64(n) {
			b.Fatalf("summary %+v, want %d files queued", sum, n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "files/s")
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapSys)/(1<<20), "heap-sys-MB")
	b.ReportMetric(peakRSS(), "peak-rss-MB")
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if info, err := insp.GetQueueInfo(opts.Queue); err != nil || info.Pending != n {
		b.Fatalf("queue holds %+v, %v; want %d pending", info, err, n)
	}
}

// BenchmarkWatcherBacklogMemory: the daemon's watcher started over 100,000
// waiting files, queueing them all into a real Redis; peak RSS of the process.
// go test -tags integration -run XXX -bench WatcherBacklogMemory -benchtime 1x ./watcher/
func BenchmarkWatcherBacklogMemory(b *testing.B) {
	n := 100_000
	if s := os.Getenv("BACKLOG_FILES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	base := b.TempDir()
	inbox := filepath.Join(base, "inbox")
	backlog(b, inbox, n, 10_000)
	srv := testredis.Start(b, testredis.Options{})
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr})
	defer client.Close()
	q := &countingEnqueuer{next: &worker.Enqueuer{Client: client, Options: worker.DefaultTaskOptions()}}
	b.ResetTimer()
	for range b.N {
		w := New(Options{Inboxes: []string{inbox}, DoneDir: filepath.Join(base, "done"), FailedDir: filepath.Join(base, "failed"),
			Settle: time.Second, MaxFileSize: 100_000_000, Mode: "events", Hashers: 8, Enqueuer: q, Logger: zerolog.Nop()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		start := time.Now()
		go func() { w.Run(ctx); close(done) }()
		for w.Counts()[Queued]+w.Counts()[AlreadyQueued] < int64(n) {
			time.Sleep(50 * time.Millisecond)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "files/s")
		cancel()
		<-done
	}
	b.ReportMetric(peakRSS(), "peak-rss-MB")
}

type countingEnqueuer struct {
	next Enqueuer
}

func (c *countingEnqueuer) Enqueue(ctx context.Context, p worker.Payload) error {
	return c.next.Enqueue(ctx, p)
}

// BenchmarkDetectionLatency: from the last write of a file to its enqueue,
// minus NATIF_SETTLE, p50 and p99 over 200 files written one after another.
// go test -tags integration -run XXX -bench DetectionLatency -benchtime 1x ./watcher/
func BenchmarkDetectionLatency(b *testing.B) {
	const files = 200
	settle := 500 * time.Millisecond
	for range b.N {
		base := b.TempDir()
		inbox := filepath.Join(base, "inbox")
		os.MkdirAll(inbox, 0o755)
		q := &timedQueue{at: map[string]time.Time{}}
		w := New(Options{Inboxes: []string{inbox}, DoneDir: filepath.Join(base, "done"), FailedDir: filepath.Join(base, "failed"),
			Settle: settle, MaxFileSize: 100_000_000, Mode: "events", Enqueuer: q, Logger: zerolog.Nop()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()
		time.Sleep(100 * time.Millisecond)
		written := map[string]time.Time{}
		for i := range files {
			p := filepath.Join(inbox, fmt.Sprintf("f%03d.pdf", i))
			os.WriteFile(p, fmt.Appendf(nil, "%%PDF-1.4\n%d\n%%%%EOF\n", i), 0o644)
			written[p] = time.Now()
			time.Sleep(20 * time.Millisecond)
		}
		deadline := time.Now().Add(30 * time.Second)
		for q.count() < files && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
		var lat []time.Duration
		q.mu.Lock()
		for p, t := range written {
			if at, ok := q.at[p]; ok {
				lat = append(lat, at.Sub(t)-settle)
			}
		}
		q.mu.Unlock()
		if len(lat) != files {
			b.Fatalf("%d of %d files queued", len(lat), files)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms-over-settle")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms-over-settle")
	}
}

type timedQueue struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (q *timedQueue) Enqueue(_ context.Context, p worker.Payload) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.at[p.Path] = time.Now()
	return nil
}

func (q *timedQueue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.at)
}
