package watcher

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/logging"
)

// Watcher finds complete, eligible files in the inboxes and queues them. It
// learns about files from fsnotify events on every folder, from a scan at
// start, and from periodic rescans (the only source for polled inboxes), so
// that a missed event delays a file but never loses it.
type Watcher struct {
	o   Options
	log zerolog.Logger

	jobs    chan job
	results chan jobResult

	// Everything below is touched only by the run goroutine.
	fsw      *fsnotify.Watcher
	inboxes  []*inbox
	known    map[string]*entry // every eligible file seen in an inbox, by path
	settling map[string]*entry // the ones not yet queued: what the tick looks at
	ready    []*entry          // stable, waiting for a free hasher
	scanGen  uint64
	warned   map[string]bool // folders whose errors were logged once

	counts [6]atomic.Int64 // by Outcome
}

type inbox struct {
	root    string
	poll    bool
	reason  string // why it is polled
	missing bool
	next    time.Time // next rescan
}

type state int

const (
	stSettling   state = iota
	stIncomplete       // stable but its end marker is missing
	stReady            // stable, waiting for a hasher
	stBusy             // with a hasher
	stQueued           // its task is queued; kept to skip it on rescans
)

type entry struct {
	file
	st              state
	due             time.Time // when to look again
	incompleteSince time.Time
	gen             uint64 // last scan that saw it
}

type job struct {
	f               file
	incompleteSince time.Time
}

type jobResult struct {
	path    string
	outcome Outcome
	incomp  bool // still incomplete (or unreadable)
	// unreadable: the file may not be read (permissions)
	unreadable bool
	err        error
}

// New returns a Watcher; Run starts it.
func New(o Options) *Watcher {
	o.defaults()
	return &Watcher{
		o: o, log: o.Logger,
		jobs:     make(chan job, 4*o.Hashers),
		results:  make(chan jobResult, o.Hashers),
		known:    map[string]*entry{},
		settling: map[string]*entry{},
		warned:   map[string]bool{},
	}
}

// Counts reports how many files ended each way since the start.
func (w *Watcher) Counts() map[Outcome]int64 {
	m := map[Outcome]int64{}
	for i := range w.counts {
		m[Outcome(i)] = w.counts[i].Load()
	}
	return m
}

// tickInterval is how often settling files are looked at: small enough that
// a file is queued within about 250 ms after its settle time.
func (w *Watcher) tickInterval() time.Duration {
	return max(20*time.Millisecond, min(200*time.Millisecond, w.o.Settle/4))
}

// newFSWatcher is fsnotify.NewWatcher; tests replace it.
var newFSWatcher = fsnotify.NewWatcher

// Run watches until ctx ends. It returns an error only when it cannot start.
func (w *Watcher) Run(ctx context.Context) error {
	for _, root := range w.o.Inboxes {
		in := &inbox{root: root}
		switch {
		case w.o.Mode == "poll":
			in.poll, in.reason = true, "NATIF_WATCH_MODE=poll"
		case w.o.Mode == "auto":
			if fsType := remoteFS(root); fsType != "" {
				in.poll, in.reason = true, "it is on "+fsType+", where file-system events from other machines do not arrive"
			}
		}
		w.inboxes = append(w.inboxes, in)
	}
	for _, in := range w.inboxes {
		if in.poll {
			continue
		}
		if w.fsw == nil {
			fsw, err := newFSWatcher()
			if err != nil {
				// Without events (the inotify instance limit, a kernel
				// without inotify) every inbox is polled: slower to see a
				// file, never blind to one.
				w.log.Error().Err(err).Msg("file-system events unavailable: every inbox falls back to polling; raise fs.inotify.max_user_instances (sysctl) if the limit was reached")
				for _, in := range w.inboxes {
					in.poll, in.reason = true, "file-system events are unavailable"
				}
				break
			}
			w.fsw = fsw
		}
	}
	var events chan fsnotify.Event
	var errs chan error
	if w.fsw != nil {
		events, errs = w.fsw.Events, w.fsw.Errors
		defer w.fsw.Close()
	}
	for _, in := range w.inboxes {
		if in.poll {
			w.log.Info().Str("inbox", in.root).Dur("every", w.o.PollInterval).Msg("polling inbox: " + in.reason)
		} else {
			w.log.Info().Str("inbox", in.root).Dur("rescan_every", w.o.RescanInterval).Msg("watching inbox")
		}
	}

	var wg sync.WaitGroup
	for range w.o.Hashers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.hasher(ctx)
		}()
	}
	defer wg.Wait()
	defer close(w.jobs)

	now := time.Now()
	for _, in := range w.inboxes {
		w.scan(in, now)
	}
	ticker := time.NewTicker(w.tickInterval())
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			w.onEvent(ev)
		case err := <-errs:
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn().Msg("file-system event queue overflowed: rescanning the watched inboxes")
				for _, in := range w.inboxes {
					if !in.poll {
						in.next = time.Time{}
					}
				}
			} else if err != nil {
				w.log.Warn().Err(err).Msg("file-system watch error")
			}
		case r := <-w.results:
			w.onResult(r)
			w.feed()
		case now := <-ticker.C:
			w.tick(now)
		}
	}
}

// hasher judges, hashes and queues files, off the run goroutine.
func (w *Watcher) hasher(ctx context.Context) {
	for j := range w.jobs {
		r := jobResult{path: j.f.path}
		c, reason, err := w.o.judge(j.f)
		switch {
		case err != nil:
			r.err = err
		case c == Unsupported:
			if r.err = w.o.fail(j.f, reason); r.err == nil {
				r.outcome = Failed
			}
		case (c == Incomplete || c == Unreadable) && !j.incompleteSince.IsZero() && time.Since(j.incompleteSince) >= w.o.IncompleteTimeout:
			why := "incomplete file: its end marker was still missing after NATIF_INCOMPLETE_TIMEOUT (" + w.o.IncompleteTimeout.String() + ")"
			if c == Unreadable {
				why = reason + ", still after NATIF_INCOMPLETE_TIMEOUT (" + w.o.IncompleteTimeout.String() + ")"
			}
			if r.err = w.o.fail(j.f, why); r.err == nil {
				r.outcome = Failed
			}
		case c == Incomplete, c == Unreadable:
			r.outcome, r.incomp, r.unreadable = Waiting, true, c == Unreadable
		default:
			r.outcome, _, r.err = w.o.submit(ctx, j.f, "watcher")
		}
		select {
		case w.results <- r:
		case <-ctx.Done():
			return
		}
	}
}

func (w *Watcher) onResult(r jobResult) {
	e := w.known[r.path]
	if e == nil || e.st != stBusy {
		return
	}
	now := time.Now()
	if r.err != nil {
		if !errors.Is(r.err, errChanged) && !errors.Is(r.err, fs.ErrNotExist) {
			w.log.Warn().Err(r.err).Str(logging.FieldFile, r.path).Msg("cannot queue the file yet; trying again")
		}
		e.st, e.due = stSettling, now.Add(max(w.o.Settle, time.Second))
		return
	}
	w.counts[r.outcome].Add(1)
	switch r.outcome {
	case Queued, AlreadyQueued:
		e.st = stQueued
		delete(w.settling, r.path)
	case Elsewhere:
		// A copy of content queued from another file: once that upload is
		// recorded, the next look moves this one to done as a duplicate.
		e.st, e.due = stSettling, now.Add(max(w.o.Settle, 5*time.Second))
	case Duplicate, Failed:
		delete(w.known, r.path)
		delete(w.settling, r.path)
	case Waiting:
		if r.incomp {
			if e.incompleteSince.IsZero() {
				e.incompleteSince = now
				if r.unreadable {
					w.log.Warn().Str(logging.FieldFile, r.path).Str("reason", unreadableReason).Dur("fails_after", w.o.IncompleteTimeout).
						Msg("cannot read the file: looking again until NATIF_INCOMPLETE_TIMEOUT, then it fails")
				} else {
					w.log.Info().Str(logging.FieldFile, r.path).Msg("file is stable but its end marker is missing: waiting for the rest")
				}
			}
			e.st, e.due = stIncomplete, now.Add(max(w.o.Settle, time.Second))
		}
	}
}

// tick looks at the files whose quiet time is over: a second look with the
// same size and mtime makes a file a candidate.
func (w *Watcher) tick(now time.Time) {
	for _, in := range w.inboxes {
		if !now.Before(in.next) {
			w.scan(in, now)
		}
	}
	for path, e := range w.settling {
		if e.st == stBusy || e.st == stReady || now.Before(e.due) {
			continue
		}
		fi, err := os.Lstat(path)
		if err != nil {
			delete(w.settling, path)
			delete(w.known, path)
			continue
		}
		if !e.unchanged(fi) {
			e.record(fi)
			e.due, e.st = now.Add(w.o.Settle), stSettling
			e.incompleteSince = time.Time{}
			continue
		}
		e.st = stReady
		w.ready = append(w.ready, e)
	}
	w.feed()
}

// feed hands ready files to the hashers while they take them; the rest
// waits for the next result or tick. It never blocks the run goroutine.
func (w *Watcher) feed() {
	for len(w.ready) > 0 {
		e := w.ready[0]
		if e.st != stReady || w.known[e.path] != e {
			w.ready = w.ready[1:] // changed or forgotten meanwhile
			continue
		}
		select {
		case w.jobs <- job{f: e.file, incompleteSince: e.incompleteSince}:
			e.st = stBusy
			w.ready = w.ready[1:]
		default:
			return
		}
	}
	w.ready = nil
}

// inboxOf returns the inbox a path lies in.
func (w *Watcher) inboxOf(path string) *inbox {
	for _, in := range w.inboxes {
		if path == in.root || strings.HasPrefix(path, in.root+string(filepath.Separator)) {
			return in
		}
	}
	return nil
}

// see records a file seen by a scan or an event. fresh says whether a
// change was just observed (an event): then the full settle time runs.
func (w *Watcher) see(in *inbox, path string, fi fs.FileInfo, now time.Time, fresh bool) {
	rel, err := filepath.Rel(in.root, path)
	if err != nil || !w.o.Filter.Eligible(rel) || !fi.Mode().IsRegular() {
		return
	}
	e := w.known[path]
	if e != nil && !fresh && e.unchanged(fi) {
		e.gen = w.scanGen
		return // known and unchanged: no second look, no hashing
	}
	due := now.Add(w.o.Settle)
	if !fresh && now.Sub(lastChange(fi)) >= w.o.Settle {
		// Quiet for long already (a backlog at start): the second look
		// comes soon, not a whole settle time later.
		due = now.Add(min(w.o.Settle, 500*time.Millisecond))
	}
	if e == nil {
		e = &entry{file: file{root: in.root, rel: rel, path: path}}
		w.known[path] = e
	}
	if e.st == stBusy {
		e.gen = w.scanGen
		return // the hasher checks the size it read against what it expected
	}
	e.record(fi)
	e.due, e.st, e.gen = due, stSettling, w.scanGen
	e.incompleteSince = time.Time{}
	w.settling[path] = e
}

// scan walks an inbox: new and changed files start settling, known unchanged
// ones cost one stat, and files gone from the inbox are forgotten. An inbox
// that cannot be read (an unmounted share) is paused, never taken as empty.
func (w *Watcher) scan(in *inbox, now time.Time) {
	if in.poll {
		in.next = now.Add(w.o.PollInterval)
	} else {
		in.next = now.Add(w.o.RescanInterval)
	}
	fi, err := os.Stat(in.root)
	if err != nil || !fi.IsDir() {
		if !in.missing {
			in.missing = true
			w.log.Error().Err(err).Str("inbox", in.root).Msg("inbox unavailable: paused, its files are kept in mind, and it is tried again")
		}
		in.next = now.Add(min(w.o.PollInterval, 5*time.Second))
		return
	}
	if in.missing {
		in.missing = false
		w.log.Info().Str("inbox", in.root).Msg("inbox available again: rescanning, and looking at its queued files again")
		// Workers elsewhere may have found the share unmounted too; looking
		// at the queued files again costs a hash each and finds any whose
		// task is gone (the ID is free again) instead of leaving it in the
		// inbox until a restart.
		for path, e := range w.known {
			if e.root == in.root && e.st == stQueued {
				delete(w.known, path)
			}
		}
	}
	w.scanGen++
	gen := w.scanGen
	w.walk(in, in.root, now)
	for path, e := range w.known {
		if e.root == in.root && e.gen != gen && e.st != stBusy {
			delete(w.known, path)
			delete(w.settling, path)
		}
	}
}

// walk scans dir (in inbox in) and, for watched inboxes, watches every folder.
func (w *Watcher) walk(in *inbox, dir string, now time.Time) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if !w.warned[path] {
				w.warned[path] = true
				w.log.Warn().Err(err).Str("folder", path).Msg("cannot read a folder in the inbox; the others go on")
			}
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if path != in.root && SkipDir(d.Name()) {
				return fs.SkipDir
			}
			if !in.poll {
				w.watch(in, path)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // symbolic links and devices are never followed
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		w.see(in, path, fi, now, false)
		return nil
	})
}

// watch adds a folder to fsnotify. Past the inotify limit the inbox falls
// back to polling, with one log line saying what to raise.
func (w *Watcher) watch(in *inbox, dir string) {
	if w.fsw == nil || in.poll {
		return
	}
	err := w.fsw.Add(dir)
	if err == nil {
		return
	}
	if errors.Is(err, syscall.ENOSPC) {
		in.poll, in.reason = true, "the inotify watch limit is reached"
		in.next = time.Now().Add(w.o.PollInterval)
		w.log.Error().Str("inbox", in.root).Dur("every", w.o.PollInterval).
			Msg("inotify watch limit reached: raise fs.inotify.max_user_watches (sysctl); this inbox falls back to polling")
		return
	}
	if !w.warned[dir] {
		w.warned[dir] = true
		w.log.Warn().Err(err).Str("folder", dir).Msg("cannot watch a folder; rescans still find its files")
	}
}

func (w *Watcher) onEvent(ev fsnotify.Event) {
	path := filepath.Clean(ev.Name)
	in := w.inboxOf(path)
	if in == nil || in.poll {
		return
	}
	now := time.Now()
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if path == in.root {
			in.next = time.Time{} // the next tick finds it missing, or back
			return
		}
		w.forget(path)
		return
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return
	}
	if fi.IsDir() {
		if ev.Has(fsnotify.Create) {
			rel, _ := filepath.Rel(in.root, path)
			for _, part := range strings.Split(rel, string(filepath.Separator)) {
				if SkipDir(part) {
					return
				}
			}
			// Files may have landed before the watch existed: scan it now.
			w.walk(in, path, now)
		}
		return
	}
	w.see(in, path, fi, now, true)
}

// forget drops a file, or a folder and everything known under it.
func (w *Watcher) forget(path string) {
	if e, ok := w.known[path]; ok && e.st != stBusy {
		delete(w.known, path)
		delete(w.settling, path)
		return
	}
	prefix := path + string(filepath.Separator)
	for p, e := range w.known {
		if strings.HasPrefix(p, prefix) && e.st != stBusy {
			delete(w.known, p)
			delete(w.settling, p)
		}
	}
}
