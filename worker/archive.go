package worker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Sidecar suffixes (SPEC section 4).
const (
	DoneSuffix        = ".natif.json"
	FailedSuffix      = ".error.json"
	ExtractionsSuffix = ".extractions.json"
)

// maxClash bounds the numeric suffixes tried for one name.
const maxClash = 10000

// linkRename renames with a hard link and a removal: the link refuses to
// replace dst. Across file systems it copies instead.
func linkRename(src, dst string) error {
	err := os.Link(src, dst)
	switch {
	case err == nil:
		if err := os.Remove(src); err != nil {
			os.Remove(dst) // never two live copies: the move failed whole
			return err
		}
		return nil
	case errors.Is(err, os.ErrExist):
		return err
	case errors.Is(err, syscall.EXDEV):
		return copyNoReplace(src, dst)
	default:
		return err
	}
}

// move renames src to dst without replacing dst (os.ErrExist), copying when
// src and dst are on different file systems.
func move(src, dst string) error {
	err := renameNoReplace(src, dst)
	if errors.Is(err, syscall.EXDEV) {
		return copyNoReplace(src, dst)
	}
	return err
}

// copyNoReplace copies src to a temporary file beside dst, syncs it, links it
// to dst (never replacing), then removes src. A crash leaves at most a
// temporary file, never a half-copied dst.
func copyNoReplace(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := syncedTemp(dst, ".copy", in)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, dst); err != nil {
		return err
	}
	syncDir(filepath.Dir(dst))
	if err := os.Remove(src); err != nil {
		os.Remove(dst) // never two live copies: the move failed whole
		return err
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in dst's folder, syncs it
// and renames it over dst.
func writeFileAtomic(dst string, data []byte) error {
	tmp, err := syncedTemp(dst, ".tmp", bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Rename(tmp, dst)
}

// syncedTemp writes r to a new temporary file ".<name of dst><kind>-<digits>"
// in dst's folder (kind ".tmp" or ".copy", the names sweepStaleTemps knows)
// and syncs it. The caller links or renames it into place, then removes it.
func syncedTemp(dst, kind string, r io.Reader) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+kind+"-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// errNoUnnamed: the folder's file system (NFS, SMB) has no unnamed files
// (O_TMPFILE), or there is no /proc to link one through.
var errNoUnnamed = errors.New("no unnamed file (O_TMPFILE) can be made and linked here")

// linkUnnamed writes r into an unnamed file (O_TMPFILE) of the folder dir,
// syncs it and links it at name (both relative to dirfd), never replacing a
// file there (os.ErrExist) and never showing a partial file under that
// name. A crash leaves nothing behind. errNoUnnamed when the file system or
// the system does not allow it.
func linkUnnamed(dirfd int, dir, name string, r io.Reader, perm uint32) error {
	fd, err := unix.Openat(dirfd, dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, perm)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoUnnamed, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return &os.LinkError{Op: "link", Old: "(unnamed)", New: name, Err: os.ErrExist}
	default:
		return fmt.Errorf("%w: %w", errNoUnnamed, err)
	}
}

// source is a file to move into an archive folder, never replacing dst
// (os.ErrExist when dst is taken).
type source interface {
	moveTo(dst string) error
}

// pathSource moves a file by its path: for files the watcher found itself.
type pathSource string

func (p pathSource) moveTo(dst string) error { return move(string(p), dst) }

// moveTo moves the opened file through its folder's descriptor. When the name
// no longer holds the opened file (replaced after the upload), the content
// that was read, and uploaded, is copied from the descriptor instead, and the
// new file stays in the inbox for the watcher.
func (o *opened) moveTo(dst string) error {
	if !o.stillThere() {
		return copyFromFD(o.f, dst)
	}
	err := unix.Renameat2(int(o.dir.Fd()), o.base, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return os.ErrExist
	case errors.Is(err, unix.EXDEV):
		if err := copyFromFD(o.f, dst); err != nil {
			return err
		}
		syncDir(filepath.Dir(dst))
		if !o.stillThere() {
			return nil // replaced meanwhile: the new file stays for the watcher
		}
		if err := unix.Unlinkat(int(o.dir.Fd()), o.base, 0); err != nil {
			os.Remove(dst) // never two live copies: the move failed whole
			return fmt.Errorf("remove %s after copying it: %w", o.path, err)
		}
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOTSUP):
		if err := unix.Linkat(int(o.dir.Fd()), o.base, unix.AT_FDCWD, dst, 0); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return os.ErrExist
			}
			return err
		}
		if err := unix.Unlinkat(int(o.dir.Fd()), o.base, 0); err != nil {
			os.Remove(dst)
			return fmt.Errorf("remove %s after linking it: %w", o.path, err)
		}
		return nil
	default:
		return &os.LinkError{Op: "rename", Old: o.path, New: dst, Err: err}
	}
}

// copyFromFD writes the content of f to a temporary file beside dst, syncs
// it and links it to dst (never replacing).
func copyFromFD(f *os.File, dst string) error {
	tmp, err := syncedTemp(dst, ".copy", io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, dst)
}

// maxArchiveName bounds the last element of an archived file's name so that
// its longest sidecar (".extractions.json") and that sidecar's temporary file
// (".<name>.tmp-<up to 10 digits>") still fit Linux's NAME_MAX of 255 bytes
// with a clash suffix ("-9999"). A file whose name is longer than this
// (up to 255 bytes in the inbox) could otherwise be uploaded but never
// archived: its "<name>.natif.json" cannot exist.
const maxArchiveName = 255 - len(".") - len(ExtractionsSuffix) - len(".tmp-") - 10 - len("-9999")

// ArchiveRel is the name, relative to the done or failed folder, under which
// the file at inbox-relative rel is archived: rel itself, unless its last
// element is longer than maxArchiveName bytes; then that element is cut
// (on a character boundary when it is UTF-8) and tagged with "~" and 8 hex
// digits of its SHA-256, keeping the extension. The sidecar's "source" keeps
// the original path.
func ArchiveRel(rel string) string {
	dir, base := filepath.Split(rel)
	if len(base) <= maxArchiveName {
		return rel
	}
	ext := filepath.Ext(base)
	if len(ext) > 16 || ext == base {
		ext = ""
	}
	sum := sha256.Sum256([]byte(base))
	tag := "~" + hex.EncodeToString(sum[:4])
	stem := base[:maxArchiveName-len(tag)-len(ext)]
	if utf8.ValidString(base) {
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
	}
	return dir + stem + tag + ext
}

// candidate is rel with the numeric suffix n: "a/invoice.pdf", then
// "a/invoice-1.pdf", "a/invoice-2.pdf", ...
func candidate(rel string, n int) string {
	if n == 0 {
		return rel
	}
	ext := filepath.Ext(rel)
	if ext == rel || strings.HasSuffix(rel, "/"+ext) { // a name like ".pdf" has no stem
		ext = ""
	}
	return strings.TrimSuffix(rel, ext) + "-" + strconv.Itoa(n) + ext
}

// archive moves the file at src into dir at rel (a numeric suffix on a name
// clash; never overwriting), with its sidecar beside it. The sidecar is
// written first, under the final name, so a file in dir always has one; a
// sidecar left by a crash before the move, for the same content, is taken
// over. sidecar receives the final path of the file.
func archive(src source, dir, rel, suffix, sha string, sidecar func(final string) ([]byte, error)) (string, error) {
	rel = ArchiveRel(rel)
	first, err := destination(dir, rel)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(first), 0o755); err != nil {
		return "", err
	}
	sweepStaleTemps(filepath.Dir(first))
	// The watcher's duplicate path and a worker can both archive one file:
	// a restarted watcher finds the file still in the inbox after the worker
	// recorded its upload in the ledger but before it moved it. Whoever moves
	// second must see that the file is already there, not copy the content
	// it holds open into a second name.
	o, _ := src.(*opened)
	if o != nil && !o.stillThere() {
		if at, ok := o.archivedIn(dir, rel); ok {
			return at, nil
		}
	}
	for n := 0; n < maxClash; n++ {
		final := filepath.Join(dir, candidate(rel, n))
		if fi, err := os.Lstat(final); err == nil {
			if o != nil && o.is(fi) {
				return final, nil // moved here by the other archiver
			}
			continue // taken by another file
		}
		side := final + suffix
		data, err := sidecar(final)
		if err != nil {
			return "", err
		}
		if testHook != nil {
			testHook("claim")
		}
		if ok, err := claimSidecar(side, data, sha); err != nil {
			return "", err
		} else if !ok {
			// The name is taken now. By this very file, when the other
			// archiver moved it there since the look above: then it is
			// done, and the next name must not get a copy of it.
			if o != nil && !o.stillThere() {
				if at, ok := o.archivedIn(dir, rel); ok {
					return at, nil
				}
			}
			continue
		}
		if testHook != nil {
			testHook("move")
		}
		if err := src.moveTo(final); err != nil {
			if o != nil {
				if at, ok := o.archivedIn(dir, rel); ok {
					// The other archiver moved it meanwhile; the sidecar at
					// side is its or ours, for this content, unless the file
					// went to another name.
					if at != final {
						os.Remove(side)
					}
					return at, nil
				}
			}
			// The sidecar is ours to remove only while no file holds the
			// name: every archiver claims the sidecar before it moves, so
			// a file there now (another archiver's move of this content,
			// which took our claim over) owns it.
			if _, lerr := os.Lstat(final); lerr != nil {
				os.Remove(side)
			}
			if errors.Is(err, os.ErrExist) {
				continue // someone took the name between the check and the move
			}
			return "", err
		}
		// No fsync of the folder here: the upload is in the completion
		// ledger before the move, so a rename that a power cut undoes puts
		// the file back in the inbox, from where it goes to done without
		// an upload (and its sidecar, already durable, is taken over). A
		// folder fsync per file cost the pipeline a tenth of its speed.
		return final, nil
	}
	return "", fmt.Errorf("%s: more than %d files of that name", first, maxClash)
}

// testHook runs, when a test sets it, where another archiver's move races
// with archive: "claim" after the look at a name and before the sidecar's
// claim, "move" after the claim and before the move.
var testHook func(stage string)

// processStart is when this process started: a temporary file older than it
// was left by a process that is gone.
var processStart = time.Now()

// sweptDirs holds the archive folders this process has swept of the
// temporary files of killed processes.
var sweptDirs sync.Map

// sweepStaleTemps removes, the first time this process archives into dir,
// the temporary files that a killed process left there: sidecar temps
// (".<name>.natif.json.tmp-<digits>", and the same for the other sidecar
// suffixes) and copy temps (".<name>.copy-<digits>"), older than this
// process. One read of the folder per folder and process: sweeping on every
// archive would read a folder of n files n times (it did, and it cost the
// pipeline most of its CPU on a large done folder). A live writer's
// temporary file is younger than this process; should another process's be
// taken all the same, its link fails and its task is retried: nothing is
// lost. Temporary files a process leaves after this sweep are removed by the
// sweep of the next process to start.
func sweepStaleTemps(dir string) {
	if _, done := sweptDirs.LoadOrStore(dir, struct{}{}); done {
		return
	}
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			if !isArchiveTemp(name) {
				continue
			}
			path := filepath.Join(dir, name)
			if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(processStart) {
				os.Remove(path)
			}
		}
		if err != nil {
			return
		}
	}
}

// isArchiveTemp reports whether name is one of the archive's temporary
// files: ".<name><sidecar suffix>.tmp-<digits>" or ".<name>.copy-<digits>".
// Other hidden files in the archive folders are the user's and stay.
func isArchiveTemp(name string) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return false
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	stem := name[:i]
	if strings.HasSuffix(stem, ".copy") {
		return len(stem) > len("..copy")
	}
	stem, ok := strings.CutSuffix(stem, ".tmp")
	if !ok {
		return false
	}
	for _, suf := range []string{DoneSuffix, FailedSuffix, ExtractionsSuffix} {
		if strings.HasSuffix(stem, suf) {
			return true
		}
	}
	return false
}

// claimSidecar writes data at side unless another file's sidecar is there. A
// sidecar for the same content (sha) without its file is one a crash left
// behind: it is replaced.
func claimSidecar(side string, data []byte, sha string) (bool, error) {
	err := createFileSynced(side, data)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return false, err
	}
	if !orphanOf(side, sha) {
		return false, nil
	}
	return true, writeFileAtomic(side, data)
}

// createFileSynced creates path holding data, never replacing a file there
// (os.ErrExist), and never showing a partial file under that name: through
// an unnamed file (linkUnnamed), which changes the folder once, not three
// times as a named temporary file does (create, link, remove); under
// concurrent fsyncs each change of a large folder costs a hundred
// microseconds or more of kernel time (bench: the sidecar's temporary file
// was 30 % of the daemon's CPU). Where there are no unnamed files, a named
// temporary file.
func createFileSynced(path string, data []byte) error {
	err := linkUnnamed(unix.AT_FDCWD, filepath.Dir(path), path, bytes.NewReader(data), 0o600)
	if errors.Is(err, errNoUnnamed) {
		return createFileSyncedNamed(path, data)
	}
	return err
}

// createFileSyncedNamed is createFileSynced through a named temporary file
// (".<name>.tmp-<digits>", removed at once; sweepStaleTemps removes those a
// killed process left).
func createFileSyncedNamed(path string, data []byte) error {
	tmp, err := syncedTemp(path, ".tmp", bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// orphanOf reports whether side is a sidecar of the content sha whose file
// is not there.
func orphanOf(side, sha string) bool {
	b, err := os.ReadFile(side)
	if err != nil {
		return false
	}
	var s struct {
		SHA256 string `json:"sha256"`
	}
	if json.Unmarshal(b, &s) != nil || s.SHA256 != sha {
		return false
	}
	for _, suf := range []string{DoneSuffix, FailedSuffix} {
		if f, ok := strings.CutSuffix(side, suf); ok {
			_, err := os.Lstat(f)
			return errors.Is(err, os.ErrNotExist)
		}
	}
	return false
}

// syncDir makes a rename durable; errors are ignored (not every file system
// can sync a folder).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
