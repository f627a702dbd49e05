//go:build e2e

package e2e

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

// crashFiles is the file count of the crash tests: E2E_FILES, default 2000.
func crashFiles(t *testing.T) int {
	if v := os.Getenv("E2E_FILES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 50 {
			t.Fatalf("E2E_FILES=%q: want a whole number of at least 50", v)
		}
		return n
	}
	return 2000
}

// TestCrashRedis: kill -9 of `run` three times during a backlog, with Redis.
func TestCrashRedis(t *testing.T) {
	t.Parallel()
	crashTest(t, true)
}

// TestCrashEmbedded: the same with the embedded queue (no REDIS_URL).
func TestCrashEmbedded(t *testing.T) {
	t.Parallel()
	crashTest(t, false)
}

// crashTest writes N files, starts `run`, kills it with SIGKILL three times
// at random points of the run (restarting it at once each time), and checks
// that every file ends in done with its sidecar, none is lost or left in the
// inbox, and natif received at most concurrency extra copies per crash.
func crashTest(t *testing.T, withRedis bool) {
	const (
		crashes     = 3
		concurrency = 8
	)
	n := crashFiles(t)
	begin := time.Now()
	// A little latency keeps several uploads in flight at every kill.
	s := newSite(t, siteOptions{redis: withRedis, appendOnly: withRedis,
		sim: fakeapi.Options{Faults: fakeapi.Faults{Latency: 15 * time.Millisecond}}})
	want := s.writeBacklog("crash", n)

	seed := uint64(time.Now().UnixNano())
	rng := mrand.New(mrand.NewPCG(seed, 7))
	// Kill points: random upload counts between 5 % and 85 % of the run,
	// plus a random delay of up to 300 ms after the count is reached.
	var points []int
	for range crashes {
		points = append(points, n/20+rng.IntN(n*80/100))
	}
	sort.Ints(points)
	t.Logf("seed %d, kills after %v uploads", seed, points)

	env := s.with(fmt.Sprintf("NATIF_CONCURRENCY=%d", concurrency))
	d := s.start(env, "run")
	var killedAt []int64
	for i, p := range points {
		waitFor(t, 3*time.Minute, fmt.Sprintf("crash %d: %d uploads", i+1, p), func() bool {
			if !d.alive() {
				t.Fatalf("the daemon exited by itself: %v\n%s", d.err, d.logTail(30))
			}
			// At least 5 % of the files between two kills.
			u := s.sim.Stats().Uploads
			return u >= int64(p) && (len(killedAt) == 0 || u >= killedAt[len(killedAt)-1]+int64(n/20))
		}, func() string { return s.statsLine() + "\n" + d.logTail(20) })
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		d.kill9()
		killedAt = append(killedAt, s.sim.Stats().Uploads)
		d = s.start(env, "run")
	}
	t.Logf("killed after %v uploads", killedAt)

	// With Redis, the tasks that were running in a killed process come back
	// only when asynq's recoverer finds their lease expired (30 s lease, 30 s
	// grace, checked every minute) and then after the retry delay (30 s
	// ±25 %): allow for that.
	s.waitInboxEmpty(d, 5*time.Minute, want)
	finished := time.Since(begin)
	time.Sleep(500 * time.Millisecond) // any straggling upload would show now
	if code := d.stop(20 * time.Second); code != 0 {
		t.Errorf("the last daemon did not stop cleanly on SIGTERM: exit %d\n%s", code, d.logTail(20))
	}

	leftovers := s.checkAllDone(want)
	dups := s.uploadCheck(want)
	if dups > concurrency*crashes {
		t.Errorf("%d duplicate uploads after %d crashes; at most %d (concurrency %d per crash) allowed", dups, crashes, concurrency*crashes, concurrency)
	}
	if testing.Verbose() || t.Failed() {
		s.explainDuplicates(want, 3)
	}
	s.checkNoCrash()
	st := s.sim.Stats()
	queue := "embedded"
	if withRedis {
		queue = "redis"
	}
	figures(t, "queue", queue, "files", n, "crashes", len(killedAt), "concurrency", concurrency,
		"duplicates", dups, "uploads", st.Uploads, "reuse_detections", st.ReuseDetections,
		"password_grants", st.PasswordGrantsOK, "done", s.countDone(want), "temp_leftovers", leftovers, "wall", finished)
}
