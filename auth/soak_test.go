package auth

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

// 16: a soak on short lifetimes with random faults. Access tokens live 2 s,
// refresh tokens 10 s; the fake clock runs hundreds of lifetimes while eight
// workers call the API through the Transport, refreshes are lost after commit,
// answered 5xx after commit or unreadable, dials fail before the write,
// password grants are throttled, and the server kills every session now and
// then. The invariants must hold: no refresh token reaches the server twice,
// no reuse is ever detected, and every successful password grant after the
// first is explained by exactly one burned token, dead session or expiring
// refresh token.
func TestSoakShortLifetimesRandomFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	h := setup(t, fakeapi.Options{AccessTTL: 2 * time.Second, RefreshTTL: 10 * time.Second}, func(o *Options) {
		o.MinPasswordInterval = time.Second
		o.BackoffInitial = 500 * time.Millisecond
		o.BackoffMax = 4 * time.Second
	})
	rng := rand.New(rand.NewPCG(7, 11))
	var rngMu sync.Mutex
	chance := func(p float64) bool {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.Float64() < p
	}
	var injected [5]atomic.Int32 // lost, 5xx, unreadable, throttled, dial
	h.rec.setTokenHook(func(w http.ResponseWriter, r *http.Request, form url.Values) bool {
		switch form.Get("grant_type") {
		case "refresh_token":
			switch {
			case chance(0.08):
				injected[0].Add(1)
				h.rec.commit(r)
				drop(w)
			case chance(0.05):
				injected[1].Add(1)
				h.rec.commit(r)
				http.Error(w, "bad gateway", http.StatusBadGateway)
			case chance(0.03):
				injected[2].Add(1)
				h.rec.commit(r)
				w.Write([]byte("<html>oops</html>"))
			default:
				return false
			}
			return true
		case "password":
			if chance(0.1) {
				injected[3].Add(1)
				w.Header().Set("Retry-After", "1")
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return true
			}
		}
		return false
	})

	const fakeDuration = 900 * time.Second // 450 access lifetimes
	stop := make(chan struct{})            // closed when the fake duration is over
	workersDone := make(chan struct{})     // closed when every worker returned
	var drivers sync.WaitGroup
	drivers.Add(1)
	go func() { // the clock, the session killer and the dial failures
		defer drivers.Done()
		start := h.clock.Now()
		nextKill := start.Add(7 * time.Second)
		stopped := false
		for {
			select {
			case <-workersDone:
				return
			default:
			}
			if !stopped && h.clock.Since(start) >= fakeDuration {
				close(stop)
				stopped = true
			}
			// The clock keeps running until the workers are out, so that
			// none is left waiting on a back-off in frozen time.
			h.clock.Advance(250 * time.Millisecond)
			if now := h.clock.Now(); !stopped && now.After(nextKill) {
				h.sim.KillSessions()
				rngMu.Lock()
				nextKill = now.Add(time.Duration(5+rng.IntN(10)) * time.Second)
				rngMu.Unlock()
			}
			if !stopped && chance(0.02) {
				injected[4].Add(1)
				h.dial.fail.Store(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	client := h.client()
	var requests, ok, unauthorized atomic.Int64
	errs := make(chan error, 8)
	var workers sync.WaitGroup
	for range 8 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/documents/00000000-0000-0000-0000-000000000000", nil)
				resp, err := client.Do(req)
				cancel()
				requests.Add(1)
				if err != nil {
					errs <- fmt.Errorf("request: %w", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusNotFound: // authorised; the document does not exist
					ok.Add(1)
				case http.StatusUnauthorized: // the clock moved on between retry and check
					unauthorized.Add(1)
				default:
					errs <- fmt.Errorf("unexpected status %d", resp.StatusCode)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	workers.Wait()
	close(workersDone)
	drivers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	ms, ss := h.mgr.Stats(), h.sim.Stats()
	t.Logf("fake time %v: %d requests (%d ok, %d 401); manager %+v; injected lost=%d 5xx=%d unreadable=%d throttled=%d dial=%d; simulator: %d refreshes, %d password grants, %d sessions killed",
		fakeDuration, requests.Load(), ok.Load(), unauthorized.Load(), ms,
		injected[0].Load(), injected[1].Load(), injected[2].Load(), injected[3].Load(), injected[4].Load(),
		ss.Refreshes, ss.PasswordGrantsOK, ss.SessionsKilled)

	if ss.ReuseDetections != 0 {
		t.Errorf("reuse detections: %d, want 0", ss.ReuseDetections)
	}
	if n := h.rec.maxRefreshSends(); n > 1 {
		t.Errorf("a refresh token reached the server %d times, want at most 1", n)
	}
	if want := 1 + ms.Burned + ms.SessionsDead + ms.RefreshSkipped; ms.PasswordGrantsOK != want {
		t.Errorf("successful password grants = %d, want 1 + burned %d + dead sessions %d + skipped %d = %d",
			ms.PasswordGrantsOK, ms.Burned, ms.SessionsDead, ms.RefreshSkipped, want)
	}
	if ms.Rejections != 0 || ss.Lockouts != 0 {
		t.Errorf("rejections %d, lockouts %d; want 0 and 0", ms.Rejections, ss.Lockouts)
	}
	if ms.RefreshesOK < 200 {
		t.Errorf("only %d successful refreshes: the soak did not run hundreds of cycles", ms.RefreshesOK)
	}
	for i, name := range []string{"lost", "5xx", "unreadable", "throttled", "dial"} {
		if injected[i].Load() == 0 {
			t.Errorf("no %s fault was injected: the soak does not exercise it", name)
		}
	}
	if ok.Load() < requests.Load()/2 {
		t.Errorf("only %d of %d requests were authorised", ok.Load(), requests.Load())
	}
	h.assertNoSecrets()
}
