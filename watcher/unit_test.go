package watcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/worker"
)

func TestEligible(t *testing.T) {
	f := Filter{Include: []string{"*.pdf", "*.jpg", "scans/*"}, Exclude: []string{"draft*", "private/*"}}
	tests := []struct {
		rel  string
		want bool
	}{
		{"invoice.pdf", true},
		{"INVOICE.PDF", true},
		{"a/b/c.jpg", true},
		{"scans/raw.tiff", true},
		{"notes.txt", false},
		{".hidden.pdf", false},
		{"sub/.hidden/x.pdf", false},
		{"@eaDir/x.pdf", false},
		{"x.pdf.tmp", false},
		{"x.part", false},
		{"x.crdownload", false},
		{"~x.pdf", false},
		{"~$x.pdf", false},
		{"Thumbs.db", false},
		{".DS_Store", false},
		{"draft-1.pdf", false},
		{"private/a.pdf", false},
	}
	for _, tt := range tests {
		if got := f.Eligible(tt.rel); got != tt.want {
			t.Errorf("Eligible(%q) = %v, want %v", tt.rel, got, tt.want)
		}
	}
	if !(Filter{}).Eligible("anything.bin") {
		t.Errorf("no include globs: every non-hidden, non-temporary file is eligible")
	}
}

func TestCheckComplete(t *testing.T) {
	png := append([]byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 1, 2, 3}, 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82)
	tests := []struct {
		desc    string
		content []byte
		want    Completeness
	}{
		{"pdf", []byte("%PDF-1.7\nbody\n%%EOF"), Complete},
		{"pdf trailing whitespace", []byte("%PDF-1.7\nbody\n%%EOF\r\n \x00\x00"), Complete},
		{"pdf truncated", []byte("%PDF-1.7\nbody\n"), Incomplete},
		{"pdf garbage after EOF", []byte("%PDF-1.7\nbody\n%%EOF\ngarbage"), Incomplete},
		{"jpeg", []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 0xFF, 0xD9}, Complete},
		{"jpeg truncated", []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}, Incomplete},
		{"png", png, Complete},
		{"png truncated", png[:len(png)-3], Incomplete},
		{"gif has no marker", []byte("GIF89a......"), Complete},
		{"tiff has no marker", []byte{'I', 'I', 42, 0, 1, 2, 3}, Complete},
		{"text", []byte("hello"), Unsupported},
		{"named pdf, not a pdf", []byte("<html>"), Unsupported},
	}
	for _, tt := range tests {
		p := filepath.Join(t.TempDir(), "f")
		os.WriteFile(p, tt.content, 0o644)
		fh, _ := os.Open(p)
		got, err := CheckComplete(fh, int64(len(tt.content)))
		fh.Close()
		if err != nil || got != tt.want {
			t.Errorf("%s: %v, %v; want %v", tt.desc, got, err, tt.want)
		}
	}
}

func TestScanOneShot(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Settle = 200 * time.Millisecond })
	old := time.Now().Add(-time.Hour)
	var want []string
	for i := range 20 {
		p := f.write(fmt.Sprintf("backlog/%02d.pdf", i), pdf(fmt.Sprint("s", i)))
		os.Chtimes(p, old, old)
		want = append(want, p)
	}
	fresh := f.write("backlog/fresh.pdf", pdf("fresh")) // written just now: a second look after Settle
	f.write("backlog/.hidden.pdf", pdf("h"))
	f.write("backlog/text.pdf", []byte("not a pdf"))
	os.Chtimes(filepath.Join(f.inbox, "backlog/text.pdf"), old, old)
	var queued []string
	sum, err := Scan(context.Background(), f.opts, []string{filepath.Join(f.inbox, "backlog")}, func(p worker.Payload, _ Outcome) {
		queued = append(queued, p.Path)
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Queued != 21 || sum.Failed != 1 || sum.Skipped != 1 || sum.Errors != 0 {
		t.Errorf("summary %+v, want 21 queued, 1 failed, 1 skipped", sum)
	}
	if len(queued) != 21 || !contains(queued, fresh) {
		t.Errorf("onQueued saw %d files (fresh one: %v)", len(queued), contains(queued, fresh))
	}
	for _, p := range want {
		if !contains(queued, p) {
			t.Errorf("%s was not queued", p)
		}
	}
	// Again: everything is already queued.
	sum, _ = Scan(context.Background(), f.opts, []string{f.inbox}, nil)
	if sum.Queued != 0 || sum.AlreadyQueued != 21 {
		t.Errorf("second run %+v, want 21 already queued and none new", sum)
	}
	// Paths outside every root are refused before anything happens.
	if _, err := Scan(context.Background(), f.opts, []string{t.TempDir()}, nil); !errors.Is(err, ErrNotInRoot) {
		t.Errorf("outside path: %v, want ErrNotInRoot", err)
	}
	// A path through a symbolic link below the inbox is refused before
	// anything is read or moved: the link leads out of the inbox.
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.pdf")
	os.WriteFile(secret, pdf("secret"), 0o644)
	os.Chtimes(secret, old, old)
	os.Symlink(outside, filepath.Join(f.inbox, "linkdir"))
	for _, p := range []string{filepath.Join(f.inbox, "linkdir"), filepath.Join(f.inbox, "linkdir", "secret.pdf")} {
		if _, err := Scan(context.Background(), f.opts, []string{p}, nil); !errors.Is(err, ErrThroughLink) {
			t.Errorf("%s: %v, want ErrThroughLink", p, err)
		}
	}
	if !exists(secret) {
		t.Errorf("the file outside the inbox was moved")
	}
	// An allowed root works like an inbox.
	extra := filepath.Join(f.base, "extra")
	os.MkdirAll(extra, 0o755)
	p := filepath.Join(extra, "x.pdf")
	os.WriteFile(p, pdf("extra"), 0o644)
	os.Chtimes(p, old, old)
	o := f.opts
	o.AllowedRoots = []string{extra}
	if sum, err := Scan(context.Background(), o, []string{p}, nil); err != nil || sum.Queued != 1 {
		t.Errorf("file in an allowed root: %+v, %v", sum, err)
	}
	if got, _ := f.q.has(p); got.Root != extra || got.Rel != "x.pdf" || got.Source != "enqueue" {
		t.Errorf("payload %+v, want root %s", got, extra)
	}
}

func TestScanLeavesStillChangingAndIncompleteFiles(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Settle = 300 * time.Millisecond })
	growing := f.write("growing.pdf", pdf("g"))
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.WriteFile(growing, append(pdf("g"), []byte("more")...), 0o644)
	}()
	trunc := f.write("trunc.pdf", []byte("%PDF-1.4\nno end"))
	old := time.Now().Add(-10 * time.Minute)
	os.Chtimes(trunc, old, old)
	sum, err := Scan(context.Background(), f.opts, []string{f.inbox}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Waiting != 2 || sum.Queued != 0 {
		t.Errorf("summary %+v, want both files left waiting", sum)
	}
	o := f.opts
	o.IncompleteTimeout = 200 * time.Millisecond // its old mtime does not count: its ctime is recent
	time.Sleep(250 * time.Millisecond)
	sum, _ = Scan(context.Background(), o, []string{trunc}, nil)
	if sum.Failed != 1 {
		t.Errorf("incomplete for longer than the timeout: %+v, want failed", sum)
	}
	b, _ := os.ReadFile(filepath.Join(f.failed, "trunc.pdf") + worker.FailedSuffix)
	if !strings.Contains(string(b), "incomplete file") {
		t.Errorf("sidecar %s", b)
	}
}

// A copy that keeps its source's old mtime (robocopy, cp -p, rsync -t) is
// still being written: its recent ctime holds it back for the settle time,
// and a file that grows meanwhile is left for a later run, not queued with
// half its content.
func TestScanOldMtimeStillWritten(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Settle = 400 * time.Millisecond })
	old := time.Now().Add(-24 * time.Hour)
	tiff := append([]byte("II*\x00"), make([]byte, 4096)...) // TIFF has no end marker to wait for
	path := f.write("copied.tif", tiff)
	os.Chtimes(path, old, old)
	go func() {
		time.Sleep(150 * time.Millisecond)
		fh, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		fh.Write(make([]byte, 4096))
		fh.Close()
		os.Chtimes(path, old, old) // the copy tool sets the source's times again
	}()
	start := time.Now()
	sum, err := Scan(context.Background(), f.opts, []string{f.inbox}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Queued != 0 || sum.Waiting != 1 {
		t.Errorf("summary %+v, want the file left waiting, not queued half-written", sum)
	}
	if took := time.Since(start); took < f.opts.Settle {
		t.Errorf("scan took %v: the file with an old mtime was not given the settle time", took)
	}
	// Once quiet, it is queued whole.
	time.Sleep(f.opts.Settle)
	sum, _ = Scan(context.Background(), f.opts, []string{f.inbox}, nil)
	p, ok := f.q.has(path)
	if sum.Queued != 1 || !ok || p.Size != 8196 {
		t.Errorf("second scan %+v, payload %+v; want it queued with all 8196 bytes", sum, p)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A name swapped for a symbolic link or a FIFO after it was looked at is not
// read: openRegular refuses both without blocking.
func TestOpenRegularRefusesSwappedNames(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside.pdf")
	os.WriteFile(outside, []byte("%PDF-1.4\n%%EOF\n"), 0o644)
	link := filepath.Join(dir, "link.pdf")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if fh, err := openRegular(link); err == nil {
		fh.Close()
		t.Errorf("openRegular followed a symbolic link")
	}
	fifo := filepath.Join(dir, "fifo.pdf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		fh, err := openRegular(fifo)
		if err == nil {
			fh.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("openRegular opened a FIFO")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("openRegular blocked on a FIFO")
	}
	if fh, err := openRegular(outside); err != nil {
		t.Errorf("openRegular of a regular file: %v", err)
	} else {
		fh.Close()
	}
}
