package main

// Test files: valid-looking PDFs ("%PDF-1.4" ... "%%EOF\n") of an exact size, each with
// distinct content (a unique header line), written in parallel.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// filler is random bytes every file copies from, so that files are not compressible and no
// byte pattern (like "/Type /Page") repeats by design.
var filler = func() []byte {
	r := rand.New(rand.NewChaCha8([32]byte{'n', 'a', 't', 'i', 'f'}))
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

const pdfTrailer = "\n%%EOF\n"

// writePDF writes a file of exactly size bytes (size must be at least 100).
func writePDF(path, tag string, size int64) error {
	head := fmt.Sprintf("%%PDF-1.4\n%% natif-uploader bench %s\n", tag)
	if size < int64(len(head)+len(pdfTrailer)) {
		return fmt.Errorf("size %d too small for a PDF", size)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, min(size, 1<<20+64))
	buf = append(buf, head...)
	body := size - int64(len(head)) - int64(len(pdfTrailer))
	off := int(uint(len(tag)*7919+int(size)) % uint(len(filler)))
	for body > 0 {
		chunk := min(body, int64(cap(buf)-len(buf)))
		if chunk == 0 {
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return err
			}
			buf = buf[:0]
			continue
		}
		for chunk > 0 {
			n := min(chunk, int64(len(filler)-off))
			buf = append(buf, filler[off:off+int(n)]...)
			off = (off + int(n)) % len(filler)
			chunk -= n
			body -= n
		}
	}
	buf = append(buf, pdfTrailer...)
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fileName is the name of file i of a set.
func fileName(prefix string, i int) string { return fmt.Sprintf("%s%06d.pdf", prefix, i) }

// writeSet writes n files named prefix000000.pdf... into dir with `workers` writers, and
// returns their paths. tag makes the content distinct from every other set.
func writeSet(dir, prefix, tag string, n int, size int64, workers int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fileName(prefix, i))
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int, 1024)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := writePDF(paths[i], fmt.Sprintf("%s %d", tag, i), size); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	return paths, firstErr
}

// moveAll renames every path into dir (same file system), in order, and returns the new paths.
func moveAll(paths []string, dir string) ([]string, error) {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Join(dir, filepath.Base(p))
		if err := os.Rename(p, out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// collectDone moves the uploaded files named in names back from a done folder into dir, so
// that the same files serve the next run. The sidecars stay until the benchmark exits.
//
// The run folders of the throughput, chart and scaling parts are removed only with the whole
// temporary folder at exit, never between runs: deleting thousands of sidecars right before
// the next run makes ext4's inode allocator skip each recently deleted inode (perf shows
// recently_deleted under __ext4_new_inode at 10 % of the daemon's samples), a cost the next
// run's sidecars would pay and that a daemon in production, which deletes nothing, does not.
func collectDone(done string, names []string, dir string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
		if err := os.Rename(filepath.Join(done, n), out[i]); err != nil {
			return nil, fmt.Errorf("collect uploaded file: %w", err)
		}
	}
	return out, nil
}

// countFiles counts the entries of dir that are not sidecars (*.natif.json, *.error.json).
func countFiles(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(4096)
		for _, name := range names {
			if !strings.HasSuffix(name, ".natif.json") && !strings.HasSuffix(name, ".error.json") {
				n++
			}
		}
		if err != nil {
			break
		}
	}
	return n, nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// waitDone waits until n files are in f.Done, watching the simulator's count of 201s first
// (cheap) and the done folder after. It fails when a file lands in f.Failed or nothing moves
// for stall.
func (b *bench) waitDone(f folders, n int, base int64, stall time.Duration, d ...*daemon) error {
	last, lastChange := int64(-1), time.Now()
	for {
		for _, dm := range d {
			select {
			case <-dm.exited:
				return fmt.Errorf("daemon exited: %v\n%s", dm.waitErr, tail(dm.logPath, 20))
			default:
			}
		}
		ok := b.sim.ok.Load() - base
		if ok >= int64(n) {
			got, err := countFiles(f.Done)
			if err != nil {
				return err
			}
			if got >= n {
				return nil
			}
			if int64(got)+ok != last {
				last, lastChange = int64(got)+ok, time.Now()
			}
			// Counting a folder of 2n entries is not free: poll big ones less often.
			time.Sleep(time.Duration(max(5, n/500)) * time.Millisecond)
		} else {
			if ok != last {
				last, lastChange = ok, time.Now()
			}
			time.Sleep(5 * time.Millisecond)
		}
		if time.Since(lastChange) > stall {
			failed, _ := countFiles(f.Failed)
			msg := ""
			for _, dm := range d {
				msg += "\n" + tail(dm.logPath, 10)
			}
			return fmt.Errorf("no progress for %v: %d uploads of %d, %d failed%s", stall, ok, n, failed, msg)
		}
	}
}
