package pace

import (
	"sync"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// waitTotal is the time paced work waited for the CPU budget. Its series
// exist once a Pacer does (not with `validate_cpu off`).
var (
	waitTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "cpu_budget_wait_seconds_total",
		Help: "Time validation workers and event intake waited for the CPU budget (validate_cpu), by work (validation, event).",
	}, []string{"work"})
	waitSeconds [len(works)]prometheus.Counter
	resolveOnce sync.Once
)

func resolveMetrics() {
	resolveOnce.Do(func() {
		for w, name := range works {
			waitSeconds[w] = waitTotal.WithLabelValues(name)
		}
	})
}

// Collectors are this package's metrics, for the plugin's list of its
// metrics.
func Collectors() []prometheus.Collector { return []prometheus.Collector{waitTotal} }
