//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the unprivileged user the daemons run as when the suite runs as
// root: root reads a chmod 000 file anyway (CAP_DAC_OVERRIDE), so only an
// ordinary user can meet a file it may not read.
const nobody = 65534

// runAsNobody makes the site's daemons run as nobody: its folder tree is
// given to nobody and the folders above it made traversable.
func (s *site) runAsNobody() {
	s.t.Helper()
	err := filepath.Walk(s.dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	})
	if err != nil {
		s.t.Fatal(err)
	}
	for d := s.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			s.t.Fatal(err)
		}
	}
	s.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
}

// TestUnreadableFile: a file the daemon's user may not read (chmod 000) is
// never uploaded and never lost; it is looked at again (a copy tool may still
// set its mode) and, unchanged for NATIF_INCOMPLETE_TIMEOUT, it goes to
// failed with the reason, while a readable file beside it is uploaded. When
// its mode is fixed in time, it is uploaded like any other.
func TestUnreadableFile(t *testing.T) {
	t.Parallel()
	s := newSite(t, siteOptions{})
	user := "the current user"
	if os.Geteuid() == 0 {
		s.runAsNobody()
		user = "nobody (the suite runs as root)"
	}
	chown := func(p string) {
		if s.cred != nil {
			if err := os.Chown(p, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := time.Now().Add(-time.Hour)
	good := pdf("readable "+randomHex(4), 1200)
	locked := pdf("unreadable "+randomHex(4), 1100)
	fixed := pdf("unreadable, then fixed "+randomHex(4), 1300)
	for rel, b := range map[string][]byte{"good.pdf": good, "locked.pdf": locked, "fixed.pdf": fixed} {
		p := s.writeFile(rel, b, old)
		chown(p)
		if rel != "good.pdf" {
			if err := os.Chmod(p, 0o000); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := s.start(s.with("NATIF_INCOMPLETE_TIMEOUT=8s"), "run")

	waitFor(t, 30*time.Second, "good.pdf in done", func() bool {
		_, err := os.Stat(filepath.Join(s.done, "good.pdf.natif.json"))
		return err == nil
	}, func() string { return d.logTail(20) })
	// The operator fixes one file's mode before the timeout.
	if err := os.Chmod(filepath.Join(s.inbox, "fixed.pdf"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "locked.pdf in failed, fixed.pdf in done", func() bool {
		_, e1 := os.Stat(filepath.Join(s.failed, "locked.pdf.error.json"))
		_, e2 := os.Stat(filepath.Join(s.done, "fixed.pdf.natif.json"))
		return e1 == nil && e2 == nil
	}, func() string { return s.statsLine() + "\n" + d.logTail(20) })

	b, err := os.ReadFile(filepath.Join(s.failed, "locked.pdf.error.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sc failedSidecar
	if err := json.Unmarshal(b, &sc); err != nil || !strings.Contains(sc.Error, "permission denied") {
		t.Errorf("failed/locked.pdf.error.json = %s (%v); want the reason naming the permission", b, err)
	}
	if _, err := os.Lstat(filepath.Join(s.failed, "locked.pdf")); err != nil {
		t.Errorf("locked.pdf is not in failed beside its reason: %v", err)
	}
	by := s.sim.Stats().UploadsBySHA256
	if by[sha(locked)] != 0 || by[sha(good)] != 1 || by[sha(fixed)] != 1 {
		t.Errorf("uploads: locked %d, good %d, fixed %d; want 0, 1, 1", by[sha(locked)], by[sha(good)], by[sha(fixed)])
	}
	if left := files(s.inbox); len(left) != 0 {
		t.Errorf("files left in the inbox: %v", firstKeys(left, 5))
	}
	// Looked at again, but no warning storm: one warning per file, not one a second.
	if n := strings.Count(s.logs(), "cannot queue the file yet"); n > 2 {
		t.Errorf("%d 'cannot queue the file yet' warnings for two unreadable files; want the one 'cannot read the file' warning each", n)
	}
	if !d.alive() {
		t.Fatalf("the daemon exited: %v\n%s", d.err, d.logTail(20))
	}
	s.checkNoCrash()
	figures(t, "user", user, "unreadable_failed", 1, "fixed_uploaded", by[sha(fixed)], "uploads", s.sim.Stats().Uploads)
}
