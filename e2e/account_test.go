//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

// TestWrongPasswordThenSIGHUP (scenario 4a): the password file holds a wrong
// password. natif gets one password grant and no more (README rule I4: no
// password is sent again until it changes; the back-off between password
// grants is at least 5 s, so the window below would allow at most a few if
// the rule were only a back-off), the account is not locked, no file fails,
// /readyz is not ready. The right password is written to the file and the
// daemon gets SIGHUP: uploads resume and every file reaches done.
func TestWrongPasswordThenSIGHUP(t *testing.T) {
	t.Parallel()
	const (
		n      = 20
		window = 15 * time.Second
	)
	begin := time.Now()
	s := newSite(t, siteOptions{redis: true, metrics: true, passwordFile: true})
	s.writePasswordFile("wrong-" + randomHex(8))
	want := s.writeBacklog("cred", n)
	d := s.start(s.env, "run")

	waitFor(t, 30*time.Second, "a password grant refused", func() bool {
		return s.sim.Stats().PasswordGrantsFailed >= 1
	}, func() string { return s.statsLine() + "\n" + d.logTail(20) })
	rejectedAt := time.Now()
	var ready int
	var body string
	waitFor(t, 15*time.Second, "/readyz not ready", func() bool {
		var err error
		ready, body, err = httpGet("http://" + s.metricsAddr + "/readyz")
		return err == nil && ready != 200
	}, func() string { return fmt.Sprintf("/readyz %d %s", ready, body) })
	if !strings.Contains(body, "credentials") {
		t.Errorf("/readyz says %q; want the rejected credentials named", body)
	}
	// Watch natif for a while: no more password grants, no lockout.
	time.Sleep(window - time.Since(rejectedAt))
	st := s.sim.Stats()
	sent := s.front.passwordRequests.Load()
	if sent != 1 || st.PasswordGrantsFailed != 1 {
		t.Errorf("%d password grants sent (%d refused) within %v of the rejection; want exactly 1", sent, st.PasswordGrantsFailed, window)
	}
	if st.Lockouts != 0 || st.LockedRejections != 0 {
		t.Errorf("the account was locked: %d lockouts, %d locked rejections", st.Lockouts, st.LockedRejections)
	}
	if f := files(s.failed); len(f) != 0 {
		t.Errorf("files failed because of the credentials: %v", firstKeys(f, 5))
	}
	if st.Uploads != 0 || len(files(s.done)) != 0 {
		t.Errorf("%d uploads, %d files in done with a wrong password", st.Uploads, len(files(s.done)))
	}
	if left := files(s.inbox); len(left) != n {
		t.Errorf("%d of %d files in the inbox while the credentials are rejected", len(left), n)
	}
	if code, b, _ := httpGet("http://" + s.metricsAddr + "/readyz"); code == 200 {
		t.Errorf("/readyz answers 200 with rejected credentials: %s", b)
	}
	if !d.alive() {
		t.Fatalf("the daemon exited on rejected credentials: %v\n%s", d.err, d.logTail(20))
	}

	// The operator fixes the password and sends SIGHUP.
	s.writePasswordFile(s.password)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hup := time.Now()
	s.waitInboxEmpty(d, 3*time.Minute, want)
	resumed := time.Since(hup)
	// SIGHUP tries the fix at once and releases the uploads held for the
	// account; without that they wait for the minute-long probe.
	if resumed > 30*time.Second {
		t.Errorf("the inbox emptied %v after SIGHUP; want well within the 1 min probe wait", resumed.Round(time.Second))
	}
	var readyAfter int
	waitFor(t, 15*time.Second, "/readyz ready after the fix", func() bool {
		readyAfter, _, _ = httpGet("http://" + s.metricsAddr + "/readyz")
		return readyAfter == 200
	}, nil)
	if code := d.stop(20 * time.Second); code != 0 {
		t.Errorf("the daemon did not stop cleanly on SIGTERM: exit %d", code)
	}
	s.checkAllDone(want)
	dups := s.uploadCheck(want)
	st = s.sim.Stats()
	if st.PasswordGrantsFailed != 1 || st.Lockouts != 0 || st.PasswordGrantsOK < 1 {
		t.Errorf("after the fix: %d refused grants, %d lockouts, %d accepted; want 1, 0, at least 1", st.PasswordGrantsFailed, st.Lockouts, st.PasswordGrantsOK)
	}
	if dups != 0 {
		t.Errorf("%d duplicate uploads", dups)
	}
	for _, secret := range []string{s.password} {
		if strings.Contains(s.logs(), secret) {
			t.Errorf("the daemon log holds the password")
		}
	}
	s.checkNoCrash()
	figures(t, "files", n, "password_requests", s.front.passwordRequests.Load(), "password_grants_failed", st.PasswordGrantsFailed,
		"password_grants_ok", st.PasswordGrantsOK, "lockouts", st.Lockouts, "failed_files", len(files(s.failed)),
		"readyz_while_rejected", ready, "resumed_after_sighup", resumed, "duplicates", dups, "wall", time.Since(begin))
}

// TestQuotaExhausted (scenario 4b): natif answers 402 to every upload (the
// plan's quota). The queue pauses (embedded queue here), no file fails,
// /readyz is not ready, natif is not hammered; when the quota returns the
// queue resumes by itself (the probe after the pause) and every file ends in
// done.
func TestQuotaExhausted(t *testing.T) {
	t.Parallel()
	const (
		n           = 30
		concurrency = 4
		window      = 10 * time.Second
	)
	begin := time.Now()
	s := newSite(t, siteOptions{metrics: true, sim: fakeapi.Options{Faults: fakeapi.Faults{QuotaExhausted: true}}})
	want := s.writeBacklog("quota", n)
	d := s.start(s.with(fmt.Sprintf("NATIF_CONCURRENCY=%d", concurrency)), "run")

	waitFor(t, 30*time.Second, "a 402 from natif", func() bool {
		return s.sim.Stats().QuotaRejected >= 1
	}, func() string { return s.statsLine() + "\n" + d.logTail(20) })
	pausedAt := time.Now()
	var ready int
	var body string
	waitFor(t, 15*time.Second, "/readyz not ready", func() bool {
		var err error
		ready, body, err = httpGet("http://" + s.metricsAddr + "/readyz")
		return err == nil && ready != 200
	}, func() string { return fmt.Sprintf("/readyz %d %s", ready, body) })
	if !strings.Contains(body, "paused") {
		t.Errorf("/readyz says %q; want the pause named", body)
	}
	time.Sleep(window - time.Since(pausedAt))
	st := s.sim.Stats()
	// Each upload in flight when the first 402 came may get its own 402;
	// after that the queue is paused.
	if st.QuotaRejected > concurrency {
		t.Errorf("%d uploads answered 402 within %v; the pause should stop them after the ones in flight (%d)", st.QuotaRejected, window, concurrency)
	}
	if f := files(s.failed); len(f) != 0 {
		t.Errorf("files failed because of the quota: %v", firstKeys(f, 5))
	}
	if left := files(s.inbox); len(left) != n {
		t.Errorf("%d of %d files in the inbox during the pause", len(left), n)
	}
	if !d.alive() {
		t.Fatalf("the daemon exited on 402: %v\n%s", d.err, d.logTail(20))
	}
	quotaDuringPause := st.QuotaRejected

	s.sim.SetFaults(fakeapi.Faults{}) // the quota is back
	back := time.Now()
	s.waitInboxEmpty(d, 3*time.Minute, want)
	resumed := time.Since(back)
	var readyAfter int
	waitFor(t, 15*time.Second, "/readyz ready after the quota returned", func() bool {
		readyAfter, _, _ = httpGet("http://" + s.metricsAddr + "/readyz")
		return readyAfter == 200
	}, nil)
	if code := d.stop(20 * time.Second); code != 0 {
		t.Errorf("the daemon did not stop cleanly on SIGTERM: exit %d", code)
	}
	s.checkAllDone(want)
	dups := s.uploadCheck(want)
	if dups != 0 {
		t.Errorf("%d duplicate uploads", dups)
	}
	s.checkNoCrash()
	st = s.sim.Stats()
	figures(t, "files", n, "quota_402", st.QuotaRejected, "quota_402_first_10s", quotaDuringPause, "failed_files", len(files(s.failed)),
		"readyz_while_paused", ready, "resumed_after_quota_back", resumed, "paused_total", back.Sub(pausedAt)+resumed,
		"duplicates", dups, "wall", time.Since(begin))
}
