package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// restoreCase archives content as a failed file of inbox at rel and returns
// its payload.
func restoreCase(t *testing.T, inbox, failed, rel, content string) Payload {
	t.Helper()
	path := filepath.Join(inbox, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	p := Payload{Path: path, Root: inbox, Rel: rel, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
	if _, err := ArchiveFailed(path, failed, p, 415, "unsupported", 1); err != nil {
		t.Fatalf("ArchiveFailed: %v", err)
	}
	return p
}

func TestRestoreFailed(t *testing.T) {
	base := t.TempDir()
	inbox, failed := filepath.Join(base, "inbox"), filepath.Join(base, "failed")
	os.MkdirAll(inbox, 0o755)
	roots, _ := NewRoots(inbox)

	t.Run("back to its path, sidecar removed", func(t *testing.T) {
		p := restoreCase(t, inbox, failed, "a/b/invoice.pdf", "one")
		os.RemoveAll(filepath.Join(inbox, "a")) // its folder is gone too
		ok, err := roots.Restore(failed, p)
		if err != nil || !ok {
			t.Fatalf("Restore = %v, %v; want true", ok, err)
		}
		if b, _ := os.ReadFile(p.Path); string(b) != "one" {
			t.Errorf("restored content %q", b)
		}
		if exists(filepath.Join(failed, "a/b/invoice.pdf")) || exists(filepath.Join(failed, "a/b/invoice.pdf"+FailedSuffix)) {
			t.Errorf("file or sidecar left in failed")
		}
	})
	t.Run("the suffixed name of a clash, by content", func(t *testing.T) {
		first := restoreCase(t, inbox, failed, "clash.pdf", "first")
		second := restoreCase(t, inbox, failed, "clash.pdf", "second") // archived as clash-1.pdf
		if ok, err := roots.Restore(failed, second); err != nil || !ok {
			t.Fatalf("Restore = %v, %v; want true", ok, err)
		}
		if b, _ := os.ReadFile(second.Path); string(b) != "second" {
			t.Errorf("restored %q, want the second file's content", b)
		}
		if !exists(filepath.Join(failed, "clash.pdf")) {
			t.Errorf("the other file of that name left failed")
		}
		// The first cannot come back while a file holds its name.
		if ok, err := roots.Restore(failed, first); ok || err != nil {
			t.Errorf("Restore over an existing file = %v, %v; want false, nil", ok, err)
		}
		if b, _ := os.ReadFile(first.Path); string(b) != "second" {
			t.Errorf("the file in the inbox was replaced: %q", b)
		}
	})
	t.Run("a name too long for its sidecar", func(t *testing.T) {
		rel := strings.Repeat("n", 251) + ".pdf"
		p := restoreCase(t, inbox, failed, rel, "long")
		if ok, err := roots.Restore(failed, p); err != nil || !ok {
			t.Fatalf("Restore = %v, %v; want true", ok, err)
		}
		if !exists(p.Path) {
			t.Errorf("not restored")
		}
	})
	t.Run("not in failed", func(t *testing.T) {
		p := Payload{Path: filepath.Join(inbox, "never.pdf"), Root: inbox, Rel: "never.pdf", SHA256: strings.Repeat("a", 64)}
		if ok, err := roots.Restore(failed, p); ok || err != nil {
			t.Errorf("Restore = %v, %v; want false, nil", ok, err)
		}
	})
	t.Run("a root that is not configured", func(t *testing.T) {
		other := filepath.Join(base, "other")
		os.MkdirAll(other, 0o755)
		p := restoreCase(t, other, failed, "evil.pdf", "evil")
		if ok, err := roots.Restore(failed, p); ok || !errors.Is(err, ErrOutsideRoots) {
			t.Errorf("Restore = %v, %v; want ErrOutsideRoots", ok, err)
		}
		if exists(p.Path) || !exists(filepath.Join(failed, "evil.pdf")) {
			t.Errorf("the file moved")
		}
	})
	t.Run("a link on the way out of the root", func(t *testing.T) {
		p := restoreCase(t, inbox, failed, "out/x.pdf", "linked")
		outside := filepath.Join(base, "outside")
		os.MkdirAll(outside, 0o755)
		os.RemoveAll(filepath.Join(inbox, "out"))
		if err := os.Symlink(outside, filepath.Join(inbox, "out")); err != nil {
			t.Fatal(err)
		}
		if ok, err := roots.Restore(failed, p); ok || err == nil {
			t.Errorf("Restore through a link out = %v, %v; want an error", ok, err)
		}
		if exists(filepath.Join(outside, "x.pdf")) {
			t.Errorf("the file was moved out of the root")
		}
		if !exists(filepath.Join(failed, "out/x.pdf")) {
			t.Errorf("the file left failed")
		}
	})
}

// Across file systems (failed on tmpfs, the inbox on the test's disk) the
// file is copied back and removed from failed.
func TestRestoreFailedAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "natif-restore-")
	if err != nil {
		t.Skipf("no /dev/shm to put the failed folder on another file system: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	inbox := t.TempDir()
	var a, b syscall.Stat_t
	if syscall.Stat(shm, &a) != nil || syscall.Stat(inbox, &b) != nil || a.Dev == b.Dev {
		t.Skip("/dev/shm is on the same file system as the test's folder")
	}
	roots, _ := NewRoots(inbox)
	p := restoreCase(t, inbox, shm, "x/moved.pdf", "across")
	if ok, err := roots.Restore(shm, p); err != nil || !ok {
		t.Fatalf("Restore = %v, %v; want true", ok, err)
	}
	if b, _ := os.ReadFile(p.Path); string(b) != "across" {
		t.Errorf("restored content %q", b)
	}
	if exists(filepath.Join(shm, "x/moved.pdf")) {
		t.Errorf("the file is still in failed: two live copies")
	}
}
