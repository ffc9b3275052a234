package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// MaxBatch is the most events one POST /v1/events may carry as a JSON
// array. A batch's body may be BatchBodyFactor times the single-event
// limit (1 MiB by default).
const (
	MaxBatch        = 1000
	BatchBodyFactor = 16
)

// batchMaxBody is the body limit of a batch.
func (s *Server) batchMaxBody() int64 { return s.cfg.MaxBody * BatchBodyFactor }

// isBatch reports whether body is a JSON array rather than one event.
func isBatch(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '['
}

// batchResult is one event of a batch, in the order sent: its Accepted
// counts, or why it was refused. Found IPs are left out (a batch's answer
// would grow with every window); GET /v1/events/{id} has them.
type batchResult struct {
	*Accepted
	Error string `json:"error,omitempty"`
	Field string `json:"field,omitempty"`
}

type batchBody struct {
	Accepted int           `json:"accepted"`
	Refused  int           `json:"refused"`
	Results  []batchResult `json:"results"`
}

// postBatch takes a JSON array of events. Each is checked on its own, so a
// bad one does not refuse the others; the good ones go to the Backend in
// one Durably. The answer is 202 if any was accepted, else 400, with one
// result per event either way.
func (s *Server) postBatch(w http.ResponseWriter, r *http.Request, body []byte, defaults Defaults, now time.Time, in *intake) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		writeFieldError(w, http.StatusBadRequest, decodeError(err))
		return
	}
	if len(raws) == 0 {
		writeFieldError(w, http.StatusBadRequest, errField("body", "an empty batch; send one event or an array of 1 to %d", MaxBatch))
		return
	}
	if len(raws) > MaxBatch {
		writeFieldError(w, http.StatusRequestEntityTooLarge, errField("body", "a batch of %d events, at most %d", len(raws), MaxBatch))
		return
	}
	out := batchBody{Results: make([]batchResult, len(raws))}
	var evs []Event
	var at []int // index in raws of each of evs
	for i, raw := range raws {
		ev, err := s.decodeBatchEvent(raw, defaults, now)
		if err != nil {
			out.Results[i] = batchResult{Error: err.Error()}
			if fe := (*fieldError)(nil); errors.As(err, &fe) {
				out.Results[i].Field = fe.Field
			}
			out.Refused++
			continue
		}
		evs, at = append(evs, ev), append(at, i)
	}
	if len(evs) == 0 {
		writeJSON(w, http.StatusBadRequest, out)
		return
	}
	answers, err := s.submitEvents(r, evs, defaults, now, in)
	if err != nil {
		writeNotDurable(w, err)
		return
	}
	for j, i := range at {
		out.Results[i].Accepted = &answers[j].Accepted
	}
	out.Accepted = len(evs)
	writeJSON(w, http.StatusAccepted, out)
}

// decodeBatchEvent is decodeEvent for one element of a batch, which is
// held to the single event's size limit. Errors are *fieldError.
func (s *Server) decodeBatchEvent(raw json.RawMessage, defaults Defaults, now time.Time) (Event, error) {
	if int64(len(raw)) > s.cfg.MaxBody {
		return Event{}, s.tooLarge()
	}
	return decodeEvent(raw, defaults, now)
}
