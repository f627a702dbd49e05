package fakeapi

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Response bodies natif documents, word for word where the docs give them.
const (
	detailUnauthorized = "Credentials could not be validated"
	detailForbidden    = "Credentials could not be authorized for this processing request"
	detailQuota        = "Processing limit of the account's plan reached"
	detailTooLarge     = "File too large"
	detailUnsupported  = "Unsupported file type"
	detailUnavailable  = "Service Unavailable"
)

// workflows are natif's built-in workflow identifiers; custom workflows are UUIDs.
var workflows = []string{
	"ocr", "ocr_with_handwriting", "invoice_extraction", "invoice_capturing", "receipt_extraction",
	"delivery_note_extraction", "accounting_workflow", "vehicle_registration_extraction",
	"correspondence_automation",
}

// includes are the values the include query parameter may take. Absent means ocr and
// extractions.
var includes = []string{"ocr", "extractions", "classifications"}

// maxWaitFor caps wait_for: natif's processing timeout is 120 s (natif-api.md §2.1).
const maxWaitFor = 120

// document is an accepted upload: a legacy document or a processing. It is never changed
// after it is stored, so readers need the lock only for the map lookup.
type document struct {
	id       string
	filename string
	pages    int
	size     int64
	sha      string // hex sha256 of the file
	created  time.Time
	workflow string   // processings only
	include  []string // processings only: what a finished result shows
}

// apiHandler serves one API route after the faults, authentication and scope checks passed.
type apiHandler func(w http.ResponseWriter, r *http.Request, p principal)

// serveAPI routes the document and processing endpoints and applies, in this order: latency,
// dropped connection (uploads only), injected 503, injected 429, authentication, scope.
// Injected faults come before authentication because in production they come from the
// infrastructure in front of the application.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var method string
	var h apiHandler
	switch {
	case path == "/documents":
		// FastAPI's redirect_slashes: the route is /documents/.
		target := "/documents/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	case len(segs) == 2 && segs[0] == "documents" && segs[1] == "":
		method, h = http.MethodPost, s.uploadDocument
	case len(segs) == 2 && segs[0] == "documents":
		method, h = http.MethodGet, func(w http.ResponseWriter, r *http.Request, p principal) { s.getDocument(w, segs[1]) }
	case len(segs) == 3 && segs[0] == "documents" && segs[1] != "" && segs[2] == "extractions":
		method, h = http.MethodGet, func(w http.ResponseWriter, r *http.Request, p principal) { s.getExtractions(w, segs[1]) }
	case len(segs) == 3 && segs[0] == "processing" && segs[1] == "results" && segs[2] != "":
		method, h = http.MethodGet, func(w http.ResponseWriter, r *http.Request, p principal) { s.getResult(w, r, segs[2]) }
	case len(segs) == 2 && segs[0] == "processing" && segs[1] != "":
		method, h = http.MethodPost, func(w http.ResponseWriter, r *http.Request, p principal) { s.startProcessing(w, r, p, segs[1]) }
	default:
		notFound(w)
		return
	}
	if r.Method != method {
		methodNotAllowed(w, method)
		return
	}
	s.stats.apiRequests.Add(1)
	faults := s.Faults()
	if !sleepCtx(r, faults.Latency) {
		return
	}
	write := method == http.MethodPost
	if write && s.chance(faults.DropRate) {
		// Read part of the body first: the client must have started sending, as when a
		// proxy dies mid-upload. Nothing is stored.
		_, _ = io.CopyN(io.Discard, r.Body, 64<<10)
		s.stats.droppedConnections.Add(1)
		s.log.Info().Str("path", path).Msg("upload: connection dropped (injected)")
		dropConnection(w)
		return
	}
	if s.chance(faults.ServerErrorRate) {
		s.stats.serverErrors.Add(1)
		writeDetail(w, http.StatusServiceUnavailable, detailUnavailable)
		return
	}
	if s.chance(faults.RateLimitRate) {
		s.stats.rateLimited.Add(1)
		w.Header().Set("Retry-After", "1")
		writeDetail(w, http.StatusTooManyRequests, "Rate limit exceeded (retry in 1s)")
		return
	}
	p, ok := s.authenticate(r)
	if !ok {
		s.stats.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeDetail(w, http.StatusUnauthorized, detailUnauthorized)
		return
	}
	need := "capturing_read"
	if write {
		need = "capturing_write"
	}
	if !p.may(need) {
		s.stats.forbidden.Add(1)
		s.log.Info().Str("session", p.sid).Str("needs", need).Msg("token lacks scope")
		writeDetail(w, http.StatusForbidden, detailForbidden)
		return
	}
	h(w, r, p)
}

// upload is what receive learned from a request body.
type upload struct {
	filename string
	size     int64
	sha      string
	kind     string
	pages    int
}

// fileSink takes the streamed file part: it hashes, sniffs and counts pages in one pass, so
// the file itself is never held in memory.
type fileSink struct {
	h   hash.Hash
	sn  sniffer
	pdf pdfPageCounter
}

func (f *fileSink) Write(p []byte) (int, error) {
	f.h.Write(p)
	f.sn.Write(p)
	if f.sn.mayBePDF() {
		f.pdf.Write(p)
	}
	return len(p), nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// multipartSlack is what a request body may carry beyond the file: boundaries, part headers
// and small form fields.
const multipartSlack = 2 << 20

// receive streams a multipart upload and answers the request itself when the upload is
// unacceptable (413, 422, 415, 400); ok reports whether the caller should go on. When
// withParams is set, the optional "parameters" field must be valid JSON; it may come before
// or after the file part.
func (s *Server) receive(w http.ResponseWriter, r *http.Request, withParams bool) (up upload, ok bool) {
	limit := s.opts.MaxUploadBytes
	if r.ContentLength > limit+multipartSlack {
		tooLarge(w)
		return up, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+multipartSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		// FastAPI finds no form fields in a body that is not multipart: the file is missing.
		writeValidation(w, []string{"body", "file"}, "field required", "value_error.missing")
		return up, false
	}
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)

	var gotFile, fileIsText, gotParams bool
	var params []byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			bodyError(w, err)
			return up, false
		}
		switch part.FormName() {
		case "file":
			if gotFile || fileIsText {
				continue // only the first file part counts; NextPart skips the rest
			}
			if part.FileName() == "" {
				fileIsText = true // a plain form field, not a file: FastAPI rejects it
				continue
			}
			sink := &fileSink{h: sha256.New()}
			n, err := io.CopyBuffer(sink, io.LimitReader(part, limit+1), *bufp)
			if err != nil {
				bodyError(w, err)
				return up, false
			}
			if n > limit {
				tooLarge(w)
				return up, false
			}
			gotFile = true
			up = upload{filename: part.FileName(), size: n, sha: hex.EncodeToString(sink.h.Sum(nil)), kind: sink.sn.kind()}
			up.pages = 1 // images; TIFF is counted as one page too
			if up.kind == kindPDF {
				up.pages = max(sink.pdf.Pages(), 1)
			}
		case "parameters":
			if !withParams || gotParams {
				continue
			}
			params, err = io.ReadAll(io.LimitReader(part, 1<<20))
			if err != nil {
				bodyError(w, err)
				return up, false
			}
			gotParams = true
		}
	}
	switch {
	case fileIsText && !gotFile:
		writeValidation(w, []string{"body", "file"}, "Expected UploadFile, received: <class 'str'>", "value_error")
		return up, false
	case !gotFile:
		writeValidation(w, []string{"body", "file"}, "field required", "value_error.missing")
		return up, false
	case gotParams && !json.Valid(params):
		writeValidation(w, []string{"body", "parameters"}, "Invalid JSON", "value_error.json")
		return up, false
	case up.kind == "":
		writeDetail(w, http.StatusUnsupportedMediaType, detailUnsupported)
		return up, false
	}
	return up, true
}

// tooLarge answers 413 and closes the connection: the rest of the body is never read, so the
// connection cannot carry another request.
func tooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	writeDetail(w, http.StatusRequestEntityTooLarge, detailTooLarge)
}

func bodyError(w http.ResponseWriter, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		tooLarge(w)
		return
	}
	writeDetail(w, http.StatusBadRequest, "There was an error parsing the body")
}

// admit applies the account-level limits to an upload that passed every content check, and
// answers the request itself when one refuses it.
func (s *Server) admit(w http.ResponseWriter, p principal, up upload) bool {
	if up.pages > s.opts.MaxPagesPerDocument {
		// natif answers 429 to such a document every time: it is never processed. No
		// Retry-After, because waiting does not help.
		s.stats.rateLimited.Add(1)
		writeDetail(w, http.StatusTooManyRequests, fmt.Sprintf(
			"Document exceeds the page limit: %d pages, at most %d pages per document", up.pages, s.opts.MaxPagesPerDocument))
		return false
	}
	if ok, retry := s.admitPages(p.tenant, up.pages, s.now()); !ok {
		s.stats.rateLimited.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		writeDetail(w, http.StatusTooManyRequests, fmt.Sprintf("Rate limit exceeded (retry in %ds)", retry))
		return false
	}
	return true
}

func (s *Server) quotaExhausted(w http.ResponseWriter) bool {
	if !s.Faults().QuotaExhausted {
		return false
	}
	s.stats.quotaRejected.Add(1)
	writeDetail(w, http.StatusPaymentRequired, detailQuota)
	return true
}

// accept stores an admitted upload and counts it.
func (s *Server) accept(p principal, up upload, workflow string, include []string) *document {
	d := &document{id: newUUID(), filename: up.filename, pages: up.pages, size: up.size, sha: up.sha,
		created: s.now(), workflow: workflow, include: include}
	s.docMu.Lock()
	if workflow == "" {
		s.docs[d.id] = d
	} else {
		s.procs[d.id] = d
	}
	s.docMu.Unlock()
	s.stats.recordUpload(up.sha, up.size)
	s.log.Info().Str("id", d.id).Str("tenant", p.tenant).Str("sha256", up.sha[:12]).
		Int64("size", up.size).Int("pages", up.pages).Str("workflow", workflow).Msg("document accepted")
	return d
}

// documentView is the legacy document object (natif-api.md §2.2).
type documentView struct {
	UUID             string `json:"uuid"`
	ProcessingStatus string `json:"processing_status"`
	FilenameOrigin   string `json:"filename_origin"`
	NumPages         int    `json:"num_pages"`
	CreatedAt        string `json:"created_at"`
	DocumentType     string `json:"document_type"`
	Language         string `json:"language"`
}

func (s *Server) ready(d *document) bool {
	return !s.now().Before(d.created.Add(s.opts.ProcessingDelay))
}

func (s *Server) view(d *document) documentView {
	status := "pending"
	if s.ready(d) {
		status = "success"
	}
	return documentView{
		UUID:             d.id,
		ProcessingStatus: status,
		FilenameOrigin:   d.filename,
		NumPages:         d.pages,
		CreatedAt:        d.created.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		DocumentType:     "invoice",
		Language:         "de",
	}
}

// uploadDocument is POST /documents/: 201 with the document object.
func (s *Server) uploadDocument(w http.ResponseWriter, r *http.Request, p principal) {
	if s.quotaExhausted(w) {
		return
	}
	up, ok := s.receive(w, r, false)
	if !ok || !s.admit(w, p, up) {
		return
	}
	d := s.accept(p, up, "", nil)
	if s.chance(s.Faults().LoseUploadRate) {
		// Stored, and then the answer is lost: the lost-response case of uploads.
		s.stats.lostUploads.Add(1)
		s.log.Info().Str("uuid", d.id).Msg("upload: stored, then the connection dropped (injected)")
		dropConnection(w)
		return
	}
	v := s.view(d)
	// natif processes asynchronously: the upload answer is always pending, even when the
	// document will be ready by the first GET.
	v.ProcessingStatus = "pending"
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) lookup(m map[string]*document, id string) *document {
	s.docMu.Lock()
	defer s.docMu.Unlock()
	return m[id]
}

// getDocument is GET /documents/{uuid}.
func (s *Server) getDocument(w http.ResponseWriter, id string) {
	d := s.lookup(s.docs, id)
	if d == nil {
		writeDetail(w, http.StatusNotFound, "Document not found")
		return
	}
	writeJSON(w, http.StatusOK, s.view(d))
}

// getExtractions is GET /documents/{uuid}/extractions. natif does not document the answer for
// a document still pending; the simulator answers 409 {"detail":"Document is still being
// processed"} so that a client polling the wrong way sees a distinct, non-retryable-looking
// status instead of empty data it might store.
func (s *Server) getExtractions(w http.ResponseWriter, id string) {
	d := s.lookup(s.docs, id)
	if d == nil {
		writeDetail(w, http.StatusNotFound, "Document not found")
		return
	}
	if !s.ready(d) {
		writeDetail(w, http.StatusConflict, "Document is still being processed")
		return
	}
	writeJSON(w, http.StatusOK, extract(d))
}

// extractionsView is a small invoice extraction. Values derive from the file's sha256, so the
// same file always yields the same invoice and different files (almost) never collide.
type extractionsView struct {
	InvoiceNumber string  `json:"invoice_number"`
	InvoiceDate   string  `json:"invoice_date"`
	TotalAmount   float64 `json:"total_amount"`
	Currency      string  `json:"currency"`
	VendorName    string  `json:"vendor_name"`
}

var vendors = []string{"Muster GmbH", "Beispiel AG", "Nordlicht Logistik KG", "Rheinwerk Bürobedarf", "Alpenblick Hotel GmbH", "Hansa Druck OHG"}

func extract(d *document) extractionsView {
	h, _ := hex.DecodeString(d.sha) // our own hex: cannot fail
	cents := binary.BigEndian.Uint32(h[7:11])%500000 + 100
	return extractionsView{
		InvoiceNumber: fmt.Sprintf("INV-%d-%05d", 2024+int(h[0]%2), binary.BigEndian.Uint32(h[1:5])%100000),
		InvoiceDate:   time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(binary.BigEndian.Uint16(h[5:7])%366)).Format("2006-01-02"),
		TotalAmount:   float64(cents) / 100,
		Currency:      "EUR",
		VendorName:    vendors[int(h[11])%len(vendors)],
	}
}

type ocrPage struct {
	PageNumber int    `json:"page_number"`
	Text       string `json:"text"`
}

type ocrView struct {
	NumPages int       `json:"num_pages"`
	Pages    []ocrPage `json:"pages"`
}

type classificationView struct {
	DocumentType string  `json:"document_type"`
	Confidence   float64 `json:"confidence"`
}

// resultView is a finished processing (201 from POST, 200 from GET results).
type resultView struct {
	ProcessingID    string              `json:"processing_id"`
	Workflow        string              `json:"workflow"`
	Status          string              `json:"status"`
	NumPages        int                 `json:"num_pages"`
	FilenameOrigin  string              `json:"filename_origin"`
	OCR             *ocrView            `json:"ocr,omitempty"`
	Extractions     *extractionsView    `json:"extractions,omitempty"`
	Classifications *classificationView `json:"classifications,omitempty"`
}

func result(d *document, include []string) resultView {
	v := resultView{ProcessingID: d.id, Workflow: d.workflow, Status: "success", NumPages: d.pages, FilenameOrigin: d.filename}
	if include == nil {
		include = []string{"ocr", "extractions"}
	}
	ex := extract(d)
	if slices.Contains(include, "ocr") {
		o := &ocrView{NumPages: d.pages}
		for i := 1; i <= d.pages; i++ {
			text := fmt.Sprintf("Seite %d", i)
			if i == 1 {
				text = fmt.Sprintf("%s\nRechnung %s\nDatum %s\nGesamtbetrag %.2f %s", ex.VendorName, ex.InvoiceNumber, ex.InvoiceDate, ex.TotalAmount, ex.Currency)
			}
			o.Pages = append(o.Pages, ocrPage{PageNumber: i, Text: text})
		}
		v.OCR = o
	}
	if slices.Contains(include, "extractions") {
		v.Extractions = &ex
	}
	if slices.Contains(include, "classifications") {
		v.Classifications = &classificationView{DocumentType: "invoice", Confidence: 0.98}
	}
	return v
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// processingQuery reads wait_for and include, answering 422 itself when they are invalid.
// include is nil when absent (all results); wait_for defaults to and is capped at 120 s.
func processingQuery(w http.ResponseWriter, r *http.Request) (wait time.Duration, include []string, ok bool) {
	q := r.URL.Query()
	secs := maxWaitFor
	if v := q.Get("wait_for"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeValidation(w, []string{"query", "wait_for"}, "value is not a valid integer", "type_error.integer")
			return 0, nil, false
		}
		if n < 0 {
			writeValidation(w, []string{"query", "wait_for"}, "ensure this value is greater than or equal to 0", "value_error.number.not_ge")
			return 0, nil, false
		}
		secs = min(n, maxWaitFor)
	}
	for _, inc := range q["include"] {
		if !slices.Contains(includes, inc) {
			writeValidation(w, []string{"query", "include"}, "unexpected value; permitted: 'ocr', 'extractions', 'classifications'", "value_error.const")
			return 0, nil, false
		}
		if !slices.Contains(include, inc) {
			include = append(include, inc)
		}
	}
	return time.Duration(secs) * time.Second, include, true
}

// startProcessing is POST /processing/{workflow}.
func (s *Server) startProcessing(w http.ResponseWriter, r *http.Request, p principal, workflow string) {
	if !slices.Contains(workflows, workflow) && !isUUID(workflow) {
		writeDetail(w, http.StatusNotFound, "Workflow not found")
		return
	}
	wait, include, ok := processingQuery(w, r)
	if !ok || s.quotaExhausted(w) {
		return
	}
	up, ok := s.receive(w, r, true)
	if !ok || !s.admit(w, p, up) {
		return
	}
	d := s.accept(p, up, workflow, include)
	s.answerProcessing(w, r, d, wait, include, http.StatusCreated)
}

// getResult is GET /processing/results/{id}. Its own include, when given, replaces the one of
// the POST.
func (s *Server) getResult(w http.ResponseWriter, r *http.Request, id string) {
	d := s.lookup(s.procs, id)
	if d == nil {
		writeDetail(w, http.StatusNotFound, "Processing not found")
		return
	}
	wait, include, ok := processingQuery(w, r)
	if !ok {
		return
	}
	if include == nil {
		include = d.include
	}
	s.answerProcessing(w, r, d, wait, include, http.StatusOK)
}

// answerProcessing long-polls: it answers doneStatus with the result as soon as the processing
// is ready, or 202 {processing_id, url} when wait runs out first. Readiness is decided on the
// Clock; the waiting itself is real time, re-checking at least every 50 ms so a test that
// advances a fake clock is seen promptly.
func (s *Server) answerProcessing(w http.ResponseWriter, r *http.Request, d *document, wait time.Duration, include []string, doneStatus int) {
	deadline := time.Now().Add(wait)
	for !s.ready(d) {
		left := time.Until(deadline)
		if left <= 0 {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			writeJSON(w, http.StatusAccepted, map[string]string{
				"processing_id": d.id,
				"url":           scheme + "://" + r.Host + "/processing/results/" + d.id,
			})
			return
		}
		step := min(d.created.Add(s.opts.ProcessingDelay).Sub(s.now()), 50*time.Millisecond, left)
		if !sleepCtx(r, max(step, time.Millisecond)) {
			return // the client is gone
		}
	}
	writeJSON(w, doneStatus, result(d, include))
}
