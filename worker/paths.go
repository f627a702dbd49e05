package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrOutsideRoots is wrapped by every payload whose file is not under a
// configured inbox or allowed root: the file is never opened.
var ErrOutsideRoots = errors.New("file is outside the inboxes and allowed roots")

// ErrRootUnavailable means the inbox or allowed root itself cannot be opened
// on this machine (an unmounted share): its files are not gone, so their
// tasks wait instead of being dropped as vanished.
var ErrRootUnavailable = errors.New("inbox or allowed root unavailable on this machine")

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

// opened is a queued file opened once, beneath its root. Every later read
// (type, hash, upload, a retry's body) goes through f, and the move goes
// through its folder's descriptor: swapping a folder on the way for a
// symbolic link after the check changes nothing (SPEC section 6).
type opened struct {
	path string   // as the payload names it, for logs and sidecars
	f    *os.File // the file
	dir  *os.File // its folder
	base string   // its name in dir
	info os.FileInfo
}

// Open checks that p names a regular file under one of the roots and opens
// it there: p.Root must be a configured root, p.Rel must stay inside it
// (Payload.Validate), no symbolic link on the way may lead out of it
// (os.Root refuses), and the file itself must not be a symbolic link.
// A vanished file gives an error wrapping fs.ErrNotExist.
func (r Roots) Open(p Payload) (*opened, error) {
	if !r.has(p.Root) {
		return nil, fmt.Errorf("%w: root %q is not a configured inbox or allowed root", ErrOutsideRoots, p.Root)
	}
	root, err := os.OpenRoot(p.Root)
	if err != nil {
		return nil, fmt.Errorf("%w: root %s: %w", ErrRootUnavailable, p.Root, err)
	}
	defer root.Close()
	li, err := root.Lstat(p.Rel)
	if err != nil {
		return nil, rootErr(p, err)
	}
	if li.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("%w: %s is a symbolic link, which the worker does not follow", ErrOutsideRoots, p.Path)
	}
	if !li.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadPayload, p.Path)
	}
	dir, err := root.Open(filepath.Dir(p.Rel))
	if err != nil {
		return nil, rootErr(p, err)
	}
	f, err := root.OpenFile(p.Rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		dir.Close()
		if errors.Is(err, fs.ErrPermission) {
			return nil, &fileError{reason: "cannot read the file: permission denied"}
		}
		return nil, rootErr(p, err)
	}
	fi, err := f.Stat()
	if err != nil || !os.SameFile(fi, li) {
		f.Close()
		dir.Close()
		return nil, fmt.Errorf("%s changed while it was opened", p.Path)
	}
	return &opened{path: p.Path, f: f, dir: dir, base: filepath.Base(p.Rel), info: fi}, nil
}

// rootErr keeps "not found" and turns an escape from the root into ErrOutsideRoots.
func rootErr(p Payload, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if strings.Contains(err.Error(), "escapes") || errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%w: %s leads out of %s", ErrOutsideRoots, p.Path, p.Root)
	}
	return err
}

// Close closes the file and its folder.
func (o *opened) Close() {
	o.f.Close()
	o.dir.Close()
}

// stillThere reports whether the name in the folder is still the opened file.
func (o *opened) stillThere() bool {
	var st unix.Stat_t
	if err := unix.Fstatat(int(o.dir.Fd()), o.base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false
	}
	sys, ok := o.info.Sys().(*syscall.Stat_t)
	return ok && uint64(sys.Dev) == uint64(st.Dev) && sys.Ino == st.Ino
}

// is reports whether fi is the opened file (the same inode).
func (o *opened) is(fi os.FileInfo) bool { return os.SameFile(o.info, fi) }

// archivedIn returns the name in dir, among rel and its numeric-suffix
// candidates, that holds the opened file: another archiver (the watcher's
// duplicate path) moved it there.
func (o *opened) archivedIn(dir, rel string) (string, bool) {
	for n := 0; n < maxClash; n++ {
		at := filepath.Join(dir, candidate(rel, n))
		fi, err := os.Lstat(at)
		if err != nil {
			return "", false
		}
		if o.is(fi) {
			return at, true
		}
	}
	return "", false
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
