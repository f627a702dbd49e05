package fakeapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

// A password grant and an upload against an in-process simulator, as a client test would do
// them.
func Example() {
	sim := fakeapi.New(fakeapi.Options{}) // demo/demo, API key demo-key, realm public
	defer sim.Close()
	ts := httptest.NewServer(sim)
	defer ts.Close()
	client := ts.Client()

	// Password grant.
	resp, err := client.PostForm(ts.URL+"/token?realm=public", url.Values{
		"grant_type": {"password"},
		"username":   {"demo"},
		"password":   {"demo"},
		"scope":      {"capturing_read capturing_write"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	fmt.Println("token:", resp.StatusCode, tok.TokenType, tok.ExpiresIn, tok.Scope)

	// Upload a two-page PDF to the legacy endpoint.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "invoice.pdf")
	fw.Write([]byte("%PDF-1.7\n1 0 obj <</Type /Page>> endobj\n2 0 obj <</Type /Page>> endobj\n%%EOF\n"))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/documents/", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	var doc struct {
		ProcessingStatus string `json:"processing_status"`
		NumPages         int    `json:"num_pages"`
		FilenameOrigin   string `json:"filename_origin"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	fmt.Println("upload:", resp.StatusCode, doc.ProcessingStatus, doc.NumPages, doc.FilenameOrigin)
	fmt.Println("uploads seen by the simulator:", sim.Stats().Uploads)

	// Output:
	// token: 200 Bearer 300 capturing_read capturing_write
	// upload: 201 pending 2 invoice.pdf
	// uploads seen by the simulator: 1
}
