package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/natif"
)

// errFileChanged aborts an upload whose bytes, as read, are not the content
// the task names: the request body ends before its closing boundary, so the
// server cannot store it.
var errFileChanged = errors.New("the file changed while it was read")

// maxResult bounds the answer body kept (processing results carry OCR text).
const maxResult = 16 << 20

// Uploader sends one file to natif and reads the answer.
type Uploader struct {
	// Client sends requests; its transport is an auth.Transport.
	Client  *http.Client
	BaseURL string
	// Endpoint is /documents/ or /processing/{workflow}.
	Endpoint string
	// Processing marks a /processing/{workflow} endpoint: include, wait_for and
	// parameters are sent, and a 202 is polled.
	Processing bool
	Include    []string
	WaitFor    int
	Parameters string
	// PollInterval is the pause between polls of a 202 (default 2s; the long
	// poll itself waits on the server).
	PollInterval time.Duration
}

// sendable is the file as the handler checked it.
type sendable struct {
	file        *os.File // opened beneath its root; every read goes through it
	name        string   // the original file name
	contentType string
	size        int64
	sha256      string
}

// result is natif's answer to a successful upload.
type result struct {
	status     int
	documentID string          // uuid or processing_id
	response   json.RawMessage // the answer, or the raw body as a JSON string
}

// Upload posts the file as multipart/form-data, streamed from disk with a
// known Content-Length, and polls a 202 until the result is there. A non-2xx
// answer comes back as *natif.APIError.
func (u *Uploader) Upload(ctx context.Context, f sendable) (*result, error) {
	target := strings.TrimRight(u.BaseURL, "/") + u.Endpoint
	if u.Processing {
		q := url.Values{}
		for _, inc := range u.Include {
			q.Add("include", inc)
		}
		q.Set("wait_for", strconv.Itoa(u.WaitFor))
		target += "?" + q.Encode()
	}
	prefix, suffix, ctype, err := u.envelope(f)
	if err != nil {
		return nil, err
	}
	// Each body (the first, and a resend after a 401) reads the same
	// descriptor from the start; none closes it.
	body := func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(prefix),
			&verifier{file: f.file, want: f.sha256, size: f.size, h: sha256.New()}, bytes.NewReader(suffix))), nil
	}
	rc, err := body()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	req.ContentLength = int64(len(prefix)) + f.size + int64(len(suffix))
	req.GetBody = body // the 401 rule sends the body again, whole
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "application/json")
	// A long upload needs a token that outlasts it: assume 1 MB/s at worst.
	req = auth.WithMinValidity(req, 30*time.Second+time.Duration(f.size/1_000_000)*time.Second)
	resp, err := u.Client.Do(req)
	if err != nil {
		if errors.Is(err, errFileChanged) {
			return nil, errFileChanged
		}
		return nil, err
	}
	return u.answer(ctx, resp)
}

// envelope builds the multipart bytes before and after the file content.
func (u *Uploader) envelope(f sendable) (prefix, suffix []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if u.Processing && u.Parameters != "" {
		if err := mw.WriteField("parameters", u.Parameters); err != nil {
			return nil, nil, "", err
		}
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+escapeFilename(f.name)+`"`)
	h.Set("Content-Type", f.contentType)
	if _, err := mw.CreatePart(h); err != nil {
		return nil, nil, "", err
	}
	prefix = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	return prefix, bytes.Clone(buf.Bytes()), mw.FormDataContentType(), nil
}

// escapeFilename quotes a file name for Content-Disposition the way Go's own
// multipart writer and browsers do, and replaces control characters (a
// newline in a name would end the header).
func escapeFilename(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name)
}

// verifier streams exactly size bytes of the file and, before the closing
// boundary may follow, checks that they hash to the task's SHA-256 and that
// the file holds nothing more. Otherwise the body fails and the request is
// aborted: changed content is never completed on the wire.
type verifier struct {
	file io.ReaderAt
	want string
	size int64
	h    hash.Hash
	n    int64
	done bool
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.done {
		return 0, io.EOF
	}
	if left := v.size - v.n; int64(len(p)) > left {
		p = p[:left]
	}
	if len(p) > 0 {
		n, err := v.file.ReadAt(p, v.n)
		v.h.Write(p[:n])
		v.n += int64(n)
		if err != nil && !errors.Is(err, io.EOF) {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
		if v.n < v.size { // EOF before size: the file shrank
			return 0, errFileChanged
		}
	}
	var one [1]byte
	if n, _ := v.file.ReadAt(one[:], v.size); n > 0 { // the file grew
		return 0, errFileChanged
	}
	if hex.EncodeToString(v.h.Sum(nil)) != v.want {
		return 0, errFileChanged
	}
	v.done = true
	return 0, io.EOF
}

// answer reads a response: 2xx becomes a result (a 202 from /processing is
// polled), anything else a *natif.APIError.
func (u *Uploader) answer(ctx context.Context, resp *http.Response) (*result, error) {
	var accepted *result // set once natif has the file: later errors are the poll's
	for {
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			err := natif.ReadAPIError(resp, time.Now())
			if accepted != nil {
				return accepted, fmt.Errorf("%w: %w", errPollFailed, err)
			}
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResult))
		resp.Body.Close()
		if err != nil {
			// The server accepted the file; only its answer is incomplete.
			body = nil
		}
		r := &result{status: resp.StatusCode, response: rawJSON(body)}
		var doc struct {
			UUID         string `json:"uuid"`
			ProcessingID string `json:"processing_id"`
			URL          string `json:"url"`
		}
		_ = json.Unmarshal(body, &doc)
		r.documentID = doc.UUID
		if r.documentID == "" {
			r.documentID = doc.ProcessingID
		}
		if r.documentID == "" && accepted != nil {
			r.documentID = accepted.documentID
		}
		if !(u.Processing && resp.StatusCode == http.StatusAccepted) {
			return r, nil
		}
		// 202: still processing. The file is uploaded; poll for the result.
		accepted = r
		if doc.URL == "" {
			return r, nil
		}
		if resp, err = u.poll(ctx, doc.URL); err != nil {
			return r, fmt.Errorf("%w: %w", errPollFailed, err)
		}
	}
}

// errPollFailed marks a processing result that could not be fetched after
// the upload succeeded: the file counts as uploaded.
var errPollFailed = errors.New("uploaded, but the processing result could not be fetched")

func (u *Uploader) poll(ctx context.Context, resultURL string) (*http.Response, error) {
	interval := u.PollInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(interval):
	}
	target, err := url.Parse(resultURL)
	if err != nil {
		return nil, fmt.Errorf("result url: %w", err)
	}
	base, _ := url.Parse(u.BaseURL)
	if target.Host != "" && base != nil && target.Host != base.Host {
		// Never send our credentials to another host.
		return nil, fmt.Errorf("result url is on another host (%s)", target.Host)
	}
	target = base.ResolveReference(target)
	q := target.Query()
	q.Set("wait_for", strconv.Itoa(u.WaitFor))
	target.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	return u.Client.Do(req)
}

// rawJSON keeps a body as JSON when it is JSON, else as a JSON string.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage(`null`)
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return json.RawMessage(s)
}
