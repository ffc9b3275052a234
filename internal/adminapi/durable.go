package adminapi

import (
	"io"
	"net/http"
)

// DurableBackend is the part of a Backend that keeps its changes on disk.
// The server makes every change (an event, an unblock, an allowlist entry
// added or removed, an untag) through Durably and answers 2xx only when it
// returns nil: a 2xx then means the change survives a crash. An error
// gets 503, with the error, although the change was made in memory.
type DurableBackend interface {
	// Durably runs op and returns once the changes op made are on disk,
	// or why they are not.
	Durably(op func()) error
}

// durably runs op through the Backend's Durably, if it has one.
func (s *Server) durably(op func()) error {
	if db, ok := s.cfg.Backend.(DurableBackend); ok {
		return db.Durably(op)
	}
	op()
	return nil
}

// writeNotDurable answers a change that was made but could not be written
// to disk: 503, since the cause (a full or read-only disk) is the server's
// and may pass.
func writeNotDurable(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusServiceUnavailable, errorBody{
		Error: "the change was made but is not on disk (" + err.Error() + "); it is retried in the background, but a restart before then loses it",
	})
}

// HealthBackend is the part of a Backend that can be unhealthy.
type HealthBackend interface {
	// Health says why the Backend cannot keep what it acknowledges (its
	// state does not reach the disk), or returns nil.
	Health() error
}

// healthz answers 200 "ok", or 503 with the Backend's Health error.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if hb, ok := s.cfg.Backend.(HealthBackend); ok {
		if err := hb.Health(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "unhealthy: "+err.Error()+"\n")
			return
		}
	}
	_, _ = io.WriteString(w, "ok")
}
