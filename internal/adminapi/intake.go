package adminapi

import (
	"context"
	"net/http"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/pace"
)

// intake is one POST /v1/events under the CPU budget (Config.Pace): the
// request waits for the budget once its body is read, and is charged the
// wall time from then to its answer, less the wait for the disk (the
// commit of Durably), which is no processing. Times are read on the
// budget's clock, not Config.Now, which tests move. A nil *intake (no
// budget) charges nothing.
type intake struct {
	s      *Server
	start  time.Time
	waited time.Duration
}

// intakeMaxWait bounds an event's wait for the budget, well inside the
// server's writeTimeout: past it the event is taken anyway (tagging is
// what events are for; a sender that sees a timeout may never retry), and
// the validations, which wait for the events, pay the debt.
var intakeMaxWait = 5 * time.Second

// beginIntake waits for the budget, at most intakeMaxWait; false means the
// client went away meanwhile, and nothing was taken.
func (s *Server) beginIntake(r *http.Request) (*intake, bool) {
	if s.cfg.Pace == nil {
		return nil, true
	}
	ctx, cancel := context.WithTimeout(r.Context(), intakeMaxWait)
	defer cancel()
	if err := s.cfg.Pace.Wait(ctx, pace.Event); err != nil && r.Context().Err() != nil {
		return nil, false
	}
	return &intake{s: s, start: s.cfg.Pace.Now()}, true
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

// end charges the request's processing to the budget.
func (in *intake) end() {
	if in != nil {
		in.s.cfg.Pace.Charge(in.s.cfg.Pace.Now().Sub(in.start) - in.waited)
	}
}
