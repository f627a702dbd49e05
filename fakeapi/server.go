// Package fakeapi is a local simulator of the natif.ai document API: a FastAPI application
// behind a Keycloak realm. It exists so that the uploader can be tested, benchmarked and
// demonstrated without natif, and so that the hazards that matter (single-use refresh tokens
// whose reuse kills the session, a 5xx that burns a refresh token, lost responses, page rate
// limits, dropped uploads) happen on demand.
//
// The package shares no code with the client side of the product on purpose: it is a second,
// independent reading of natif's documentation (see /work/shared/notes/natif-api.md and
// token-rotation.md), so a misunderstanding written once in the client cannot pass its own
// test.
//
// Surface:
//
//	POST /token?realm=public               password and refresh_token grants (Keycloak shapes)
//	POST /documents/                       legacy upload, 201 document object
//	GET  /documents/{uuid}                 pending -> success after ProcessingDelay
//	GET  /documents/{uuid}/extractions     extractions derived from the file's sha256
//	POST /processing/{workflow}            201 result or 202 {processing_id, url}
//	GET  /processing/results/{id}          200 result or 202 again
//	GET  /_sim/stats, GET|POST /_sim/faults, POST /_sim/kill-sessions, GET /_sim/health
package fakeapi

import (
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Server is the simulator. It is an http.Handler; serve it with httptest.NewServer or an
// http.Server. All methods are safe for concurrent use.
//
// Locking: each kind of state has its own mutex and every lock is held only for map updates
// and checks, never while a request body is read, so concurrent uploads stream in parallel.
// No code path holds two of these locks at once.
type Server struct {
	opts  Options // effective options; never changed after New
	log   zerolog.Logger
	now   func() time.Time
	key   []byte   // HMAC-SHA256 key of the tokens, random per server
	stats counters // atomics and their own lock

	faultMu sync.Mutex
	faults  Faults // guarded by faultMu

	rngMu sync.Mutex
	rng   *mrand.Rand // guarded by rngMu; math/rand/v2 generators are not safe for concurrent use

	auth authState // sessions, refresh tokens and lockouts; its own mutex

	docMu sync.Mutex
	docs  map[string]*document // legacy documents by uuid; guarded by docMu
	procs map[string]*document // processings by processing_id; guarded by docMu

	limMu    sync.Mutex
	limiters map[string]*tenantLimiter // by tenant; guarded by limMu (each limiter has its own lock)

	// The kill ticker. tickStop is closed to stop the running ticker goroutine; only code
	// holding tickMu starts or stops it, and never after closed is set.
	tickMu    sync.Mutex
	tickStop  chan struct{}
	tickEvery time.Duration
	closed    bool
	wg        sync.WaitGroup
}

// New returns a Server with the defaults applied and starts the KillSessionsEvery ticker if
// that fault is set. Call Close to stop it.
func New(opts Options) *Server {
	o := opts.withDefaults()
	if o.Seed == 0 {
		o.Seed = mrand.Uint64() | 1 // never 0, so Options() always shows the seed that replays the run
	}
	key := make([]byte, 32)
	_, _ = crand.Read(key) // crypto/rand.Read never fails on supported platforms
	s := &Server{
		opts:     o,
		log:      o.Logger.With().Str("component", "fake-api").Logger(),
		now:      o.Clock,
		key:      key,
		rng:      mrand.New(mrand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		docs:     make(map[string]*document),
		procs:    make(map[string]*document),
		limiters: make(map[string]*tenantLimiter),
	}
	s.auth.init()
	s.SetFaults(o.Faults)
	s.log.Info().Str("realm", o.Realm).Uint64("seed", o.Seed).Msg("simulator ready")
	return s
}

// Options returns the effective options, after defaults.
func (s *Server) Options() Options {
	o := s.opts
	o.APIKeys = append([]string(nil), o.APIKeys...)
	o.Scopes = append([]string(nil), o.Scopes...)
	o.Faults = s.Faults()
	return o
}

// Faults returns the faults in force.
func (s *Server) Faults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults
}

// SetFaults replaces the faults and starts, restarts or stops the kill ticker to match
// KillSessionsEvery. Out-of-range rates are clamped when drawn (below 0 never, above 1 always).
func (s *Server) SetFaults(f Faults) {
	s.faultMu.Lock()
	s.faults = f
	s.faultMu.Unlock()
	s.setKillTicker(f.KillSessionsEvery)
	s.log.Info().Interface("faults", f).Msg("faults set")
}

// Close stops the background goroutines. It is idempotent; the Server keeps answering
// requests after Close (an httptest server may still be draining).
func (s *Server) Close() {
	s.tickMu.Lock()
	if !s.closed {
		s.closed = true
		if s.tickStop != nil {
			close(s.tickStop)
			s.tickStop = nil
		}
	}
	s.tickMu.Unlock()
	s.wg.Wait()
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

func (s *Server) setKillTicker(every time.Duration) {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	if s.closed || every == s.tickEvery {
		return
	}
	if s.tickStop != nil {
		close(s.tickStop)
		s.tickStop = nil
	}
	s.tickEvery = every
	if every <= 0 {
		return
	}
	stop := make(chan struct{})
	s.tickStop = stop
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := s.KillSessions()
				s.log.Info().Int("killed", n).Msg("kill ticker fired")
			}
		}
	}()
}

// chance reports whether a fault with the given rate fires for this request. Rates of 0 and 1
// draw nothing, so a seeded run's sequence depends only on the faults that are really random.
func (s *Server) chance(rate float64) bool {
	if !(rate > 0) {
		return false
	}
	if rate >= 1 {
		return true
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < rate
}

// ServeHTTP routes a request. Routing is written out by hand rather than with ServeMux
// patterns so that 404 and 405 answer with FastAPI's JSON bodies.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/_sim/"):
		s.serveSim(w, r)
	case p == "/token":
		s.serveToken(w, r)
	default:
		s.serveAPI(w, r)
	}
}

// sleepCtx waits d in real time or until the request is gone; it reports whether the
// request is still wanted.
func sleepCtx(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// dropConnection closes the client's connection without an answer. Hijacking shows the client
// exactly what a crashed proxy shows: the connection ends and no status line ever comes. Where
// hijacking is impossible (HTTP/2) the stream is aborted, which the client sees the same way.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeDetail answers in FastAPI's error shape, {"detail": "..."}.
func writeDetail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"detail": msg})
}

// validationError is one entry of FastAPI's (pydantic v1) 422 body.
type validationError struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

func writeValidation(w http.ResponseWriter, loc []string, msg, typ string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string][]validationError{
		"detail": {{Loc: loc, Msg: msg, Type: typ}},
	})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
}

func notFound(w http.ResponseWriter) { writeDetail(w, http.StatusNotFound, "Not Found") }

// newUUID returns a random (version 4) UUID. Ids need not be reproducible from the seed: the
// seed replays faults, and ids only have to be unique and unguessable like natif's.
func newUUID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
