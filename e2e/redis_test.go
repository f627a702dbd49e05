//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

// TestRedisRestart: Redis (AOF on) is stopped mid-run for a few seconds and
// started again on the same port; the same daemon process reconnects by
// itself and finishes; nothing is lost.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	const (
		n           = 600
		concurrency = 8
		down        = 3 * time.Second
	)
	begin := time.Now()
	s := newSite(t, siteOptions{redis: true, appendOnly: true,
		sim: fakeapi.Options{Faults: fakeapi.Faults{Latency: 30 * time.Millisecond}}})
	want := s.writeBacklog("restart", n)
	d := s.start(s.with(fmt.Sprintf("NATIF_CONCURRENCY=%d", concurrency)), "run")
	pid := d.cmd.Process.Pid

	waitFor(t, 2*time.Minute, "a quarter of the files uploaded", func() bool {
		return s.sim.Stats().Uploads >= n/4
	}, func() string { return s.statsLine() + "\n" + d.logTail(20) })
	before := s.sim.Stats().Uploads
	s.redis.Stop()
	stoppedAt := time.Now()
	time.Sleep(down)
	if err := s.redis.Restart(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
	t.Logf("Redis down %.1fs, after %d uploads", time.Since(stoppedAt).Seconds(), before)
	if !d.alive() {
		t.Fatalf("the daemon exited while Redis was down: %v\n%s", d.err, d.logTail(30))
	}
	restarted := time.Now()
	atRestart := s.sim.Stats().Uploads
	waitFor(t, 2*time.Minute, "uploads resumed after the restart", func() bool {
		return s.sim.Stats().Uploads > atRestart+int64(concurrency)
	}, func() string { return s.statsLine() + "\n" + d.logTail(30) })
	resumedAfter := time.Since(restarted)

	s.waitInboxEmpty(d, 4*time.Minute, want)
	finished := time.Since(begin)
	if !d.alive() || d.cmd.Process.Pid != pid {
		t.Errorf("the daemon did not survive the Redis restart")
	}
	if code := d.stop(20 * time.Second); code != 0 {
		t.Errorf("the daemon did not stop cleanly on SIGTERM: exit %d\n%s", code, d.logTail(20))
	}
	s.checkAllDone(want)
	dups := s.uploadCheck(want)
	if dups > concurrency {
		t.Errorf("%d duplicate uploads after one Redis restart; at most %d (the uploads in flight) allowed", dups, concurrency)
	}
	s.checkNoCrash()
	st := s.sim.Stats()
	figures(t, "files", n, "redis_down", down, "uploads_before_stop", before, "uploads_while_down", atRestart-before, "resumed_after", resumedAfter,
		"duplicates", dups, "uploads", st.Uploads, "reuse_detections", st.ReuseDetections,
		"password_grants", st.PasswordGrantsOK, "done", s.countDone(want), "wall", finished)
}
