package fakeapi

import "bytes"

// File kinds natif accepts, told apart by their first bytes, never by the file name.
const (
	kindPDF  = "pdf"
	kindJPEG = "jpeg"
	kindPNG  = "png"
	kindGIF  = "gif"
	kindTIFF = "tiff"
)

// sniffer keeps the first bytes written to it: enough for every magic number we check.
type sniffer struct {
	head [8]byte
	n    int
}

func (sn *sniffer) Write(p []byte) (int, error) {
	if sn.n < len(sn.head) {
		sn.n += copy(sn.head[sn.n:], p)
	}
	return len(p), nil
}

// kind names the file type by its magic number, or "" for anything natif would reject
// (including an empty file).
func (sn *sniffer) kind() string {
	h := sn.head[:sn.n]
	switch {
	case bytes.HasPrefix(h, []byte("%PDF-")):
		return kindPDF
	case bytes.HasPrefix(h, []byte{0xFF, 0xD8, 0xFF}):
		return kindJPEG
	case bytes.HasPrefix(h, []byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}):
		return kindPNG
	case bytes.HasPrefix(h, []byte("GIF87a")), bytes.HasPrefix(h, []byte("GIF89a")):
		return kindGIF
	case bytes.HasPrefix(h, []byte{'I', 'I', '*', 0}), bytes.HasPrefix(h, []byte{'M', 'M', 0, '*'}):
		return kindTIFF
	}
	return ""
}

// mayBePDF reports whether the bytes seen so far still allow a PDF, so the page scanner can be
// skipped for images.
func (sn *sniffer) mayBePDF() bool {
	n := min(sn.n, 5)
	return bytes.Equal(sn.head[:n], []byte("%PDF-")[:n])
}

// States of pdfPageCounter.
const (
	pdfIdle = iota // looking for '/'
	pdfType        // matched the first pos bytes of "/Type"
	pdfGap         // matched "/Type", skipping whitespace up to the '/' of "/Page"
	pdfPage        // matched the first pos bytes of "/Page"
	pdfEnd         // matched "/Page"; the next byte decides (a name character means "/Pages" & co.)
)

// pdfPageCounter counts page objects in a PDF fed to it in pieces of any size: the entries
// "/Type /Page" (any PDF whitespace, or none, between the two names) where "/Page" is a whole
// name, so "/Type /Pages" (the page tree) is not counted.
//
// It is a state machine rather than a search in each piece because a match can straddle two
// reads (a multipart part arrives in whatever pieces the network delivers); the state carries
// the partial match across Write calls. In the idle state it jumps with IndexByte to the next
// '/', which keeps it fast on compressed streams.
//
// Pages in compressed object streams are not seen, which is why the caller counts at least 1.
type pdfPageCounter struct {
	pages int
	state int
	pos   int // bytes of the current literal matched, in pdfType and pdfPage
}

func (c *pdfPageCounter) Write(p []byte) (int, error) {
	const typeName, pageName = "/Type", "/Page"
	for i := 0; i < len(p); {
		b := p[i]
		switch c.state {
		case pdfIdle:
			j := bytes.IndexByte(p[i:], '/')
			if j < 0 {
				return len(p), nil
			}
			i += j + 1
			c.state, c.pos = pdfType, 1
		case pdfType:
			if b == typeName[c.pos] {
				i++
				if c.pos++; c.pos == len(typeName) {
					c.state = pdfGap
				}
				continue
			}
			c.state = pdfIdle // look at b again: it may start a new name
		case pdfGap:
			switch {
			case isPDFSpace(b):
				i++
			case b == '/':
				i++
				c.state, c.pos = pdfPage, 1
			default: // "/TypeX": not the Type key
				c.state = pdfIdle
			}
		case pdfPage:
			if b == pageName[c.pos] {
				i++
				if c.pos++; c.pos == len(pageName) {
					c.state = pdfEnd
				}
				continue
			}
			if c.pos == 1 {
				// Only the '/' was consumed: it may begin another "/Type" ("/Type/Type /Page").
				c.state = pdfType
				continue
			}
			c.state = pdfIdle
		case pdfEnd:
			if !isPDFRegular(b) {
				c.pages++
			}
			c.state = pdfIdle // look at b again: a delimiter '/' starts the next name
		}
	}
	return len(p), nil
}

// Pages returns the page objects counted, including one that ends exactly at the end of the
// input.
func (c *pdfPageCounter) Pages() int {
	if c.state == pdfEnd {
		return c.pages + 1
	}
	return c.pages
}

// isPDFSpace reports the PDF whitespace characters (ISO 32000-1, 7.2.2).
func isPDFSpace(b byte) bool {
	switch b {
	case 0, '\t', '\n', '\f', '\r', ' ':
		return true
	}
	return false
}

// isPDFRegular reports whether b may continue a name: anything but whitespace and delimiters.
func isPDFRegular(b byte) bool {
	switch b {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return false
	}
	return !isPDFSpace(b)
}
