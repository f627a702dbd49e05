package fakeapi

import (
	"bytes"
	"testing"
)

// countPages feeds in to a fresh counter in pieces of size chunk, as a network read would.
func countPages(in []byte, chunk int) int {
	var c pdfPageCounter
	for len(in) > 0 {
		n := min(chunk, len(in))
		c.Write(in[:n])
		in = in[n:]
	}
	return c.Pages()
}

func TestPDFPageCounter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc string
		in   string
		want int
	}{
		{"the page tree node is not a page", "<< /Type /Pages /Count 2 >>", 0},
		{"one page", "<< /Type /Page /Parent 2 0 R >>", 1},
		{"no whitespace between the names", "<</Type/Page/Parent 2 0 R>>", 1},
		{"any PDF whitespace between the names", "<< /Type\r\n\t\f\x00 /Page>>", 1},
		{"ends the input", "<< /Type /Page", 1},
		{"followed by a comment", "/Type /Page%c\n", 1},
		{"followed by a dictionary end", "/Type /Page>>", 1},
		{"a longer name is not /Page", "/Type /PageLabel /Type /Pagex", 0},
		{"a longer key is not /Type", "/Types /Page /TypeX /Page", 0},
		{"something between the names", "/Type x /Page", 0},
		{"a name repeated before the match", "/Type/Type /Page", 1},
		{"a slash run", "///Type //Type /Page", 1},
		{"prefix of /Type", "/Typ /Page", 0},
		{"back to back", "/Type /Page/Type /Page /Type/Page", 3},
		{"generated three-page PDF", string(pdf(3)), 3},
		{"binary noise", "\xff/\x00/T\x01/Ty/Type\xff/Page", 0},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			for _, chunk := range []int{1, 2, 3, 5, 7, 11, 64, len(c.in) + 1} {
				if got := countPages([]byte(c.in), chunk); got != c.want {
					t.Errorf("read %d bytes at a time: got %d pages, want %d", chunk, got, c.want)
				}
			}
		})
	}
}

// TestPDFPageCounterEverySplit cuts a generated PDF in two at every byte position, so that
// each "/Type /Page" straddles a read boundary at every possible point of the match.
func TestPDFPageCounterEverySplit(t *testing.T) {
	t.Parallel()
	in := pdf(3)
	for i := range len(in) + 1 {
		var c pdfPageCounter
		c.Write(in[:i])
		c.Write(in[i:])
		if got := c.Pages(); got != 3 {
			t.Fatalf("split at byte %d (%q|%q): got %d pages, want 3", i, in[max(0, i-8):i], in[i:min(len(in), i+8)], got)
		}
	}
}

func TestSniffer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc string
		in   []byte
		want string
	}{
		{"PDF", []byte("%PDF-1.7\n"), kindPDF},
		{"JPEG", jpegFile, kindJPEG},
		{"PNG", pngFile, kindPNG},
		{"GIF87a", gif87File, kindGIF},
		{"GIF89a", gif89File, kindGIF},
		{"TIFF II", tiffIIFile, kindTIFF},
		{"TIFF MM", tiffMMFile, kindTIFF},
		{"empty", nil, ""},
		{"PDF without the dash", []byte("%PDF1.7"), ""},
		{"GIF of an unknown version", []byte("GIF88a"), ""},
		{"TIFF with the wrong byte order mark", []byte{'I', 'I', 0, '*'}, ""},
		{"text", []byte("hello"), ""},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			var sn sniffer
			for _, b := range c.in { // one byte per write: the head must assemble across writes
				sn.Write([]byte{b})
			}
			if got := sn.kind(); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func BenchmarkPDFPageCounter(b *testing.B) {
	in := bytes.Repeat(pdf(50), 200)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		countPages(in, 32<<10)
	}
}
