package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

// A 100 MB file uploads with the heap growing by less than 16 MB: the body
// is streamed from disk, never held whole. The simulator runs in this process
// too and streams as well, so the figure bounds both sides.
func TestLargeUploadConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB upload skipped in -short mode")
	}
	const size = 100_000_000
	e := newEnv(t, fakeapi.Options{MaxUploadBytes: 200_000_000}, nil)
	path := filepath.Join(e.inbox, "big.pdf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n")
	// Mostly a hole: the disk stays free, the bytes still travel.
	if err := f.Truncate(size - 6); err != nil {
		t.Fatal(err)
	}
	f.Seek(size-6, io.SeekStart)
	f.WriteString("%%EOF\n")
	f.Close()
	in, _ := os.Open(path)
	h := sha256.New()
	io.Copy(h, in)
	in.Close()
	p := Payload{Path: path, Root: e.inbox, Rel: "big.pdf", Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	err = e.process(p)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Stats().UploadsBySHA256[p.SHA256]; n != 1 {
		t.Fatalf("the simulator got %d complete copies, want 1", n)
	}
	growth := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("100 MB upload: heap %d MB before, peak %d MB, growth %.1f MB", base.HeapAlloc>>20, peak.Load()>>20, float64(growth)/(1<<20))
	if growth > 16<<20 {
		t.Errorf("heap grew by %.1f MB during a 100 MB upload, want under 16 MB", float64(growth)/(1<<20))
	}
}
