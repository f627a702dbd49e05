package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natif-uploader/natif-uploader/logging"
	"github.com/natif-uploader/natif-uploader/worker"
)

// Summary counts what a one-shot scan did.
type Summary struct {
	Queued, AlreadyQueued, Duplicates, Failed, Waiting, Skipped, Errors int64
}

func (s *Summary) add(o Outcome) {
	switch o {
	case Queued:
		atomic.AddInt64(&s.Queued, 1)
	case AlreadyQueued, Elsewhere:
		atomic.AddInt64(&s.AlreadyQueued, 1)
	case Duplicate:
		atomic.AddInt64(&s.Duplicates, 1)
	case Failed:
		atomic.AddInt64(&s.Failed, 1)
	case Waiting:
		atomic.AddInt64(&s.Waiting, 1)
	}
}

// ErrNotInRoot is returned for a path outside every inbox and allowed root.
var ErrNotInRoot = errors.New("is not inside an inbox (NATIF_INBOX) or an allowed root (NATIF_ALLOWED_ROOTS)")

// ErrThroughLink means a path names its file through a symbolic link below
// its root: the link could lead out of the root, so the path is refused; the
// link's target, when it is inside a root, can be named instead.
var ErrThroughLink = errors.New("goes through a symbolic link below its inbox or allowed root; name the real path instead")

// noLinkBelow checks that no component of path below root is a symbolic
// link (the root itself may be one, e.g. a mounted share's alias).
func noLinkBelow(root, path string) error {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return err
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	realPath, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if realPath != filepath.Join(realRoot, rel) {
		return ErrThroughLink
	}
	return nil
}

// Scan queues every eligible, complete file under paths (files or folders,
// each inside an inbox or an allowed root), by the same rules as the watcher:
// the same filters, the same completeness checks, the same identity and
// queue. A file written less than Settle ago is looked at again after Settle;
// one still changing, or incomplete but younger than IncompleteTimeout, is
// left for a later run (Waiting). onQueued, when set, is called for every file
// whose task is queued (or was already), one call at a time: the caller of
// `enqueue --wait` follows them. Memory stays bounded by the files in flight, whatever the
// size of the tree.
func Scan(ctx context.Context, o Options, paths []string, onQueued func(worker.Payload, Outcome)) (Summary, error) {
	o.defaults()
	var sum Summary
	roots := append(append([]string(nil), o.Inboxes...), o.AllowedRoots...)
	type located struct{ root, path string }
	var starts []located
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return sum, err
		}
		root := ""
		for _, r := range roots {
			if abs == r || strings.HasPrefix(abs, r+string(filepath.Separator)) {
				root = r
				break
			}
		}
		if root == "" {
			return sum, fmt.Errorf("%s %w", p, ErrNotInRoot)
		}
		if _, err := os.Stat(abs); err != nil {
			return sum, fmt.Errorf("%s: %w", p, err)
		}
		if err := noLinkBelow(root, abs); err != nil {
			return sum, fmt.Errorf("%s: %w", p, err)
		}
		starts = append(starts, located{root, abs})
	}

	var onMu sync.Mutex
	files := make(chan file, o.Hashers*4)
	var wg sync.WaitGroup
	var late sync.Mutex
	var recent []file // written less than Settle ago: looked at again
	for range o.Hashers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range files {
				if ctx.Err() != nil {
					continue
				}
				out, p, err := o.scanOne(ctx, f)
				if err != nil {
					atomic.AddInt64(&sum.Errors, 1)
					o.Logger.Warn().Err(err).Str(logging.FieldFile, f.path).Msg("cannot queue the file")
					continue
				}
				sum.add(out)
				if (out == Queued || out == AlreadyQueued || out == Elsewhere) && onQueued != nil {
					onMu.Lock()
					onQueued(p, out)
					onMu.Unlock()
				}
			}
		}()
	}
	now := time.Now()
	emit := func(f file) bool {
		select {
		case files <- f:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, s := range starts {
		err := filepath.WalkDir(s.path, func(path string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				o.Logger.Warn().Err(err).Str("folder", path).Msg("cannot read; skipped")
				atomic.AddInt64(&sum.Errors, 1)
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if path != s.path && SkipDir(d.Name()) {
					return fs.SkipDir
				}
				return nil
			}
			rel, _ := filepath.Rel(s.root, path)
			if !d.Type().IsRegular() || !o.Filter.Eligible(rel) {
				atomic.AddInt64(&sum.Skipped, 1)
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			f := file{root: s.root, rel: rel, path: path}
			f.record(fi)
			if now.Sub(f.lastChange()) < o.Settle {
				late.Lock()
				recent = append(recent, f)
				late.Unlock()
				return nil
			}
			if !emit(f) {
				return ctx.Err()
			}
			return nil
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			close(files)
			wg.Wait()
			return sum, err
		}
	}
	if len(recent) > 0 && ctx.Err() == nil {
		// Second look at the recently written files, once their quiet time is over.
		select {
		case <-time.After(o.Settle):
		case <-ctx.Done():
		}
		for _, f := range recent {
			fi, err := os.Lstat(f.path)
			if err != nil {
				continue
			}
			if !f.unchanged(fi) {
				atomic.AddInt64(&sum.Waiting, 1)
				continue
			}
			if !emit(f) {
				break
			}
		}
	}
	close(files)
	wg.Wait()
	return sum, ctx.Err()
}

// scanOne judges one quiet file and queues, fails or leaves it.
func (o *Options) scanOne(ctx context.Context, f file) (Outcome, worker.Payload, error) {
	c, reason, err := o.judge(f)
	if err != nil {
		return Waiting, worker.Payload{}, err
	}
	switch c {
	case Unsupported:
		return Failed, worker.Payload{}, o.fail(f, reason)
	case Unreadable:
		if time.Since(f.lastChange()) >= o.IncompleteTimeout {
			return Failed, worker.Payload{}, o.fail(f, reason+", and it has not changed for NATIF_INCOMPLETE_TIMEOUT ("+o.IncompleteTimeout.String()+")")
		}
		o.Logger.Warn().Str(logging.FieldFile, f.path).Str("reason", reason).Msg("cannot read the file: left for a later run")
		return Waiting, worker.Payload{}, nil
	case Incomplete:
		if time.Since(f.lastChange()) >= o.IncompleteTimeout {
			return Failed, worker.Payload{}, o.fail(f, "incomplete file: its end marker is missing and it has not changed for NATIF_INCOMPLETE_TIMEOUT ("+o.IncompleteTimeout.String()+")")
		}
		o.Logger.Info().Str(logging.FieldFile, f.path).Msg("end marker missing: left for a later run")
		return Waiting, worker.Payload{}, nil
	}
	out, p, err := o.submit(ctx, f, "enqueue")
	return out, p, err
}
