package worker

import "bytes"

// SniffLen is how many leading bytes Sniff needs.
const SniffLen = 8

// Sniff returns the MIME type of a supported document from its first bytes:
// natif accepts PDF, JPEG, PNG, GIF and TIFF, decided by content, never by
// the file name (SPEC section 4).
func Sniff(head []byte) (string, bool) {
	switch {
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return "application/pdf", true
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg", true
	case bytes.HasPrefix(head, []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}):
		return "image/png", true
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return "image/gif", true
	case bytes.HasPrefix(head, []byte{'I', 'I', 42, 0}), bytes.HasPrefix(head, []byte{'M', 'M', 0, 42}):
		return "image/tiff", true
	}
	return "", false
}
