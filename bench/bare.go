package main

// The two baselines: a bare Go uploader (one password grant, N goroutines, streaming
// multipart over net/http, no queue, no moves) and xargs -P N curl.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// passwordGrant fetches an access token from the simulator's /token endpoint.
func passwordGrant(client *http.Client, base string) (string, error) {
	form := url.Values{"grant_type": {"password"}, "username": {"demo"}, "password": {"demo"},
		"scope": {"capturing_read capturing_write"}}
	resp, err := client.PostForm(base+"/token?realm=public", form)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return "", fmt.Errorf("password grant: HTTP %d, %v", resp.StatusCode, err)
	}
	return tok.AccessToken, nil
}

// bareUpload uploads every file once with conc goroutines and returns the wall time, login
// included.
func bareUpload(base string, files []string, conc int) (time.Duration, error) {
	tr := &http.Transport{Proxy: nil, MaxIdleConns: conc, MaxIdleConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	start := time.Now()
	token, err := passwordGrant(client, base)
	if err != nil {
		return 0, err
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				if err := uploadOne(client, base, token, files[i]); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// uploadOne streams one file as multipart part "file" with a known Content-Length.
func uploadOne(client *http.Client, base, token, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var rb [16]byte
	_, _ = rand.Read(rb[:])
	boundary := hex.EncodeToString(rb[:])
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filepath.Base(path) +
		"\"\r\nContent-Type: application/pdf\r\n\r\n"
	trail := "\r\n--" + boundary + "--\r\n"
	body := io.MultiReader(strings.NewReader(head), f, strings.NewReader(trail))
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/documents/", body)
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(head)) + fi.Size() + int64(len(trail))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload %s: HTTP %d", path, resp.StatusCode)
	}
	return nil
}

// curlCommand is the shell form of the curl baseline, for RESULTS.md.
const curlCommand = `xargs -P16 -I{} -a LIST curl -sS --noproxy '*' -o /dev/null -w '%{http_code}\n' -H @HEADERFILE -F 'file=@{}' URL/documents/`

// curlUpload runs xargs -P conc curl over the files with a token fetched from /token, and
// returns the wall time of xargs.
func curlUpload(base, workDir string, files []string, conc int) (time.Duration, error) {
	if _, err := exec.LookPath("curl"); err != nil {
		return 0, errors.New("curl not found")
	}
	token, err := passwordGrant(&http.Client{Transport: &http.Transport{Proxy: nil}}, base)
	if err != nil {
		return 0, err
	}
	list := filepath.Join(workDir, "curl-files.txt")
	hdr := filepath.Join(workDir, "curl-headers.txt")
	if err := os.WriteFile(list, []byte(strings.Join(files, "\n")+"\n"), 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile(hdr, []byte("Authorization: Bearer "+token+"\n"), 0o600); err != nil {
		return 0, err
	}
	cmd := exec.Command("xargs", fmt.Sprintf("-P%d", conc), "-I{}", "-a", list,
		"curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", `%{http_code}\n`,
		"-H", "@"+hdr, "-F", "file=@{}", base+"/documents/")
	cmd.Env = childEnv(nil)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("xargs curl: %w: %s", err, stderr.String())
	}
	created := strings.Count(string(out), "201\n")
	if created != len(files) {
		return d, fmt.Errorf("xargs curl: %d of %d answered 201", created, len(files))
	}
	return d, nil
}
