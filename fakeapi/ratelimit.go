package fakeapi

import (
	"sync"
	"time"
)

// tenantLimiter holds one tenant's accepted page counts for the sliding windows.
type tenantLimiter struct {
	mu     sync.Mutex
	events []pageEvent // accepted requests, oldest first, none older than the longest window; guarded by mu
}

type pageEvent struct {
	at    time.Time
	pages int
}

type pageWindow struct {
	span  time.Duration
	limit int
}

func (s *Server) pageWindows() []pageWindow {
	var ws []pageWindow
	for _, w := range []pageWindow{
		{time.Second, s.opts.PagesPerSecond},
		{time.Minute, s.opts.PagesPerMinute},
		{time.Hour, s.opts.PagesPerHour},
	} {
		if w.limit > 0 {
			ws = append(ws, w)
		}
	}
	return ws
}

// admitPages applies natif's page rate limits to a request of the given pages for a tenant.
//
// natif's rule, which is not a token bucket: a request is allowed while the pages already
// counted in a window are under the limit, so a single large document may overshoot it, and
// only the next request pays. A denied request is not counted. retryAfter is the whole seconds
// (at least 1) until enough of every exceeded window has slid past for a request to pass.
//
// Check and record happen under the tenant's lock, so concurrent requests cannot all squeeze
// through the last free page.
func (s *Server) admitPages(tenant string, pages int, now time.Time) (ok bool, retryAfter int) {
	ws := s.pageWindows()
	if len(ws) == 0 {
		return true, 0
	}
	s.limMu.Lock()
	l := s.limiters[tenant]
	if l == nil {
		l = &tenantLimiter{}
		s.limiters[tenant] = l
	}
	s.limMu.Unlock()

	l.mu.Lock()
	defer l.mu.Unlock()
	longest := ws[len(ws)-1].span
	drop := 0
	for drop < len(l.events) && !l.events[drop].at.Add(longest).After(now) {
		drop++
	}
	l.events = l.events[drop:]

	var wait time.Duration
	for _, w := range ws {
		used := 0
		for _, e := range l.events {
			if e.at.Add(w.span).After(now) {
				used += e.pages
			}
		}
		if used < w.limit {
			continue
		}
		// Oldest first: find the event whose expiry brings the window back under the limit.
		for _, e := range l.events {
			if !e.at.Add(w.span).After(now) {
				continue
			}
			used -= e.pages
			if used < w.limit {
				wait = max(wait, e.at.Add(w.span).Sub(now))
				break
			}
		}
	}
	if wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		return false, max(secs, 1)
	}
	l.events = append(l.events, pageEvent{at: now, pages: pages})
	return true, 0
}
