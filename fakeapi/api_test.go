package fakeapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAPIAuthentication(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{APIKeys: []string{"k1", "k2"}})
	tok := e.login("")
	cases := []struct {
		desc string
		auth string
		want int
	}{
		{"first API key", "ApiKey k1", 201},
		{"second API key", "ApiKey k2", 201},
		{"bearer access token", bearer(tok.access), 201},
		{"the default key is not configured", apiKey, 401},
		{"wrong API key", "ApiKey k3", 401},
		{"API key sent as a bearer token", "Bearer k1", 401},
		{"no Authorization header", "", 401},
		{"garbage bearer token", "Bearer abc.def.ghi", 401},
		{"refresh token as bearer token", bearer(tok.refresh), 401},
		{"basic auth", "Basic ZGVtbzpkZW1v", 401},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			r := e.upload("/documents/", c.auth, filePart("a.pdf", pdf(1)))
			if r.status != c.want {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, c.want)
			}
			if c.want == 401 {
				if r.detail() != "Credentials could not be validated" || r.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
					t.Errorf("401: got detail %q and WWW-Authenticate %q", r.detail(), r.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

func TestUploadFileTypes(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	cases := []struct {
		desc      string
		filename  string
		content   []byte
		wantPages float64 // 0: want 415
	}{
		{"three-page PDF", "invoice.pdf", pdf(3), 3},
		{"PDF whose pages are not visible counts one page", "packed.pdf", []byte("%PDF-1.5\n1 0 obj <</Type /ObjStm>> stream\nxx\nendstream\n%%EOF"), 1},
		{"JPEG", "scan.jpg", jpegFile, 1},
		{"PNG", "scan.png", pngFile, 1},
		{"GIF87a", "scan.gif", gif87File, 1},
		{"GIF89a", "scan.gif", gif89File, 1},
		{"TIFF little-endian", "scan.tif", tiffIIFile, 1},
		{"TIFF big-endian", "scan.tiff", tiffMMFile, 1},
		{"PDF missing its leading %", "scan.pdf", pdf(2)[1:], 0},
		{"text named invoice.pdf", "invoice.pdf", []byte("Rechnung Nr. 4711\nBetrag: 12,00 EUR\n"), 0},
		{"empty file", "invoice.pdf", nil, 0},
		{"first half of a PNG signature", "scan.png", pngFile[:4], 0},
		{"ZIP", "invoice.pdf", []byte("PK\x03\x04rest"), 0},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			r := e.upload("/documents/", apiKey, filePart(c.filename, c.content))
			if c.wantPages == 0 {
				if r.status != http.StatusUnsupportedMediaType || r.detail() != "Unsupported file type" {
					t.Errorf("got %d %s, want 415 Unsupported file type", r.status, r.raw)
				}
				return
			}
			wantStatus(t, "upload", r, http.StatusCreated)
			if got := r.num("num_pages"); got != c.wantPages {
				t.Errorf("num_pages: got %v, want %v", got, c.wantPages)
			}
			if r.str("processing_status") != "pending" || r.str("filename_origin") != c.filename ||
				r.str("document_type") != "invoice" || r.str("language") != "de" {
				t.Errorf("document object: got %s", r.raw)
			}
			if !isUUIDLike(r.str("uuid")) {
				t.Errorf("uuid: got %q, want a UUID", r.str("uuid"))
			}
			if _, err := time.Parse(time.RFC3339Nano, r.str("created_at")); err != nil {
				t.Errorf("created_at %q: %v", r.str("created_at"), err)
			}
		})
	}
}

func isUUIDLike(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != 5 {
		return false
	}
	for i, n := range []int{8, 4, 4, 4, 12} {
		if len(parts[i]) != n {
			return false
		}
		if _, err := hex.DecodeString(parts[i]); err != nil {
			return false
		}
	}
	return true
}

func TestUploadTooLarge(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{MaxUploadBytes: 1000})
	exact := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte{'x'}, 991)...)
	wantStatus(t, "exactly MaxUploadBytes", e.upload("/documents/", apiKey, filePart("a.pdf", exact)), http.StatusCreated)

	cases := []struct {
		desc string
		size int
	}{
		{"one byte over, found while streaming", 1001},
		{"64 KiB over, found while streaming", 64 << 10},
		{"3 MiB, refused by Content-Length before reading", 3 << 20},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			content := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte{'x'}, c.size-9)...)
			r := e.upload("/documents/", apiKey, filePart("big.pdf", content))
			if r.status != http.StatusRequestEntityTooLarge || r.detail() != "File too large" {
				t.Errorf("got %d %s, want 413 File too large", r.status, r.raw)
			}
		})
	}
	if got := e.srv.Stats().Uploads; got != 1 {
		t.Errorf("Uploads: got %d, want 1", got)
	}
}

func TestUploadValidation(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	cases := []struct {
		desc    string
		req     func() *http.Request
		wantMsg string
	}{
		{"no file part", func() *http.Request {
			return e.uploadRequest("/documents/", apiKey, part{name: "other", content: []byte("x")})
		}, "field required"},
		{"file part named otherwise", func() *http.Request {
			return e.uploadRequest("/documents/", apiKey, part{name: "document", filename: "a.pdf", content: pdf(1)})
		}, "field required"},
		{"file sent as a plain field", func() *http.Request {
			return e.uploadRequest("/documents/", apiKey, part{name: "file", content: pdf(1)})
		}, "Expected UploadFile, received: <class 'str'>"},
		{"not multipart", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/documents/", strings.NewReader(`{"file":"x"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", apiKey)
			return req
		}, "field required"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			r := e.do(c.req())
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("got %d %s, want 422", r.status, r.raw)
			}
			items, _ := r.body["detail"].([]any)
			if len(items) != 1 {
				t.Fatalf("detail: got %s, want one validation error", r.raw)
			}
			item, _ := items[0].(map[string]any)
			if fmt.Sprint(item["loc"]) != "[body file]" || item["msg"] != c.wantMsg {
				t.Errorf("validation error: got loc=%v msg=%v, want loc=[body file] msg=%q", item["loc"], item["msg"], c.wantMsg)
			}
		})
	}
}

// retryAfter returns the Retry-After header as whole seconds, failing the test unless it is an
// integer of at least 1.
func retryAfter(t *testing.T, r reply) int {
	t.Helper()
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("Retry-After: got %q, want an integer >= 1", r.header.Get("Retry-After"))
	}
	return n
}

func TestPageRateLimits(t *testing.T) {
	t.Parallel()
	type step struct {
		advance   time.Duration
		pages     int
		want      int
		wantRetry int // for 429
	}
	cases := []struct {
		desc  string
		opts  Options
		steps []step
	}{
		{"per minute: allowed while under the limit, then 429 until the window frees", Options{PagesPerMinute: 3}, []step{
			{0, 1, 201, 0}, {0, 1, 201, 0}, {0, 1, 201, 0},
			{0, 1, 429, 60}, {59 * time.Second, 1, 429, 1}, {time.Second, 1, 201, 0},
		}},
		{"per second: one large document may overshoot", Options{PagesPerSecond: 2}, []step{
			{0, 5, 201, 0}, {0, 1, 429, 1}, {time.Second, 1, 201, 0},
		}},
		{"per hour", Options{PagesPerHour: 2}, []step{
			{0, 1, 201, 0}, {10 * time.Minute, 1, 201, 0}, {0, 1, 429, 3000}, {50 * time.Minute, 1, 201, 0}, {0, 1, 429, 600},
		}},
		{"denied requests are not counted", Options{PagesPerMinute: 2}, []step{
			{0, 1, 201, 0}, {0, 1, 201, 0}, {30 * time.Second, 1, 429, 30}, {0, 1, 429, 30},
			{30 * time.Second, 1, 201, 0}, {0, 1, 201, 0}, {0, 1, 429, 60},
		}},
		{"the tightest window decides", Options{PagesPerSecond: 10, PagesPerMinute: 2}, []step{
			{0, 1, 201, 0}, {2 * time.Second, 1, 201, 0}, {2 * time.Second, 1, 429, 56},
		}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			e := setup(t, c.opts)
			denied := 0
			for i, s := range c.steps {
				e.clock.Advance(s.advance)
				r := e.upload("/documents/", apiKey, filePart("a.pdf", pdf(s.pages)))
				if r.status != s.want {
					t.Fatalf("step %d: got %d %s, want %d", i, r.status, r.raw, s.want)
				}
				if s.want == 429 {
					denied++
					n := retryAfter(t, r)
					if n != s.wantRetry {
						t.Errorf("step %d: Retry-After got %d, want %d", i, n, s.wantRetry)
					}
					if want := fmt.Sprintf("Rate limit exceeded (retry in %ds)", n); r.detail() != want {
						t.Errorf("step %d: detail got %q, want %q", i, r.detail(), want)
					}
				}
			}
			if got := e.srv.Stats().RateLimited; got != int64(denied) {
				t.Errorf("RateLimited: got %d, want %d", got, denied)
			}
		})
	}
	t.Run("tenants are limited separately", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{PagesPerMinute: 1})
		tok := e.login("")
		wantStatus(t, "API key tenant", e.upload("/documents/", apiKey, filePart("a.pdf", pdf(1))), 201)
		wantStatus(t, "user tenant", e.upload("/documents/", bearer(tok.access), filePart("a.pdf", pdf(1))), 201)
		wantStatus(t, "API key tenant again", e.upload("/documents/", apiKey, filePart("a.pdf", pdf(1))), 429)
	})
}

func TestMaxPagesPerDocument(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{MaxPagesPerDocument: 2})
	for i := range 2 {
		r := e.upload("/documents/", apiKey, filePart("thick.pdf", pdf(3)))
		if r.status != http.StatusTooManyRequests || !strings.Contains(r.detail(), "page limit") {
			t.Errorf("attempt %d: got %d %s, want 429 naming the page limit", i, r.status, r.raw)
		}
		if h := r.header.Get("Retry-After"); h != "" {
			t.Errorf("attempt %d: Retry-After %q, want none (waiting does not help)", i, h)
		}
		e.clock.Advance(time.Hour)
	}
	wantStatus(t, "two pages", e.upload("/documents/", apiKey, filePart("thin.pdf", pdf(2))), http.StatusCreated)
	if st := e.srv.Stats(); st.Uploads != 1 || st.RateLimited != 2 {
		t.Errorf("stats: got uploads=%d rate_limited=%d, want 1 and 2", st.Uploads, st.RateLimited)
	}
}

func TestQuotaExhausted(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{Faults: Faults{QuotaExhausted: true}})
	for _, path := range []string{"/documents/", "/processing/invoice_extraction"} {
		r := e.upload(path, apiKey, filePart("a.pdf", pdf(1)))
		if r.status != http.StatusPaymentRequired || r.detail() != "Processing limit of the account's plan reached" {
			t.Errorf("POST %s: got %d %s, want 402", path, r.status, r.raw)
		}
	}
	if st := e.srv.Stats(); st.QuotaRejected != 2 || st.Uploads != 0 {
		t.Errorf("stats: got quota_rejected=%d uploads=%d, want 2 and 0", st.QuotaRejected, st.Uploads)
	}
}

func TestScopes(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	doc := e.upload("/documents/", apiKey, filePart("a.pdf", pdf(1))).str("uuid")
	cases := []struct {
		scope              string
		wantPost, wantRead int
	}{
		{"capturing_read", 403, 200},
		{"capturing_write", 201, 403},
		{"capturing_read capturing_write", 201, 200},
		{"profile email", 403, 403},
	}
	for _, c := range cases {
		t.Run(c.scope, func(t *testing.T) {
			tok := e.login(c.scope)
			post := e.upload("/documents/", bearer(tok.access), filePart("a.pdf", pdf(1)))
			read := e.get("/documents/"+doc, bearer(tok.access))
			if post.status != c.wantPost || read.status != c.wantRead {
				t.Fatalf("got POST %d, GET %d, want %d and %d", post.status, read.status, c.wantPost, c.wantRead)
			}
			for _, r := range []reply{post, read} {
				if r.status == 403 && r.detail() != "Credentials could not be authorized for this processing request" {
					t.Errorf("403 detail: got %q", r.detail())
				}
			}
		})
	}
	if got := e.srv.Stats().Forbidden; got != 4 {
		t.Errorf("Forbidden: got %d, want 4", got)
	}
}

func TestDocumentLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{ProcessingDelay: 30 * time.Second})
	content := pdf(2)
	created := e.upload("/documents/", apiKey, filePart("rechnung.pdf", content))
	wantStatus(t, "upload", created, http.StatusCreated)
	id := created.str("uuid")

	got := e.get("/documents/"+id, apiKey)
	if got.status != 200 || got.str("processing_status") != "pending" || got.str("uuid") != id || got.num("num_pages") != 2 {
		t.Errorf("GET right after upload: got %d %s, want 200 pending with the same uuid and 2 pages", got.status, got.raw)
	}
	if r := e.get("/documents/"+id+"/extractions", apiKey); r.status != http.StatusConflict {
		t.Errorf("extractions while pending: got %d %s, want 409", r.status, r.raw)
	}
	e.clock.Advance(29 * time.Second)
	if s := e.get("/documents/"+id, apiKey).str("processing_status"); s != "pending" {
		t.Errorf("status at 29 s: got %q, want pending", s)
	}
	e.clock.Advance(time.Second)
	if s := e.get("/documents/"+id, apiKey).str("processing_status"); s != "success" {
		t.Errorf("status at 30 s: got %q, want success", s)
	}
	ex := e.get("/documents/"+id+"/extractions", apiKey)
	wantStatus(t, "extractions", ex, http.StatusOK)
	if !strings.HasPrefix(ex.str("invoice_number"), "INV-") || ex.str("currency") != "EUR" || ex.num("total_amount") <= 0 ||
		ex.str("vendor_name") == "" || ex.str("invoice_date") == "" {
		t.Errorf("extractions: got %s", ex.raw)
	}

	// Same content, same extractions: they derive from the sha256.
	again := e.upload("/documents/", apiKey, filePart("copy.pdf", content)).str("uuid")
	e.clock.Advance(30 * time.Second)
	if ex2 := e.get("/documents/"+again+"/extractions", apiKey); !bytes.Equal(ex2.raw, ex.raw) {
		t.Errorf("extractions of the same content: got %s, want %s", ex2.raw, ex.raw)
	}
	sum := sha256.Sum256(content)
	if got := e.srv.Stats().UploadsBySHA256[hex.EncodeToString(sum[:])]; got != 2 {
		t.Errorf("UploadsBySHA256 of the twice-uploaded content: got %d, want 2", got)
	}

	for _, path := range []string{"/documents/00000000-0000-4000-8000-000000000000", "/documents/nope/extractions"} {
		if r := e.get(path, apiKey); r.status != 404 || r.detail() != "Document not found" {
			t.Errorf("GET %s: got %d %s, want 404 Document not found", path, r.status, r.raw)
		}
	}
}

func TestProcessingAsync(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{ProcessingDelay: 30 * time.Second})
	r := e.upload("/processing/invoice_extraction?wait_for=0", apiKey, filePart("a.pdf", pdf(2)))
	wantStatus(t, "POST /processing with wait_for=0", r, http.StatusAccepted)
	id := r.str("processing_id")
	if len(r.body) != 2 || !isUUIDLike(id) {
		t.Fatalf("202 body: got %s, want exactly {processing_id, url}", r.raw)
	}
	if got, want := r.str("url"), e.url+"/processing/results/"+id; got != want {
		t.Fatalf("url: got %q, want %q", got, want)
	}
	poll := e.get(r.str("url")+"?wait_for=0", apiKey)
	if poll.status != http.StatusAccepted || poll.str("processing_id") != id {
		t.Errorf("GET result while pending: got %d %s, want 202 with the same processing_id", poll.status, poll.raw)
	}
	e.clock.Advance(30 * time.Second)
	done := e.get(r.str("url"), apiKey)
	wantStatus(t, "GET result when done", done, http.StatusOK)
	if done.str("processing_id") != id || done.str("status") != "success" || done.str("workflow") != "invoice_extraction" ||
		done.num("num_pages") != 2 || done.str("filename_origin") != "a.pdf" || done.body["ocr"] == nil || done.body["extractions"] == nil {
		t.Errorf("result: got %s", done.raw)
	}
	if r := e.get("/processing/results/00000000-0000-4000-8000-000000000000", apiKey); r.status != 404 {
		t.Errorf("unknown processing id: got %d, want 404", r.status)
	}
}

func TestProcessingLongPoll(t *testing.T) {
	t.Parallel()
	t.Run("the answer comes as soon as the clock says ready", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{ProcessingDelay: 30 * time.Second})
		go func() {
			time.Sleep(150 * time.Millisecond)
			e.clock.Advance(30 * time.Second)
		}()
		start := time.Now()
		r := e.upload("/processing/ocr?wait_for=10", apiKey, filePart("a.pdf", pdf(1)))
		wantStatus(t, "POST with wait_for=10", r, http.StatusCreated)
		if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
			t.Errorf("answered after %v, want after the clock advanced (~150 ms) and well before wait_for", el)
		}
	})
	t.Run("wait_for runs out", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{ProcessingDelay: time.Hour})
		start := time.Now()
		r := e.upload("/processing/ocr?wait_for=1", apiKey, filePart("a.pdf", pdf(1)))
		wantStatus(t, "POST with wait_for=1", r, http.StatusAccepted)
		if el := time.Since(start); el < time.Second {
			t.Errorf("answered after %v, want after wait_for (1 s)", el)
		}
	})
}

func TestProcessingSync(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	pdfFile := filePart("a.pdf", pdf(1))
	params := func(s string) part { return part{name: "parameters", content: []byte(s)} }
	cases := []struct {
		desc      string
		path      string
		parts     []part
		want      int
		wantKeys  []string // result sections present
		wantError string   // loc of a 422, or a detail
	}{
		{"all results when include is absent", "/processing/invoice_extraction", []part{pdfFile}, 201, []string{"ocr", "extractions"}, ""},
		{"include=ocr", "/processing/invoice_extraction?include=ocr", []part{pdfFile}, 201, []string{"ocr"}, ""},
		{"include twice", "/processing/receipt_extraction?include=extractions&include=classifications", []part{pdfFile}, 201, []string{"extractions", "classifications"}, ""},
		{"custom workflow by UUID", "/processing/4f0c3a5e-2b9d-4c1e-9a7f-0123456789ab", []part{pdfFile}, 201, []string{"ocr", "extractions"}, ""},
		{"parameters before the file", "/processing/delivery_note_extraction", []part{params(`{"language":"de"}`), pdfFile}, 201, []string{"ocr", "extractions"}, ""},
		{"parameters after the file", "/processing/delivery_note_extraction", []part{pdfFile, params(`{"language":"en"}`)}, 201, []string{"ocr", "extractions"}, ""},
		{"bad parameters before the file", "/processing/delivery_note_extraction", []part{params(`{language: de}`), pdfFile}, 422, nil, "[body parameters]"},
		{"bad parameters after the file", "/processing/delivery_note_extraction", []part{pdfFile, params(`{"language":`)}, 422, nil, "[body parameters]"},
		{"unknown workflow", "/processing/tax_evasion", []part{pdfFile}, 404, nil, "Workflow not found"},
		{"wait_for not a number", "/processing/ocr?wait_for=soon", []part{pdfFile}, 422, nil, "[query wait_for]"},
		{"negative wait_for", "/processing/ocr?wait_for=-1", []part{pdfFile}, 422, nil, "[query wait_for]"},
		{"unknown include", "/processing/ocr?include=everything", []part{pdfFile}, 422, nil, "[query include]"},
		{"not a supported type", "/processing/ocr", []part{filePart("a.pdf", []byte("hello"))}, 415, nil, "Unsupported file type"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			r := e.upload(c.path, apiKey, c.parts...)
			if r.status != c.want {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, c.want)
			}
			switch {
			case c.want == 201:
				if r.str("status") != "success" || r.str("processing_id") == "" || r.num("num_pages") != 1 {
					t.Errorf("result: got %s", r.raw)
				}
				for _, k := range []string{"ocr", "extractions", "classifications"} {
					if _, ok := r.body[k]; ok != slices.Contains(c.wantKeys, k) {
						t.Errorf("section %q present: got %v, want %v", k, ok, !ok)
					}
				}
			case c.want == 422:
				items, _ := r.body["detail"].([]any)
				if len(items) != 1 || fmt.Sprint(items[0].(map[string]any)["loc"]) != c.wantError {
					t.Errorf("422 body: got %s, want loc %s", r.raw, c.wantError)
				}
			default:
				if r.detail() != c.wantError {
					t.Errorf("detail: got %q, want %q", r.detail(), c.wantError)
				}
			}
		})
	}
}

func TestInjectedFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc       string
		faults     Faults
		wantStatus int
		check      func(t *testing.T, r reply, st Stats)
	}{
		{"server errors", Faults{ServerErrorRate: 1}, 503, func(t *testing.T, r reply, st Stats) {
			if st.ServerErrors != 1 {
				t.Errorf("ServerErrors: got %d, want 1", st.ServerErrors)
			}
		}},
		{"rate limit", Faults{RateLimitRate: 1}, 429, func(t *testing.T, r reply, st Stats) {
			if n := retryAfter(t, r); n != 1 {
				t.Errorf("Retry-After: got %d, want 1", n)
			}
			if st.RateLimited != 1 {
				t.Errorf("RateLimited: got %d, want 1", st.RateLimited)
			}
		}},
		{"drops hit uploads only", Faults{DropRate: 1}, 404, nil},
		{"faults come before authentication", Faults{ServerErrorRate: 1}, 503, nil},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			e := setup(t, Options{Faults: c.faults})
			auth := apiKey
			if strings.Contains(c.desc, "authentication") {
				auth = "ApiKey wrong"
			}
			r := e.get("/documents/00000000-0000-4000-8000-000000000000", auth)
			if r.status != c.wantStatus {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, c.wantStatus)
			}
			if c.check != nil {
				c.check(t, r, e.srv.Stats())
			}
		})
	}
	t.Run("latency", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{Faults: Faults{Latency: 100 * time.Millisecond}})
		start := time.Now()
		e.get("/documents/x", apiKey)
		e.login("")
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Errorf("two requests with 100 ms latency took %v, want >= 200 ms", el)
		}
	})
}

func TestSeedReplaysFaults(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) []int {
		e := setup(t, Options{Seed: seed, Faults: Faults{ServerErrorRate: 0.5}})
		var got []int
		for range 24 {
			got = append(got, e.get("/documents/x", apiKey).status)
		}
		return got
	}
	a, b := run(42), run(42)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different faults: got %v and %v", a, b)
	}
	if !slices.Contains(a, 503) || !slices.Contains(a, 404) {
		t.Errorf("rate 0.5 over 24 requests: got %v, want both 503 and 404", a)
	}
}

func TestDroppedUpload(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{Faults: Faults{DropRate: 1}})
	content := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("0123456789"), 20000)...)
	resp, err := e.client.Do(e.uploadRequest("/documents/", apiKey, filePart("a.pdf", content)))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("upload with DropRate 1: got status %d, want a transport error (no answer)", resp.StatusCode)
	}
	st := e.srv.Stats()
	if st.DroppedConnections != 1 || st.Uploads != 0 || len(st.UploadsBySHA256) != 0 {
		t.Errorf("stats: got dropped=%d uploads=%d by_sha=%v, want 1, 0, none", st.DroppedConnections, st.Uploads, st.UploadsBySHA256)
	}
}

// A lost upload is stored (the content counts as uploaded) and answered with a dropped
// connection; the retry stores the same content a second time, as natif would.
func TestLostUpload(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{Faults: Faults{LoseUploadRate: 1}})
	content := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("lost"), 1000)...)
	for try := 1; try <= 2; try++ {
		resp, err := e.client.Do(e.uploadRequest("/documents/", apiKey, filePart("a.pdf", content)))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("upload %d with LoseUploadRate 1: got status %d, want a transport error (no answer)", try, resp.StatusCode)
		}
	}
	st := e.srv.Stats()
	sum := sha256.Sum256(content)
	if st.LostUploads != 2 || st.Uploads != 2 || st.UploadsBySHA256[hex.EncodeToString(sum[:])] != 2 {
		t.Errorf("stats: got lost=%d uploads=%d by_sha=%v, want 2, 2 and this content twice", st.LostUploads, st.Uploads, st.UploadsBySHA256)
	}
}

// TestLargeUploadStreams sends 20 MB, produced while it is sent, and checks the server's hash
// of it. It is not a memory measurement (those are flaky); it proves the streaming path hashes
// every byte of a large multi-read upload.
func TestLargeUploadStreams(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	const size = 20 << 20
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	h := sha256.New()
	go func() {
		fw, err := mw.CreateFormFile("file", "big.pdf")
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		w := io.MultiWriter(fw, h)
		head := []byte("%PDF-1.7\n1 0 obj <</Type /Page>> endobj\n")
		_, _ = w.Write(head)
		rng := rand.New(rand.NewChaCha8([32]byte{7}))
		buf := make([]byte, 32<<10)
		for left := size - len(head); left > 0; left -= len(buf) {
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			_, _ = w.Write(buf[:min(len(buf), left)])
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/documents/", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", apiKey)
	r := e.do(req)
	wantStatus(t, "20 MB upload", r, http.StatusCreated)
	sum := hex.EncodeToString(h.Sum(nil))
	st := e.srv.Stats()
	if st.UploadsBySHA256[sum] != 1 || st.BytesReceived != size {
		t.Errorf("stats: got by_sha=%v bytes=%d, want {%s:1} and %d", st.UploadsBySHA256, st.BytesReceived, sum, size)
	}
}

func TestConcurrentUploads(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("")
	const n = 64
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			auth := apiKey
			if i%2 == 0 {
				auth = bearer(tok.access)
			}
			// 32 distinct contents, each uploaded twice.
			content := append(pdf(1+(i/2)%3), fmt.Sprintf("%% copy %d\n", i/2)...)
			req := e.uploadRequest("/documents/", auth, filePart("a.pdf", content))
			resp, err := e.client.Do(req)
			if err != nil {
				t.Errorf("upload %d: %v", i, err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusCreated {
			t.Errorf("upload %d: got %d, want 201", i, s)
		}
	}
	st := e.srv.Stats()
	if st.Uploads != n || len(st.UploadsBySHA256) != n/2 {
		t.Errorf("stats: got uploads=%d distinct=%d, want %d and %d", st.Uploads, len(st.UploadsBySHA256), n, n/2)
	}
	for sha, c := range st.UploadsBySHA256 {
		if c != 2 {
			t.Errorf("UploadsBySHA256[%s]: got %d, want 2", sha[:12], c)
		}
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	cases := []struct {
		method, path string
		want         int
		wantDetail   string
	}{
		{"GET", "/", 404, "Not Found"},
		{"GET", "/v1/documents", 404, "Not Found"},
		{"GET", "/documents/", 405, "Method Not Allowed"},
		{"DELETE", "/documents/x", 405, "Method Not Allowed"},
		{"POST", "/documents/x/extractions", 405, "Method Not Allowed"},
		{"GET", "/processing/ocr", 405, "Method Not Allowed"},
		{"POST", "/processing/results/x", 405, "Method Not Allowed"},
		{"PUT", "/token", 405, "Method Not Allowed"},
		{"GET", "/_sim/nope", 404, "Not Found"},
		{"GET", "/_sim/kill-sessions", 405, "Method Not Allowed"},
		{"POST", "/documents", 307, ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, e.url+c.path, nil)
			req.Header.Set("Authorization", apiKey)
			r := e.do(req)
			if r.status != c.want || r.detail() != c.wantDetail {
				t.Errorf("got %d %s, want %d %q", r.status, r.raw, c.want, c.wantDetail)
			}
			if c.want == 307 && r.header.Get("Location") != "/documents/" {
				t.Errorf("Location: got %q, want /documents/", r.header.Get("Location"))
			}
		})
	}
}
