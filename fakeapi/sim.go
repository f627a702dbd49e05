package fakeapi

import (
	"encoding/json"
	"io"
	"net/http"
)

// serveSim serves the control and observation endpoints under /_sim/. They need no
// authentication and get no injected faults or latency: a test or an operator must be able to
// look and steer while the API misbehaves.
func (s *Server) serveSim(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_sim/health":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case "/_sim/stats":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	case "/_sim/faults":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.Faults())
		case http.MethodPost:
			var f Faults
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
			if err == nil {
				err = json.Unmarshal(body, &f)
			}
			if err == nil {
				err = f.Validate()
			}
			if err != nil {
				writeDetail(w, http.StatusBadRequest, "invalid faults: "+err.Error())
				return
			}
			s.SetFaults(f)
			writeJSON(w, http.StatusOK, s.Faults())
		default:
			methodNotAllowed(w, "GET, POST")
		}
	case "/_sim/kill-sessions":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"killed": s.KillSessions()})
	default:
		notFound(w)
	}
}
