package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrOutsideRoots is wrapped by every payload whose file is not under a
// configured inbox or allowed root: the file is never opened.
var ErrOutsideRoots = errors.New("file is outside the inboxes and allowed roots")

// Roots are the folders a worker may read files from (SPEC section 6): the
// inboxes and NATIF_ALLOWED_ROOTS.
type Roots struct {
	dirs []string // absolute and clean
}

// NewRoots returns the roots; relative paths are made absolute.
func NewRoots(dirs ...string) (Roots, error) {
	var r Roots
	for _, d := range dirs {
		a, err := filepath.Abs(d)
		if err != nil {
			return Roots{}, err
		}
		r.dirs = append(r.dirs, a)
	}
	return r, nil
}

// Resolve checks that p names a file under one of the roots and returns the
// path to open: p.Root must be a configured root, p.Rel must stay inside it
// (Payload.Validate), and the file's real path, symbolic links followed, must
// still lie inside the root's real path. It reads no file content.
func (r Roots) Resolve(p Payload) (string, error) {
	root := ""
	for _, d := range r.dirs {
		if d == p.Root {
			root = d
			break
		}
	}
	if root == "" {
		return "", fmt.Errorf("%w: root %q is not a configured inbox or allowed root", ErrOutsideRoots, p.Root)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("root %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(p.Path)
	if err != nil {
		return "", err // os.ErrNotExist for a vanished file: the caller tells them apart
	}
	if !within(real, realRoot) {
		return "", fmt.Errorf("%w: %s leads to %s", ErrOutsideRoots, p.Path, real)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrBadPayload, p.Path)
	}
	return real, nil
}

// within reports whether path p is dir or lies below it (both absolute and clean).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))
}

// destination is where rel lands under dir; rel was checked to be local, and
// the result is checked again so that no path can leave dir.
func destination(dir, rel string) (string, error) {
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: %q leaves its folder", ErrBadPayload, rel)
	}
	d := filepath.Join(dir, rel)
	if !within(d, dir) || d == dir {
		return "", fmt.Errorf("%w: %q leaves its folder", ErrBadPayload, rel)
	}
	return d, nil
}
