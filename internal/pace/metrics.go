package pace

import (
	"sync"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// waitTotal is the time paced work waited for the CPU budget, chargedTotal
// the processing it was charged. Their series exist once a Pacer does (not
// with `validate_cpu off`).
var (
	waitTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "cpu_budget_wait_seconds_total",
		Help: "Time validation workers and event intake waited for the CPU budget (validate_cpu), by work (validation, event).",
	}, []string{"work"})
	chargedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "cpu_budget_charged_seconds_total",
		Help: "Processing time charged to the CPU budget (validate_cpu), by work (validation, event): CPU time where the system has a thread CPU clock.",
	}, []string{"work"})
	waitSeconds    [len(works)]prometheus.Counter
	chargedSeconds [len(works)]prometheus.Counter
	resolveOnce    sync.Once
)

func resolveMetrics() {
	resolveOnce.Do(func() {
		for w, name := range works {
			waitSeconds[w] = waitTotal.WithLabelValues(name)
			chargedSeconds[w] = chargedTotal.WithLabelValues(name)
		}
	})
}

// Collectors are this package's metrics, for the plugin's list of its
// metrics.
func Collectors() []prometheus.Collector { return []prometheus.Collector{waitTotal, chargedTotal} }
