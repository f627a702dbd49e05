package watcher

import (
	"bytes"
	"os"
	"testing"

	"github.com/natif-uploader/natif-uploader/worker"
)

// fzEndMarker is what completes each type that has an end marker.
var fzEndMarker = map[string][]byte{
	"application/pdf": []byte("\n%%EOF\n"),
	"image/jpeg":      {0xFF, 0xD9},
	"image/png":       {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82},
}

// fzCheck writes content to a file in dir and runs CheckComplete on it with
// the given size.
func fzCheck(t *testing.T, dir string, content []byte, size int64) Completeness {
	t.Helper()
	f, err := os.CreateTemp(dir, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	c, err := CheckComplete(f, size)
	if err != nil {
		t.Fatalf("CheckComplete(%d bytes, size %d): %v", len(content), size, err)
	}
	if c != Complete && c != Incomplete && c != Unsupported {
		t.Fatalf("CheckComplete = %d, not a Completeness", c)
	}
	return c
}

// FuzzCheckComplete: unsupported exactly when Sniff refuses the first bytes;
// GIF and TIFF are always complete; a PDF, JPEG or PNG is complete once its
// end marker is appended and incomplete when bytes follow the marker; and the
// answer for a size depends only on the bytes below that size (a file that
// grew after its size was taken is judged as it was).
func FuzzCheckComplete(f *testing.F) {
	png := []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'}
	f.Add([]byte("%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"), uint16(0))
	f.Add([]byte("%PDF-1.7\nbody\n%%EOF\r\n \x00\x00"), uint16(20))
	f.Add([]byte("%PDF-1.7\nbody\n"), uint16(9))
	f.Add([]byte("%PDF-1.4\n%%EOF\nincremental update\n"), uint16(15))
	f.Add(append(bytes.Repeat([]byte("x"), 2000), "%%EOF"...), uint16(0))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 0xFF, 0xD9}, uint16(8))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 0xFF, 0xD9, 0, 0}, uint16(0))
	f.Add([]byte{0xFF, 0xD8, 0xFF}, uint16(0))
	f.Add(append(png, fzEndMarker["image/png"]...), uint16(16))
	f.Add(png, uint16(0))
	f.Add([]byte("GIF89a\x01\x00\x01\x00"), uint16(0))
	f.Add([]byte("MM\x00\x2a\x00\x00\x00\x08"), uint16(0))
	f.Add([]byte("hello"), uint16(0))
	f.Add([]byte(""), uint16(0))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte, cut uint16) {
		got := fzCheck(t, dir, content, int64(len(content)))
		ctype, ok := worker.Sniff(content[:min(len(content), worker.SniffLen)])
		if (got == Unsupported) != !ok {
			t.Fatalf("CheckComplete = %v, Sniff says %q, %v", got, ctype, ok)
		}
		if !ok {
			return
		}
		marker, hasMarker := fzEndMarker[ctype]
		if !hasMarker {
			if got != Complete {
				t.Fatalf("%s has no end marker but is %v", ctype, got)
			}
			return
		}
		if c := fzCheck(t, dir, append(append([]byte(nil), content...), marker...), int64(len(content)+len(marker))); c != Complete {
			t.Fatalf("%s with its end marker appended is %v", ctype, c)
		}
		after := append(append(append([]byte(nil), content...), marker...), 'x')
		if c := fzCheck(t, dir, after, int64(len(after))); c != Incomplete {
			t.Fatalf("%s with a byte after its end marker is %v, want incomplete", ctype, c)
		}
		// A file that grew: judged at an older size, it must read as the
		// prefix of that size would (sizes from SniffLen up, since the
		// first bytes are always read whole).
		if n := int(cut); n >= worker.SniffLen && n < len(content) {
			if a, b := fzCheck(t, dir, content, int64(n)), fzCheck(t, dir, content[:n], int64(n)); a != b {
				t.Fatalf("size %d of a %d-byte file gives %v, the %d-byte prefix %v", n, len(content), a, n, b)
			}
		}
	})
}
