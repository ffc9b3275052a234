package cipvalidate

import (
	"sync"

	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/clientid"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/pace"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
	"github.com/coredns-cip/coredns-cip/internal/version"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics in CoreDNS style: running totals are counters named *_total,
// levels are gauges, and labels never carry a client IP or a domain. The
// README lists every one (a test holds it to this file).
var (
	// answersInspected counts the answers the plugin saw.
	answersInspected = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "answers_inspected_total",
		Help: "Answers seen by cipvalidate.",
	}, []string{"server", "view"})
	// ipsRecorded counts the public IPs written to the clients' windows.
	ipsRecorded = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "ips_recorded_total",
		Help: "Public IPs recorded in the clients' windows.",
	}, []string{"server", "view"})
	// ipsSubmitted counts submissions to the validation queue.
	ipsSubmitted = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "ips_submitted_total",
		Help: "IPs submitted for validation, by result (queued, cached, in_flight, dropped) and source (answer, event, connection).",
	}, []string{"result", "source"})
	// windowEvicted counts the window entries pushed out by a cap.
	windowEvicted = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "window_evicted_entries_total",
		Help: "Window entries pushed out by the per-client or total cap.",
	})
	// windowEvictedProtected counts the evictions from protected windows.
	windowEvictedProtected = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "window_evicted_protected_total",
		Help: "Window entries the total cap took from protected windows (tagged clients, or recorded within the event window): total too small, or a flood.",
	})
	// windowEntries is the number of entries in the clients' windows.
	windowEntries = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "window_entries",
		Help: "Entries held in the clients' windows.",
	})
	// apiCalls counts the Criminal IP API calls.
	apiCalls = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "api_calls_total",
		Help: "Criminal IP API calls, by outcome (ok, bad_key, quota, transient, bad_response, rejected).",
	}, []string{"outcome"})
	// apiLatency is the duration of the API calls.
	apiLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "api_request_duration_seconds",
		Help:    "Duration of Criminal IP API calls.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
	})
	// cacheLookups counts verdict cache lookups of submissions.
	cacheLookups = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "cache_lookups_total",
		Help: "Verdict cache lookups for tagged clients' IPs and event backtracks, by result (hit, miss).",
	}, []string{"result"})
	// verdictsTotal counts fresh verdicts.
	verdictsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "verdicts_total",
		Help: "Fresh verdicts, by outcome (clean, suspicious, error).",
	}, []string{"outcome"})
	// rewrittenTotal counts the rewritten answers.
	rewrittenTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "answers_rewritten_total",
		Help: "Answers rewritten, by action (sinkhole, refuse, nxdomain, nodata, refuse_unvalidated; monitor when only logged).",
	}, []string{"server", "view", "action"})
	// queueDepth is the number of IPs waiting for validation.
	queueDepth = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "queue_depth",
		Help: "IPs waiting for validation, by priority.",
	}, []string{"priority"})
	// taggedClients is the number of clients tagged by an event.
	taggedClients = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "tagged_clients",
		Help: "Clients tagged by an event.",
	})
	// blocksTotal counts block decisions.
	blocksTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "blocks_total",
		Help: "Block decisions, by kind (block, monitor: recorded but not pushed).",
	}, []string{"kind"})
	// blocksActive is the number of blocks in force.
	blocksActive = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "blocks_active",
		Help: "Blocks in force.",
	})
	// hookChanges counts the changes handed to hooks.
	hookChanges = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "hook_changes_total",
		Help: "Block and unblock changes handed to hooks, by sink and result (ok, retried, failed, dropped, expired, resent).",
	}, []string{"sink", "result"})
	// hookPending is the changes queued per hook, failing ones included.
	hookPending = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "hook_pending_changes",
		Help: "Block and unblock changes queued per hook: waiting, being applied or retried; only with hooks.",
	}, []string{"sink"})
	// connlogLines counts the lines read from connection logs.
	connlogLines = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "connlog_lines_total",
		Help: "Lines read from connlog files, by format and result (ok, broken).",
	}, []string{"format", "result"})
	// fleetUp says whether the fleet's Redis answers. A vector without
	// labels, so that it is exported only once a fleet reports it.
	fleetUp = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "fleet_redis_up",
		Help: "1 while the fleet's Redis answers, 0 while this node runs on local state; only with redis.",
	}, nil)
	// fleetErrors counts failed Redis operations; exported only with a fleet.
	fleetErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "fleet_redis_errors_total",
		Help: "Failed Redis operations; only with redis.",
	}, nil)
	// eventsEvicted counts the events the event store forgot to stay within
	// its bounds; a vector without labels, exported only with the event API.
	eventsEvicted = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "events_evicted_total",
		Help: "Events the event store forgot to stay within its bounds (GET /v1/events/{id} no longer finds them); only with events.",
	}, nil)
	// eventsStoreBytes is the event store's estimated size.
	eventsStoreBytes = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "events_store_bytes",
		Help: "Estimated size of the events kept for GET /v1/events/{id}; only with events.",
	}, nil)
	// auditErrors counts audit entries that could not be written (a full
	// or read-only disk); a vector without labels, exported only with an
	// audit log.
	auditErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "audit_errors_total",
		Help: "Audit log entries that could not be written; only with an audit log.",
	}, nil)
	auditDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "audit_dropped_total",
		Help: "Audit entries dropped for a syslog destination (buffer full or receiver down).",
	}, []string{"dest"})
	// stateWritable and stateWriteErrors: vectors without labels, exported only with state.
	stateWritable = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "state_writable",
		Help: "1 while commits to the state directory succeed, 0 while they fail (full or read-only disk); only with state.",
	}, nil)
	stateWriteErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "state_write_errors_total",
		Help: "Failed commits to the state directory; only with state.",
	}, nil)
	// eventsTotal counts the events posted to this node.
	eventsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "events_total",
		Help: "Events accepted through the event API.",
	})
)

// collectors lists every metric above, for the README test.
var collectors = append([]prometheus.Collector{
	answersInspected, ipsRecorded, ipsSubmitted, windowEvicted, windowEvictedProtected, windowEntries, apiCalls, apiLatency,
	cacheLookups, verdictsTotal, rewrittenTotal, queueDepth, taggedClients, blocksTotal, blocksActive,
	hookChanges, hookPending, connlogLines, fleetUp, fleetErrors, eventsEvicted, eventsStoreBytes, auditErrors, auditDropped, eventsTotal,
	stateWritable, stateWriteErrors, clientid.Collector(), version.Collector(),
}, append(budget.Collectors(), pace.Collectors()...)...)

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

// observer is the engine's view of these metrics.
type observer struct {
	events bool // the event API is configured: its store's figures mean something
}

var _ enforce.Observer = observer{}

// Submitted counts n submissions and the verdict cache lookups they imply.
// It is called for every tagged client's answer, so the counters are
// resolved once, in init.
func (observer) Submitted(src enforce.Source, r validate.Result, n int) {
	submitCounters[src][r].Add(float64(n))
	if r == validate.Cached {
		cacheHits.Add(float64(n))
	} else {
		cacheMisses.Add(float64(n))
	}
}

func (observer) Verdict(v verdicts.Verdict) { verdictsTotal.WithLabelValues(string(v.Outcome)).Inc() }

func (observer) Block(monitor bool) {
	kind := "block"
	if monitor {
		kind = "monitor"
	}
	blocksTotal.WithLabelValues(kind).Inc()
}

func (observer) HookChanges(sink string, r enforce.HookResult, n int) {
	hookChanges.WithLabelValues(sink, string(r)).Add(float64(n))
}

func (observer) Event() { eventsTotal.Inc() }

func (observer) ConnlogLine(f connlog.Format, ok bool) {
	result := "broken"
	if ok {
		result = "ok"
	}
	connlogLines.WithLabelValues(string(f), result).Inc()
}

func (observer) APICall(a criminalip.Attempt) {
	apiCalls.WithLabelValues(string(a.Outcome)).Inc()
	apiLatency.Observe(a.Duration.Seconds())
}

func (o observer) Swept(s enforce.Stats) {
	windowEntries.Set(float64(s.WindowEntries))
	windowEvicted.Add(float64(s.WindowEvicted))
	windowEvictedProtected.Add(float64(s.WindowEvictedProtected))
	if o.events {
		eventsEvicted.WithLabelValues().Add(float64(s.EventsEvicted))
		eventsStoreBytes.WithLabelValues().Set(float64(s.EventsBytes))
	}
	if s.Auditing {
		auditErrors.WithLabelValues().Add(float64(s.AuditErrors))
		for dest, n := range s.AuditDropped {
			auditDropped.WithLabelValues(dest).Add(float64(n))
		}
	}
	if s.Stateful {
		stateWritable.WithLabelValues().Set(b2f(s.StateWritable))
		stateWriteErrors.WithLabelValues().Add(float64(s.StateWriteErrors))
	}
	taggedClients.Set(float64(s.Tagged))
	blocksActive.Set(float64(s.BlocksActive))
	queueDepth.WithLabelValues("high").Set(float64(s.QueueHigh))
	queueDepth.WithLabelValues("low").Set(float64(s.QueueLow))
	hookPending.Reset() // a hook a reload removed is no longer shown
	for name, n := range s.HookPending {
		hookPending.WithLabelValues(name).Set(float64(n))
	}
	if s.Fleet {
		fleetUp.WithLabelValues().Set(b2f(s.FleetUp))
		fleetErrors.WithLabelValues().Add(float64(s.FleetErrors))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var (
	cacheHits      = cacheLookups.WithLabelValues("hit")
	cacheMisses    = cacheLookups.WithLabelValues("miss")
	submitCounters [len(enforce.Sources)][validate.Dropped + 1]prometheus.Counter
)

func init() {
	for _, src := range enforce.Sources {
		for _, r := range []validate.Result{validate.Queued, validate.Cached, validate.InFlight, validate.Dropped} {
			submitCounters[src][r] = ipsSubmitted.WithLabelValues(r.String(), src.String())
		}
	}
}
