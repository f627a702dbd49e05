package watcher

import (
	"bytes"
	"io"
	"os"

	"github.com/natif-uploader/natif-uploader/worker"
)

// tailLen is how much of a file's end is read to find its end marker: PDF
// writers may put a little after %%EOF, but not kilobytes.
const tailLen = 1024

// Completeness is what a look at a file's ends says.
type Completeness int

const (
	Complete    Completeness = iota
	Incomplete               // a supported type whose end marker is missing: still being written
	Unsupported              // not a type natif takes: fails at the worker without an upload
	// Unreadable is a file this process may not read (permissions). It is
	// looked at again like an incomplete file, since a copy tool may still
	// set its mode, and fails after NATIF_INCOMPLETE_TIMEOUT with the reason.
	Unreadable
)

// CheckComplete reads the first bytes and the last kilobyte of the file: PDF
// must end with %%EOF (trailing whitespace or NULs allowed), JPEG with the EOI
// marker FF D9, PNG with its IEND chunk. GIF and TIFF have no reliable end
// marker: quiet time alone decides for them.
func CheckComplete(f *os.File, size int64) (Completeness, error) {
	head := make([]byte, worker.SniffLen)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return Incomplete, err
	}
	ctype, ok := worker.Sniff(head[:n])
	if !ok {
		return Unsupported, nil
	}
	tl := int64(tailLen)
	if size < tl {
		tl = size
	}
	tail := make([]byte, tl)
	if _, err := f.ReadAt(tail, size-tl); err != nil && err != io.EOF {
		return Incomplete, err
	}
	switch ctype {
	case "application/pdf":
		t := bytes.TrimRight(tail, " \t\r\n\f\x00")
		if bytes.HasSuffix(t, []byte("%%EOF")) {
			return Complete, nil
		}
		return Incomplete, nil
	case "image/jpeg":
		t := bytes.TrimRight(tail, "\x00")
		if bytes.HasSuffix(t, []byte{0xFF, 0xD9}) {
			return Complete, nil
		}
		return Incomplete, nil
	case "image/png":
		if bytes.HasSuffix(tail, []byte{0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82}) {
			return Complete, nil
		}
		return Incomplete, nil
	}
	return Complete, nil
}
