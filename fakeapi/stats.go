package fakeapi

import (
	"sync"
	"sync/atomic"
)

// Stats are the simulator's counters, for tests that assert on what a client did to the server
// ("exactly one password grant", "no refresh token presented twice") rather than on what the
// client says it did. Stats() returns a copy; GET /_sim/stats returns the same as JSON.
type Stats struct {
	// PasswordGrantsOK counts password grants answered 200 (each started a new session).
	PasswordGrantsOK int64 `json:"password_grants_ok"`
	// PasswordGrantsFailed counts password grants answered 401 "Invalid user credentials".
	// Rejections of a locked account are counted in LockedRejections instead.
	PasswordGrantsFailed int64 `json:"password_grants_failed"`
	// Refreshes counts refresh grants answered 200. A refresh that was committed and then
	// dropped counts in LostRefreshes only.
	Refreshes int64 `json:"refreshes"`
	// RefreshesFailed counts refresh grants answered 400 invalid_grant.
	RefreshesFailed int64 `json:"refreshes_failed"`
	// ReuseDetections counts presentations of an already used refresh token in a live session.
	ReuseDetections int64 `json:"reuse_detections"`
	// SessionsKilled counts sessions ended by reuse detection, KillSessions or the kill ticker
	// (not sessions that merely reached SessionMax).
	SessionsKilled int64 `json:"sessions_killed"`
	// Lockouts counts the times the account got locked.
	Lockouts int64 `json:"lockouts"`
	// LockedRejections counts password grants refused because the account was locked.
	LockedRejections int64 `json:"locked_rejections"`
	// TokenRequests counts every request to /token, whatever its outcome.
	TokenRequests int64 `json:"token_requests"`
	// TokenInFlightMax is the highest number of /token requests served at the same moment.
	TokenInFlightMax int64 `json:"token_in_flight_max"`
	// APIRequests counts requests to the API endpoints (documents, processing).
	APIRequests int64 `json:"api_requests"`
	// Unauthorized counts 401s from API endpoints.
	Unauthorized int64 `json:"unauthorized"`
	// Forbidden counts 403s from API endpoints.
	Forbidden int64 `json:"forbidden"`
	// RateLimited counts every 429: injected, page rate limits and pages per document.
	RateLimited int64 `json:"rate_limited"`
	// QuotaRejected counts 402s.
	QuotaRejected int64 `json:"quota_rejected"`
	// ServerErrors counts injected 503s, on /token and on the API.
	ServerErrors int64 `json:"server_errors"`
	// DroppedConnections counts uploads whose connection was closed with no answer.
	DroppedConnections int64 `json:"dropped_connections"`
	// LostUploads counts uploads stored and then answered by closing the connection.
	LostUploads int64 `json:"lost_uploads"`
	// LostRefreshes counts refreshes committed and then answered by closing the connection.
	LostRefreshes int64 `json:"lost_refreshes"`
	// Uploads counts documents accepted (201 from /documents/, 201 or 202 from /processing).
	Uploads int64 `json:"uploads"`
	// UploadsBySHA256 maps the sha256 (hex) of each accepted file to how often it was accepted:
	// a count above 1 is a duplicate upload.
	UploadsBySHA256 map[string]int `json:"uploads_by_sha256"`
	// BytesReceived is the total size of the accepted files.
	BytesReceived int64 `json:"bytes_received"`
}

// counters is the live form of Stats. Plain counters are atomics so that no request waits on
// another to count; the map has its own mutex, held only for the map update.
type counters struct {
	passwordGrantsOK, passwordGrantsFailed        atomic.Int64
	refreshes, refreshesFailed, reuseDetections   atomic.Int64
	sessionsKilled, lockouts, lockedRejections    atomic.Int64
	tokenRequests, tokenInFlight, tokenInFlightMx atomic.Int64
	apiRequests, unauthorized, forbidden          atomic.Int64
	rateLimited, quotaRejected, serverErrors      atomic.Int64
	droppedConnections, lostRefreshes             atomic.Int64
	lostUploads                                   atomic.Int64
	uploads, bytesReceived                        atomic.Int64

	shaMu sync.Mutex
	bySHA map[string]int // guarded by shaMu
}

// tokenEnter marks one more /token request in flight and raises the high-water mark.
func (c *counters) tokenEnter() {
	n := c.tokenInFlight.Add(1)
	for {
		m := c.tokenInFlightMx.Load()
		if n <= m || c.tokenInFlightMx.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *counters) tokenLeave() { c.tokenInFlight.Add(-1) }

func (c *counters) recordUpload(sha string, size int64) {
	c.shaMu.Lock()
	if c.bySHA == nil {
		c.bySHA = make(map[string]int)
	}
	c.bySHA[sha]++
	c.shaMu.Unlock()
	c.uploads.Add(1)
	c.bytesReceived.Add(size)
}

func (c *counters) snapshot() Stats {
	c.shaMu.Lock()
	by := make(map[string]int, len(c.bySHA))
	for k, v := range c.bySHA {
		by[k] = v
	}
	c.shaMu.Unlock()
	return Stats{
		PasswordGrantsOK:     c.passwordGrantsOK.Load(),
		PasswordGrantsFailed: c.passwordGrantsFailed.Load(),
		Refreshes:            c.refreshes.Load(),
		RefreshesFailed:      c.refreshesFailed.Load(),
		ReuseDetections:      c.reuseDetections.Load(),
		SessionsKilled:       c.sessionsKilled.Load(),
		Lockouts:             c.lockouts.Load(),
		LockedRejections:     c.lockedRejections.Load(),
		TokenRequests:        c.tokenRequests.Load(),
		TokenInFlightMax:     c.tokenInFlightMx.Load(),
		APIRequests:          c.apiRequests.Load(),
		Unauthorized:         c.unauthorized.Load(),
		Forbidden:            c.forbidden.Load(),
		RateLimited:          c.rateLimited.Load(),
		QuotaRejected:        c.quotaRejected.Load(),
		ServerErrors:         c.serverErrors.Load(),
		DroppedConnections:   c.droppedConnections.Load(),
		LostUploads:          c.lostUploads.Load(),
		LostRefreshes:        c.lostRefreshes.Load(),
		Uploads:              c.uploads.Load(),
		UploadsBySHA256:      by,
		BytesReceived:        c.bytesReceived.Load(),
	}
}
