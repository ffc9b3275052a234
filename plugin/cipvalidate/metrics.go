package cipvalidate

import (
	"sync"

	"github.com/coredns-cip/coredns-cip/internal/validate"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics in CoreDNS style. Labels never carry a client IP or a domain.
var (
	answersInspected = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "answers_inspected_total",
		Help: "Answers seen by cipvalidate.",
	}, []string{"server", "view"})
	ipsRecorded = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "ips_recorded_total",
		Help: "Public IPs recorded in the clients' windows.",
	}, []string{"server", "view"})
	ipsSubmitted = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "ips_submitted_total",
		Help: "IPs submitted for validation, by result (queued, cached, in_flight, dropped) and source (answer, event, connection).",
	}, []string{"result", "source"})
	windowEvicted = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "window_evicted_entries",
		Help: "Window entries pushed out by the per-client or total cap since start.",
	})
	windowEntries = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "window_entries",
		Help: "Entries held in the clients' windows.",
	})
	apiCalls = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "api_calls_total",
		Help: "Criminal IP API calls, by outcome (ok, bad_key, quota, transient, bad_response, rejected).",
	}, []string{"outcome"})
	apiLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "api_request_duration_seconds",
		Help:    "Duration of Criminal IP API calls.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
	})
	cacheLookups = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "cache_lookups_total",
		Help: "Verdict cache lookups for tagged clients' IPs and event backtracks, by result (hit, miss).",
	}, []string{"result"})
	verdictsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "verdicts_total",
		Help: "Fresh verdicts, by outcome (clean, suspicious, error).",
	}, []string{"outcome"})
	rewrittenTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "answers_rewritten_total",
		Help: "Answers rewritten, by action (sinkhole, refuse, nxdomain, nodata, refuse_unvalidated; monitor when only logged).",
	}, []string{"server", "view", "action"})
	queueDepth = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "queue_depth",
		Help: "IPs waiting for validation, by priority.",
	}, []string{"priority"})
	taggedClients = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "tagged_clients",
		Help: "Clients tagged by an event.",
	})
	blocksTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "blocks_total",
		Help: "Block decisions, by kind (block, monitor: recorded but not pushed).",
	}, []string{"kind"})
	blocksActive = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "blocks_active",
		Help: "Blocks in force.",
	})
	hookChanges = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "hook_changes_total",
		Help: "Block and unblock changes handed to hooks, by sink and result (ok, retried, failed, dropped).",
	}, []string{"sink", "result"})
	connlogLines = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "connlog_lines_total",
		Help: "Lines read from connlog files, by format and result (ok, broken).",
	}, []string{"format", "result"})
	fleetUp = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "fleet_redis_up",
		Help: "1 while the fleet's Redis answers, 0 while this node runs on local state.",
	})
	fleetErrors = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "fleet_redis_errors",
		Help: "Failed Redis operations since start.",
	})
	eventsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "events_total",
		Help: "Events accepted through the event API.",
	})
)

// serverCounters are the per-answer counters of one server, resolved once
// so that the hot path does no label lookup.
type serverCounters struct {
	server, view string
	inspected    prometheus.Counter
	recorded     prometheus.Counter

	mu      sync.Mutex
	actions map[string]prometheus.Counter
}

func newServerCounters(server, view string) *serverCounters {
	return &serverCounters{
		server:    server,
		view:      view,
		inspected: answersInspected.WithLabelValues(server, view),
		recorded:  ipsRecorded.WithLabelValues(server, view),
		actions:   map[string]prometheus.Counter{},
	}
}

func (sc *serverCounters) rewritten(action string) prometheus.Counter {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	ctr, ok := sc.actions[action]
	if !ok {
		ctr = rewrittenTotal.WithLabelValues(sc.server, sc.view, action)
		sc.actions[action] = ctr
	}
	return ctr
}

// The sources of Submit calls, as the ips_submitted_total label says them.
type source int

const (
	fromAnswer source = iota
	fromEvent
	fromConnection
)

var sourceNames = [...]string{fromAnswer: "answer", fromEvent: "event", fromConnection: "connection"}

// submitted counts one Submit result from a source, and the verdict cache
// lookup it implies. It is called for every IP of a tagged client's
// answers, so the counters are resolved once, in init.
func submitted(src source, r validate.Result) {
	submitCounters[src][r].Inc()
	if r == validate.Cached {
		cacheHits.Inc()
	} else {
		cacheMisses.Inc()
	}
}

var (
	cacheHits      = cacheLookups.WithLabelValues("hit")
	cacheMisses    = cacheLookups.WithLabelValues("miss")
	submitCounters [len(sourceNames)][validate.Dropped + 1]prometheus.Counter
)

func init() {
	for src, name := range sourceNames {
		for _, r := range []validate.Result{validate.Queued, validate.Cached, validate.InFlight, validate.Dropped} {
			submitCounters[src][r] = ipsSubmitted.WithLabelValues(r.String(), name)
		}
	}
}
