package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// FileLedger is the completion ledger of the embedded queue: an append-only
// file of JSON lines, synced on every record, read back whole at start. A
// kill -9 loses no record that Put returned.
type FileLedger struct {
	mu   sync.Mutex
	f    *os.File
	m    map[string]Record
	path string
}

// OpenFileLedger opens (or creates) the ledger file at path. A last line cut
// short by a crash is ignored.
func OpenFileLedger(path string) (*FileLedger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	l := &FileLedger{f: f, m: map[string]Record{}, path: path}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.SHA256 != "" {
			if _, dup := l.m[r.SHA256]; !dup {
				l.m[r.SHA256] = r
			}
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("read ledger %s: %w", path, err)
	}
	return l, nil
}

// Get reads a record.
func (l *FileLedger) Get(_ context.Context, sha string) (*Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.m[sha]; ok {
		return &r, nil
	}
	return nil, nil
}

// Put appends a record and syncs it; the first record of a content wins.
func (l *FileLedger) Put(_ context.Context, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.m[r.SHA256]; ok {
		return nil
	}
	// A line is written whole and then synced: a crash leaves at most a cut
	// last line, which the next open skips.
	if _, err := l.f.Write(append([]byte("\n"), b...)); err != nil {
		return fmt.Errorf("ledger %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("ledger %s: %w", l.path, err)
	}
	l.m[r.SHA256] = r
	return nil
}

// Len is the number of records.
func (l *FileLedger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// Close closes the file.
func (l *FileLedger) Close() error { return l.f.Close() }
