package adminapi

import (
	"context"
	"net/http"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/pace"
)

// intake is one POST /v1/events under the CPU budget (Config.Pace). It is
// measured on the CPU clock of the handler's thread (pace.Unit) from the
// handler's start to its answer written to the connection: reading the
// body, the wait for the budget (which costs no CPU), decoding, tagging
// and backtracking, the log lines and the answer, flushed before the
// charge so that the write to the socket, which net/http would otherwise
// make after the handler returns, is paid for too. The wait for the disk
// (the commit of Durably) is no processing and costs no CPU either. Where
// the system has no thread clock, the charge falls back to the wall time
// from the budget's admission to the answer, less the wait for the disk.
// Wall times are read on the budget's clock, not Config.Now, which tests
// move. A nil *intake (no budget) charges nothing.
type intake struct {
	s      *Server
	w      http.ResponseWriter
	unit   *pace.Unit
	start  time.Time
	waited time.Duration
}

// intakeMaxWait bounds an event's wait for the budget, well inside the
// server's writeTimeout: past it the event is taken anyway (tagging is
// what events are for; a sender that sees a timeout may never retry), and
// the validations, which wait for the events, pay the debt.
var intakeMaxWait = 5 * time.Second

// measureIntake starts measuring the request answered on w, at the start
// of its handler, which must call end.
func (s *Server) measureIntake(w http.ResponseWriter) *intake {
	if s.cfg.Pace == nil {
		return nil
	}
	return &intake{s: s, w: w, unit: s.cfg.Pace.Begin()}
}

// wait waits for the budget, at most intakeMaxWait, once the body is read;
// false means the client went away meanwhile, and nothing was taken.
func (in *intake) wait(r *http.Request) bool {
	if in == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), intakeMaxWait)
	defer cancel()
	in.unit.Wait()
	err := in.s.cfg.Pace.Wait(ctx, pace.Event)
	in.unit.Compute()
	if err != nil && r.Context().Err() != nil {
		return false
	}
	in.start = in.s.cfg.Pace.Now()
	return true
}

// clock reads the budget's clock; the zero time without a budget.
func (in *intake) clock() time.Time {
	if in == nil {
		return time.Time{}
	}
	return in.s.cfg.Pace.Now()
}

// notProcessing takes d, a wait inside the request, off its charge.
func (in *intake) notProcessing(d time.Duration) {
	if in != nil {
		in.waited += d
	}
}

// waiting and computing bracket a wait inside the request (the commit to
// disk): the handler lets go of its thread meanwhile (pace.Unit).
func (in *intake) waiting() {
	if in != nil {
		in.unit.Wait()
	}
}

func (in *intake) computing() {
	if in != nil {
		in.unit.Compute()
	}
}

// end sends the answer and charges the request's processing to the
// budget. A request answered before its wait (a bad body) is charged too:
// its reading was work.
func (in *intake) end() {
	if in == nil {
		return
	}
	_ = http.NewResponseController(in.w).Flush()
	var wall time.Duration
	if !in.start.IsZero() {
		wall = in.s.cfg.Pace.Now().Sub(in.start) - in.waited
	}
	in.s.cfg.Pace.Charge(pace.Event, in.unit.End(wall))
}
