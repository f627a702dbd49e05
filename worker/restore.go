package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Restore moves the file that p's task left in failedDir back to p.Path, for
// `retry`, and removes its error sidecar. It finds the file as archive put it
// there (ArchiveRel, then the numeric suffixes) with a sidecar for the same
// content. It reports false, with no error, when there is nothing to move:
// the file is not in failedDir, or a file is at p.Path already.
//
// The payload comes from Redis, so it is held to what the worker holds it to:
// a configured root, a relative path inside it, no symbolic link on the way
// out of it. The file is moved beneath the opened root (renameat2 with
// RENAME_NOREPLACE through the folder's descriptor; across file systems a
// synced copy linked in place, then the original removed), so it can never
// land outside the root nor replace a file.
func (r Roots) Restore(failedDir string, p Payload) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, err
	}
	if !r.has(p.Root) {
		return false, fmt.Errorf("%w: root %q is not a configured inbox or allowed root", ErrOutsideRoots, p.Root)
	}
	src, ok := findFailed(failedDir, p)
	if !ok {
		return false, nil
	}
	root, err := os.OpenRoot(p.Root)
	if err != nil {
		return false, fmt.Errorf("%w: root %s: %w", ErrRootUnavailable, p.Root, err)
	}
	defer root.Close()
	if _, err := root.Lstat(p.Rel); err == nil {
		return false, nil // a file is there already
	}
	dirRel := filepath.Dir(p.Rel)
	if err := root.MkdirAll(dirRel, 0o755); err != nil {
		return false, rootErr(p, err)
	}
	dir, err := root.Open(dirRel)
	if err != nil {
		return false, rootErr(p, err)
	}
	defer dir.Close()
	base := filepath.Base(p.Rel)
	err = unix.Renameat2(unix.AT_FDCWD, src, int(dir.Fd()), base, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
	case errors.Is(err, unix.EEXIST):
		return false, nil
	case errors.Is(err, unix.EXDEV):
		if err := copyInto(src, dir, base); err != nil {
			return false, fmt.Errorf("copy %s back to %s: %w", src, p.Path, err)
		}
		if err := os.Remove(src); err != nil {
			unix.Unlinkat(int(dir.Fd()), base, 0) // never two live copies
			return false, fmt.Errorf("remove %s after copying it back: %w", src, err)
		}
	default:
		return false, fmt.Errorf("move %s back to %s: %w", src, p.Path, err)
	}
	os.Remove(src + FailedSuffix)
	return true, nil
}

func (r Roots) has(root string) bool {
	for _, d := range r.dirs {
		if d == root {
			return true
		}
	}
	return false
}

// findFailed is where archive put p's file in failedDir: the first of its
// candidate names whose error sidecar names p's content.
func findFailed(failedDir string, p Payload) (string, bool) {
	rel := ArchiveRel(p.Rel)
	for n := 0; n < maxClash; n++ {
		file, err := destination(failedDir, candidate(rel, n))
		if err != nil {
			return "", false
		}
		b, err := os.ReadFile(file + FailedSuffix)
		if err != nil {
			if _, serr := os.Lstat(file); serr != nil {
				return "", false // no more candidates
			}
			continue
		}
		var sc struct {
			SHA256 string `json:"sha256"`
		}
		if json.Unmarshal(b, &sc) != nil || sc.SHA256 != p.SHA256 {
			continue
		}
		if fi, err := os.Lstat(file); err != nil || !fi.Mode().IsRegular() {
			return "", false
		}
		return file, true
	}
	return "", false
}

// copyInto copies src into dir at base (never replacing a file there),
// through an unnamed file, so that a crash leaves no partial copy in the
// inbox.
func copyInto(src string, dir *os.File, base string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return linkUnnamed(int(dir.Fd()), ".", base, in, 0o644)
}
