package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

func TestUploadMovesToDoneWithSidecar(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	p := e.drop("2026/12/invoice 17 ü.pdf", pdf(3, "a"))
	if err := e.process(p); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	final := filepath.Join(e.done, p.Rel)
	if !exists(final) || exists(p.Path) {
		t.Fatalf("file in done %v, still in inbox %v; want moved", exists(final), exists(p.Path))
	}
	sc := e.sidecar(final + DoneSuffix)
	for _, k := range []string{"file", "sha256", "size", "document_id", "endpoint", "attempts", "uploaded_at", "response"} {
		if _, ok := sc[k]; !ok {
			t.Errorf("sidecar lacks %q: %v", k, sc)
		}
	}
	if sc["sha256"] != p.SHA256 || sc["endpoint"] != "/documents/" || sc["file"] != final || sc["document_id"] == "" {
		t.Errorf("sidecar = %v, want this file's sha, endpoint, final path and a document id", sc)
	}
	resp, _ := sc["response"].(map[string]any)
	if resp["num_pages"] != float64(3) || resp["filename_origin"] != "invoice 17 ü.pdf" {
		t.Errorf("sidecar response = %v, want natif's answer with 3 pages and the original name", resp)
	}
	if n := e.sim.Stats().UploadsBySHA256[p.SHA256]; n != 1 {
		t.Errorf("uploads of this content = %d, want 1", n)
	}
	if rec, _ := e.ledger.Get(context.Background(), p.SHA256); rec == nil || rec.DocumentID != sc["document_id"] {
		t.Errorf("ledger record = %+v, want the document id", rec)
	}
	if n := testutil.ToFloat64(e.handler.o.Metrics.Files.WithLabelValues("uploaded")); n != 1 {
		t.Errorf("files uploaded metric = %v, want 1", n)
	}
	if n := testutil.ToFloat64(e.handler.o.Metrics.Bytes); n != float64(p.Size) {
		t.Errorf("bytes metric = %v, want %d", n, p.Size)
	}
	// The "uploaded" line carries the stable fields, natif's status and the
	// upload's duration among them.
	var line map[string]any
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, `"message":"uploaded"`) {
			json.Unmarshal([]byte(l), &line)
		}
	}
	for _, k := range []string{"file", "sha256", "task_id", "attempt", "status", "duration_ms", "document_id", "done"} {
		if _, ok := line[k]; !ok {
			t.Errorf("the uploaded log line lacks %q: %v", k, line)
		}
	}
	if line["status"] != float64(201) {
		t.Errorf("uploaded log line status = %v, want 201", line["status"])
	}
}

// Each class of natif answer ends where the table says.
func TestAnswerClasses(t *testing.T) {
	tests := []struct {
		status         int
		wantWhere      string // done, failed, inbox
		wantPause      bool
		wantNonFailure bool
	}{
		{400, "failed", false, false},
		{404, "failed", false, false},
		{413, "failed", false, false},
		{415, "failed", false, false},
		{422, "failed", false, false},
		{402, "inbox", true, true},
		{403, "inbox", true, true},
		{429, "inbox", false, true},
		{408, "failed", false, false}, // transient, but this first attempt is also the last one
		{500, "failed", false, false},
		{502, "failed", false, false},
		{503, "failed", false, false},
		{504, "failed", false, false},
		{425, "failed", false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			e := newEnv(t, fakeapi.Options{}, nil)
			e.front.set(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodPost {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, `{"detail":"injected %d"}`, tt.status)
				return true
			})
			p := e.drop("a.pdf", pdf(1, fmt.Sprint(tt.status)))
			err := e.process(p)
			where := map[bool]string{true: "inbox"}[exists(p.Path)]
			if exists(filepath.Join(e.done, "a.pdf")) {
				where = "done"
			}
			if exists(filepath.Join(e.failed, "a.pdf")) {
				where = "failed"
			}
			if where != tt.wantWhere {
				t.Fatalf("file ended in %q, want %q (err %v)", where, tt.wantWhere, err)
			}
			if tt.wantWhere == "failed" {
				sc := e.sidecar(filepath.Join(e.failed, "a.pdf") + FailedSuffix)
				if sc["status"] != float64(tt.status) || !strings.Contains(sc["error"].(string), fmt.Sprintf("injected %d", tt.status)) {
					t.Errorf("error sidecar = %v, want status %d and natif's detail", sc, tt.status)
				}
				if !errors.Is(err, asynq.SkipRetry) {
					t.Errorf("error = %v, want SkipRetry (the task is archived)", err)
				}
			}
			if got := e.pauser.count() > 0; got != tt.wantPause {
				t.Errorf("queue paused = %v, want %v", got, tt.wantPause)
			}
			if tt.wantPause {
				e.pauser.mu.Lock()
				reason := e.pauser.reasons[0]
				e.pauser.mu.Unlock()
				want := map[int]string{402: "raise the plan", 403: "NATIF_SCOPES"}[tt.status]
				if !strings.Contains(reason, want) || !strings.Contains(reason, fmt.Sprintf("injected %d", tt.status)) {
					t.Errorf("pause reason %q, want what to fix (%q) and natif's detail", reason, want)
				}
			}
			if tt.wantNonFailure && IsFailure(err) {
				t.Errorf("error %v counts as a failure; want a retry that spends nothing", err)
			}
		})
	}
}

// A transient error before the last attempt returns to asynq (a spent retry)
// and leaves the file in the inbox.
func TestTransientBeforeLastAttempt(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	calls := 0
	e.front.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		calls++
		http.Error(w, `{"detail":"down"}`, http.StatusServiceUnavailable)
		return true
	})
	p := e.drop("a.pdf", pdf(1, "t"))
	b, _ := json.Marshal(p)
	task := asynq.NewTask(TaskType, b)
	err := runWithRetry(t, e.handler, task, 0, 5)
	if err == nil || !IsFailure(err) || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("error = %v, want a failure asynq retries", err)
	}
	if !exists(p.Path) {
		t.Errorf("file left the inbox on a retryable error")
	}
	if calls < 2 {
		t.Errorf("upload tried %d times within the attempt, want quick retries", calls)
	}
	// The last attempt (retried == maxRetry-1) moves it to failed.
	err = runWithRetry(t, e.handler, task, 4, 5)
	if !errors.Is(err, asynq.SkipRetry) || !exists(filepath.Join(e.failed, "a.pdf")) {
		t.Fatalf("last attempt: %v, in failed %v; want the file failed with retries exhausted", err, exists(filepath.Join(e.failed, "a.pdf")))
	}
	if sc := e.sidecar(filepath.Join(e.failed, "a.pdf") + FailedSuffix); !strings.Contains(sc["error"].(string), "retries exhausted") || sc["attempts"] != float64(5) {
		t.Errorf("error sidecar = %v, want retries exhausted after 5 attempts", sc)
	}
}

// runWithRetry runs the handler as asynq would on the attempt after
// `retried` failures of a task that allows maxRetry.
func runWithRetry(t *testing.T, h *Handler, task *asynq.Task, retried, maxRetry int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h.handle(ctx, task, attemptInfo{taskID: "test", retried: retried, maxRetry: maxRetry})
}

// Account-level answers pause, spend no retry, and fail no file, also on the
// last attempt.
func TestAccountTroubleOnLastAttempt(t *testing.T) {
	e := newEnv(t, fakeapi.Options{Faults: fakeapi.Faults{QuotaExhausted: true}}, nil)
	p := e.drop("a.pdf", pdf(1, "q"))
	b, _ := json.Marshal(p)
	err := runWithRetry(t, e.handler, asynq.NewTask(TaskType, b), 12, 13)
	if IsFailure(err) || !exists(p.Path) || e.pauser.count() != 1 {
		t.Errorf("402 on the last attempt: err %v (failure %v), in inbox %v, pauses %d; want a non-failure, the file kept, one pause",
			err, IsFailure(err), exists(p.Path), e.pauser.count())
	}
	if e.sim.Stats().QuotaRejected != 1 {
		t.Errorf("quota rejections = %d, want 1 (no hammering)", e.sim.Stats().QuotaRejected)
	}
}

func TestRateLimitCapFails(t *testing.T) {
	e := newEnv(t, fakeapi.Options{MaxPagesPerDocument: 2}, func(o *Options, _ *Uploader) { o.RateLimitCap = 3 })
	p := e.drop("big.pdf", pdf(5, "pages"))
	var err error
	for i := 0; i < 5 && exists(p.Path); i++ {
		err = e.process(p)
	}
	if !exists(filepath.Join(e.failed, "big.pdf")) {
		t.Fatalf("a document natif refuses with 429 every time is still in the inbox (err %v)", err)
	}
	sc := e.sidecar(filepath.Join(e.failed, "big.pdf") + FailedSuffix)
	if sc["status"] != float64(429) || !strings.Contains(sc["error"].(string), "429 3 times") {
		t.Errorf("error sidecar = %v, want status 429 and the count", sc)
	}
}

// Bad payloads are refused without the file being opened.
func TestHostilePayloads(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.pdf")
	os.WriteFile(secret, pdf(1, "secret"), 0o644)
	link := filepath.Join(e.inbox, "link.pdf")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	good := e.drop("ok.pdf", pdf(1, "ok"))
	tests := []struct {
		desc    string
		payload string
		want    string
	}{
		{"malformed json", `{"path": `, "not the JSON"},
		{"unknown field", `{"path":"/x","root":"/","rel":"x","size":1,"sha256":"` + good.SHA256 + `","extra":1}`, "unknown field"},
		{"huge payload", `{"path":"` + strings.Repeat("a", 20000) + `"}`, "more than"},
		{"outside the roots", mustJSON(Payload{Path: secret, Root: outside, Rel: "secret.pdf", Size: 10, SHA256: good.SHA256}), "not a configured inbox"},
		{"dot dot", mustJSON(Payload{Path: filepath.Join(e.inbox, "../x.pdf"), Root: e.inbox, Rel: "../x.pdf", Size: 1, SHA256: good.SHA256}), "no \"..\""},
		{"path not root+rel", mustJSON(Payload{Path: secret, Root: e.inbox, Rel: "ok.pdf", Size: 1, SHA256: good.SHA256}), "is not root"},
		{"symlink out", mustJSON(Payload{Path: link, Root: e.inbox, Rel: "link.pdf", Size: 10, SHA256: good.SHA256}), "symbolic link"},
		{"relative path", `{"path":"inbox/ok.pdf","root":"inbox","rel":"ok.pdf","size":1,"sha256":"` + good.SHA256 + `"}`, "absolute"},
		{"bad sha", mustJSON(Payload{Path: good.Path, Root: e.inbox, Rel: "ok.pdf", Size: 1, SHA256: "abc"}), "sha256"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := e.handler.ProcessTask(ctx, asynq.NewTask(TaskType, []byte(tt.payload)))
		cancel()
		if !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want SkipRetry with %q", tt.desc, err, tt.want)
		}
	}
	if n := e.front.uploads(); n != 0 {
		t.Errorf("uploads = %d, want none", n)
	}
	if !exists(secret) || !exists(link) || !exists(good.Path) {
		t.Errorf("a refused task moved a file")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Local checks fail a file without an upload.
func TestLocalChecksFailWithoutUpload(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, func(o *Options, _ *Uploader) { o.MaxFileSize = 1000 })
	tests := []struct {
		name    string
		content []byte
		reason  string
	}{
		{"empty.pdf", nil, "empty file"},
		{"text.pdf", []byte("this is not a pdf at all"), "unsupported file type"},
		{"large.pdf", append([]byte("%PDF-1.4\n"), make([]byte, 2000)...), "larger than NATIF_MAX_FILE_SIZE"},
	}
	for _, tt := range tests {
		p := e.drop(tt.name, tt.content)
		if err := e.process(p); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("%s: %v, want SkipRetry", tt.name, err)
		}
		sc := e.sidecar(filepath.Join(e.failed, tt.name) + FailedSuffix)
		if !strings.Contains(sc["error"].(string), tt.reason) || sc["status"] != float64(0) {
			t.Errorf("%s: sidecar %v, want %q and status 0", tt.name, sc, tt.reason)
		}
	}
	if n := e.front.uploads(); n != 0 {
		t.Errorf("uploads = %d, want none", n)
	}
}

func TestVanishedAndChangedFiles(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	gone := e.drop("gone.pdf", pdf(1, "gone"))
	os.Remove(gone.Path)
	if err := e.process(gone); err != nil {
		t.Errorf("vanished file: %v, want the task dropped quietly", err)
	}
	// Same size, other content: caught while streaming, before the body completes.
	changed := e.drop("changed.pdf", pdf(1, "one"))
	os.WriteFile(changed.Path, pdf(1, "two"), 0o644)
	if err := e.process(changed); err != nil {
		t.Errorf("changed file: %v, want requeued and this task dropped", err)
	}
	// Another size: caught before the upload.
	grown := e.drop("grown.pdf", pdf(1, "g"))
	os.WriteFile(grown.Path, pdf(2, "g"), 0o644)
	if err := e.process(grown); err != nil {
		t.Errorf("grown file: %v", err)
	}
	if e.sim.Stats().Uploads != 0 {
		t.Errorf("documents stored = %d, want 0: changed content must never complete an upload", e.sim.Stats().Uploads)
	}
	e.requeueMu.Lock()
	defer e.requeueMu.Unlock()
	if len(e.requeued) != 2 || e.requeued[0].SHA256 == changed.SHA256 || e.requeued[1].Size == grown.Size {
		t.Errorf("requeued %+v, want both files under their new identity", e.requeued)
	}
	if !exists(changed.Path) || !exists(grown.Path) {
		t.Errorf("a changed file left the inbox")
	}
}

func TestDuplicatesAndRedelivery(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	first := e.drop("a/invoice.pdf", pdf(1, "same"))
	if err := e.process(first); err != nil {
		t.Fatal(err)
	}
	// A second copy of the same content elsewhere in the inbox.
	second := e.drop("b/copy.pdf", pdf(1, "same"))
	if err := e.process(second); err != nil {
		t.Fatal(err)
	}
	sc := e.sidecar(filepath.Join(e.done, "b/copy.pdf") + DoneSuffix)
	firstSC := e.sidecar(filepath.Join(e.done, "a/invoice.pdf") + DoneSuffix)
	if sc["duplicate_of"] != firstSC["document_id"] || sc["duplicate_of"] == nil {
		t.Errorf("duplicate sidecar = %v, want duplicate_of %v", sc, firstSC["document_id"])
	}
	// A redelivery after a crash between upload and move: same path, in the ledger.
	third := e.drop("c/crash.pdf", pdf(1, "crash"))
	e.ledger.Put(context.Background(), Record{SHA256: third.SHA256, DocumentID: "doc-from-before", Source: third.Path, Endpoint: "/documents/"})
	if err := e.process(third); err != nil {
		t.Fatal(err)
	}
	sc3 := e.sidecar(filepath.Join(e.done, "c/crash.pdf") + DoneSuffix)
	if sc3["document_id"] != "doc-from-before" || sc3["duplicate_of"] != nil {
		t.Errorf("redelivered sidecar = %v, want the recorded document and no duplicate_of", sc3)
	}
	if n := e.sim.Stats().Uploads; n != 1 {
		t.Errorf("documents stored = %d, want 1", n)
	}
}

func TestNameClashGetsSuffix(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	os.MkdirAll(filepath.Join(e.done, "x"), 0o755)
	os.WriteFile(filepath.Join(e.done, "x", "inv.pdf"), []byte("older"), 0o644)
	os.WriteFile(filepath.Join(e.done, "x", "inv-1.pdf.natif.json"), []byte(`{"sha256":"someone else"}`), 0o644)
	p := e.drop("x/inv.pdf", pdf(1, "clash"))
	if err := e.process(p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(e.done, "x", "inv.pdf")); string(b) != "older" {
		t.Errorf("the older file in done was overwritten")
	}
	final := filepath.Join(e.done, "x", "inv-2.pdf")
	if !exists(final) || e.sidecar(final + DoneSuffix)["file"] != final {
		t.Errorf("want the file at %s with its sidecar (inv.pdf and inv-1's sidecar are taken)", final)
	}
}

// A done folder that cannot take the file: the task is retried, the file
// stays, and the retry moves it without a second upload.
func TestDoneFolderBroken(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	blocker := filepath.Join(e.done, "sub")
	os.WriteFile(blocker, []byte("a file where a folder must go"), 0o644)
	p := e.drop("sub/a.pdf", pdf(1, "blocked"))
	err := e.process(p)
	if err == nil || errors.Is(err, asynq.SkipRetry) || !exists(p.Path) {
		t.Fatalf("error %v, in inbox %v; want a retryable error and the file kept", err, exists(p.Path))
	}
	if !strings.Contains(e.logs.String(), "could not be moved to the done folder") {
		t.Errorf("the log does not say why: %s", e.logs)
	}
	os.Remove(blocker)
	if err := e.process(p); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(e.done, "sub/a.pdf")) || e.sim.Stats().Uploads != 1 {
		t.Errorf("after the fix: in done %v, documents stored %d; want moved with 1 upload", exists(filepath.Join(e.done, "sub/a.pdf")), e.sim.Stats().Uploads)
	}
}

// The server stores the file and the connection drops: the retry uploads
// again (one duplicate at most per in-flight upload) and the file ends in done once.
func TestLostResponseOnUpload(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	dropped := false
	e.front.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || dropped {
			return false
		}
		dropped = true
		rr := httptest.NewRecorder()
		e.sim.ServeHTTP(rr, r)
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
		return true
	})
	e.opts.InAttempt = 5 * time.Second
	e.handler = NewHandler(e.opts)
	p := e.drop("a.pdf", pdf(1, "lost"))
	if err := e.process(p); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Stats().UploadsBySHA256[p.SHA256]; n != 2 {
		t.Errorf("server copies = %d, want 2 (the lost one and the retry)", n)
	}
	if !exists(filepath.Join(e.done, "a.pdf")) || exists(filepath.Join(e.done, "a-1.pdf")) {
		t.Errorf("want the file in done exactly once")
	}
}

func TestNonJSONAnswerCountsAsDone(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	e.front.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("Created."))
		return true
	})
	p := e.drop("a.pdf", pdf(1, "raw"))
	if err := e.process(p); err != nil {
		t.Fatal(err)
	}
	if sc := e.sidecar(filepath.Join(e.done, "a.pdf") + DoneSuffix); sc["response"] != "Created." {
		t.Errorf("sidecar response = %v, want the raw body", sc["response"])
	}
}

func TestProcessingWorkflowPolls202(t *testing.T) {
	e := newEnv(t, fakeapi.Options{ProcessingDelay: 300 * time.Millisecond}, func(_ *Options, u *Uploader) {
		u.Endpoint, u.Processing, u.WaitFor = "/processing/invoice_extraction", true, 0
		u.Include, u.Parameters = []string{"extractions"}, `{"language":"de"}`
	})
	p := e.drop("a.pdf", pdf(2, "wf"))
	if err := e.process(p); err != nil {
		t.Fatal(err)
	}
	sc := e.sidecar(filepath.Join(e.done, "a.pdf") + DoneSuffix)
	resp, _ := sc["response"].(map[string]any)
	if resp["status"] != "success" || resp["extractions"] == nil || resp["ocr"] != nil {
		t.Errorf("response = %v, want the finished result with extractions only", resp)
	}
	if sc["document_id"] != resp["processing_id"] || sc["endpoint"] != "/processing/invoice_extraction" {
		t.Errorf("sidecar = %v, want the processing id and the workflow endpoint", sc)
	}
}

func TestFetchResultsSavesExtractions(t *testing.T) {
	e := newEnv(t, fakeapi.Options{ProcessingDelay: 200 * time.Millisecond}, func(o *Options, _ *Uploader) { o.FetchResults = true })
	p := e.drop("a.pdf", pdf(1, "ex"))
	if err := e.process(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(e.done, "a.pdf") + ExtractionsSuffix)
	if err != nil || !json.Valid(b) || len(b) < 10 {
		t.Errorf("extractions file: %q, %v; want natif's extractions", b, err)
	}
}

func TestClientRateLimit(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, func(o *Options, _ *Uploader) { o.RateLimit = 10 })
	start := time.Now()
	for i := range 6 {
		if err := e.process(e.drop(fmt.Sprintf("r%d.pdf", i), pdf(1, fmt.Sprint("rate", i)))); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("6 uploads at 10/s took %v, want at least 0.5 s", d)
	}
}

// An inbox that is unavailable here (an unmounted share) does not make its
// files vanished: the task waits a minute without spending an attempt.
func TestUnavailableInboxWaits(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	p := e.drop("away.pdf", pdf(1, "away"))
	aside := e.inbox + ".unmounted"
	if err := os.Rename(e.inbox, aside); err != nil {
		t.Fatal(err)
	}
	err := e.process(p)
	if !errors.Is(err, ErrRootUnavailable) || IsFailure(err) || RetryDelay(0, err, nil) != time.Minute {
		t.Errorf("inbox unavailable: %v (failure %v, delay %v); want a non-failure retried in a minute", err, IsFailure(err), RetryDelay(0, err, nil))
	}
	os.Rename(aside, e.inbox)
	if err := e.process(p); err != nil || !exists(filepath.Join(e.done, "away.pdf")) {
		t.Errorf("inbox back: %v, in done %v; want uploaded", err, exists(filepath.Join(e.done, "away.pdf")))
	}
}

// A file name that is not UTF-8 (Latin-1 from an old SMB client) survives
// the task's JSON byte for byte: the file is uploaded and moved, not dropped
// as vanished because its name came back with U+FFFD in it.
func TestNonUTF8FileNameUploads(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	p := e.drop("rechnung-\xe4.pdf", pdf(1, "latin1"))
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"rel_b64":"cmVjaG51bmct5C5wZGY="`) {
		t.Fatalf("payload %s carries no rel_b64 for a non-UTF-8 name", b)
	}
	back, err := ParsePayload(b)
	if err != nil || back.Rel != p.Rel || back.Path != p.Path || back.Root != p.Root {
		t.Fatalf("ParsePayload(%s) = %q %q %q, %v; want the exact bytes %q %q %q", b, back.Path, back.Root, back.Rel, err, p.Path, p.Root, p.Rel)
	}
	if err := e.process(p); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	final := filepath.Join(e.done, p.Rel)
	if !exists(final) || exists(p.Path) {
		t.Fatalf("file in done %v, still in inbox %v; want it moved under its own bytes", exists(final), exists(p.Path))
	}
	if n := e.sim.Stats().UploadsBySHA256[p.SHA256]; n != 1 {
		t.Errorf("uploads of this content = %d, want 1", n)
	}
}

// A rel_b64 that is not base64 is a bad payload, named as such.
func TestBadBase64Name(t *testing.T) {
	_, err := ParsePayload([]byte(`{"path":"/in/a","root":"/in","rel":"a","rel_b64":"%%%","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}`))
	if !errors.Is(err, ErrBadPayload) || !strings.Contains(err.Error(), "rel_b64") {
		t.Fatalf("err = %v, want ErrBadPayload naming rel_b64", err)
	}
}

// The watcher's duplicate path and the worker race for one file: a
// restarted watcher finds the file still in the inbox after the worker
// recorded its upload in the ledger, and moves it to done first. The worker
// must find it there, not copy the content it holds open into a second name
// ("invoice-1.pdf", a file nobody wrote).
func TestWatcherArchivesFirst(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		clash  bool   // done already holds another file of that name
		during string // the watcher archives it when the worker reaches this stage
	}{
		{desc: "free name"},
		{desc: "name taken by another file", clash: true},
		{desc: "watcher moves it after the worker looked at the name", during: "claim"},
		{desc: "watcher moves it after the worker claimed the sidecar", during: "move"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t, fakeapi.Options{}, nil)
			p := e.drop("a/invoice.pdf", pdf(1, "race "+tc.desc))
			if tc.clash {
				other := filepath.Join(e.done, "a", "invoice.pdf")
				os.MkdirAll(filepath.Dir(other), 0o755)
				os.WriteFile(other, pdf(1, "someone else"), 0o644)
			}
			o, err := e.handler.o.Roots.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			rec := &Record{SHA256: p.SHA256, DocumentID: "doc-1"}
			var byWatcher string
			watcher := func() {
				byWatcher, err = ArchiveDone(p.Path, e.done, p, rec)
				if err != nil {
					t.Errorf("the watcher's ArchiveDone: %v", err)
				}
			}
			if tc.during != "" {
				testHook = func(stage string) {
					if stage == tc.during {
						testHook = nil // once; the watcher's own archive passes here too
						watcher()
					}
				}
				t.Cleanup(func() { testHook = nil })
			} else {
				watcher()
			}
			got, err := archive(o, e.done, p.Rel, DoneSuffix, p.SHA256, func(final string) ([]byte, error) {
				return []byte(`{"sha256":"` + p.SHA256 + `"}`), nil
			})
			if err != nil || got != byWatcher {
				t.Fatalf("worker's archive = %q, %v; want %q, where the watcher put it", got, err, byWatcher)
			}
			var names []string
			filepath.WalkDir(e.done, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					names = append(names, strings.TrimPrefix(path, e.done+"/"))
				}
				return nil
			})
			want := 2
			if tc.clash {
				want = 3
			}
			if len(names) != want {
				t.Fatalf("done holds %q; want the file and its sidecar (and the other file), no second copy", names)
			}
			if _, err := os.Stat(byWatcher + DoneSuffix); err != nil {
				t.Fatalf("the archived file lost its sidecar: %v", err)
			}
		})
	}
}

// The mirror race: the worker archives the file while the watcher's
// duplicate path is between its sidecar claim and its move. The watcher's
// move then fails (the file is gone from the inbox), and it must not remove
// the sidecar, which now belongs to the worker's archived file.
func TestWorkerArchivesDuringWatcherMove(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	p := e.drop("a/invoice.pdf", pdf(1, "mirror race"))
	o, err := e.handler.o.Roots.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var byWorker string
	testHook = func(stage string) {
		if stage == "move" {
			testHook = nil
			byWorker, err = archive(o, e.done, p.Rel, DoneSuffix, p.SHA256, func(final string) ([]byte, error) {
				return []byte(`{"sha256":"` + p.SHA256 + `","by":"worker"}`), nil
			})
			if err != nil {
				t.Errorf("worker's archive: %v", err)
			}
		}
	}
	t.Cleanup(func() { testHook = nil })
	if _, err := ArchiveDone(p.Path, e.done, p, &Record{SHA256: p.SHA256, DocumentID: "doc-1"}); err == nil {
		t.Errorf("the watcher's ArchiveDone succeeded for a file the worker had moved")
	}
	want := filepath.Join(e.done, "a", "invoice.pdf")
	if byWorker != want {
		t.Fatalf("worker archived to %q, want %q", byWorker, want)
	}
	if _, err := os.Stat(want + DoneSuffix); err != nil {
		t.Errorf("the archived file lost its sidecar to the watcher's failed move: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(e.done, "a"))
	if len(ents) != 2 {
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		t.Errorf("done/a holds %q; want the file and its sidecar", names)
	}
}

// The temporary files a killed process left in an archive folder (sidecar
// temps of any name, copy temps) are removed the first time this process
// archives into that folder; young ones (a live writer's) and the user's own
// hidden files are left alone.
func TestStaleSidecarTempsRemoved(t *testing.T) {
	e := newEnv(t, fakeapi.Options{}, nil)
	p := e.drop("b/invoice.pdf", pdf(1, "temps"))
	dir := filepath.Join(e.done, "b")
	os.MkdirAll(dir, 0o755)
	old := processStart.Add(-time.Hour)
	later := time.Now().Add(time.Minute)
	mk := func(name string, at time.Time) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte("{"), 0o644)
		os.Chtimes(path, at, at)
		return path
	}
	stale := []string{
		mk(".invoice.pdf"+DoneSuffix+".tmp-123", old),
		mk(".other.pdf"+FailedSuffix+".tmp-9", old),
		mk(".scan 7.tif"+ExtractionsSuffix+".tmp-4242", old),
		mk(".other.pdf.copy-77", old),
	}
	kept := []string{
		mk(".invoice.pdf"+DoneSuffix+".tmp-456", later), // a live writer's
		mk(".notes.tmp-1", old),                         // the user's
		mk(".invoice.pdf"+DoneSuffix+".tmp-12a", old),   // not CreateTemp's digits
		mk(".copy-5", old),
	}
	if err := e.process(p); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	for _, path := range stale {
		if exists(path) {
			t.Errorf("stale temporary file %s still there", path)
		}
	}
	for _, path := range kept {
		if !exists(path) {
			t.Errorf("%s was removed; only stale temporary files of the archive may be", path)
		}
	}
	if !exists(filepath.Join(dir, "invoice.pdf")) {
		t.Errorf("file not archived")
	}
}

func TestIsArchiveTemp(t *testing.T) {
	for name, want := range map[string]bool{
		".a.pdf.natif.json.tmp-1":          true,
		".a.pdf.error.json.tmp-4294967295": true,
		".a.pdf.extractions.json.tmp-0":    true,
		".a.pdf.copy-12":                   true,
		"a.pdf.natif.json.tmp-1":           false,
		".a.pdf.natif.json.tmp-":           false,
		".a.pdf.natif.json.tmp-1x":         false,
		".a.pdf.json.tmp-1":                false,
		".a.pdf.natif.json":                false,
		".copy-1":                          false,
		".tmp-1":                           false,
	} {
		if got := isArchiveTemp(name); got != want {
			t.Errorf("isArchiveTemp(%q) = %v, want %v", name, got, want)
		}
	}
}

// A file with a 255-byte name (the longest ext4 allows) is archived under a
// shortened name whose sidecars fit, with its original path in the sidecar;
// shorter names are archived as they are.
func TestLongNameArchived(t *testing.T) {
	if got := ArchiveRel("a/" + strings.Repeat("x", maxArchiveName)); got != "a/"+strings.Repeat("x", maxArchiveName) {
		t.Errorf("ArchiveRel of a name of %d bytes = %q, want it unchanged", maxArchiveName, got)
	}
	long := strings.Repeat("n", 251) + ".pdf"
	utf := strings.Repeat("ü", 125) + ".pdf" // 254 bytes, a cut must not split a character
	for _, base := range []string{long, utf} {
		e := newEnv(t, fakeapi.Options{}, nil)
		p := e.drop("names/"+base, pdf(1, "long "+base[:4]))
		if err := e.process(p); err != nil {
			t.Fatalf("ProcessTask: %v", err)
		}
		rel := ArchiveRel(p.Rel)
		b := filepath.Base(rel)
		if rel == p.Rel || len(b) > maxArchiveName || !strings.HasSuffix(b, ".pdf") || !strings.Contains(b, "~") || !utf8.ValidString(b) {
			t.Fatalf("ArchiveRel(%q) = %q (%d bytes); want a shorter UTF-8 name with a tag and the extension", p.Rel, rel, len(b))
		}
		final := filepath.Join(e.done, rel)
		if !exists(final) || exists(p.Path) {
			t.Fatalf("file in done at %s: %v, still in inbox: %v", rel, exists(final), exists(p.Path))
		}
		sc := e.sidecar(final + DoneSuffix)
		if sc["source"] != p.Path || sc["sha256"] != p.SHA256 {
			t.Errorf("sidecar source %v, sha %v; want the original path %q and the content", sc["source"], sc["sha256"], p.Path)
		}
	}
}
