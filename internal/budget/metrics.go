package budget

import (
	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The budget's metrics: vectors without labels (the gauges), so that they
// are exported only once a budget is configured.
var (
	spentGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "api_budget_spent",
		Help: "API calls spent in the current budget period; only with budget.",
	}, nil)
	remainingGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "api_budget_remaining",
		Help: "API calls left in the current budget period (0 once exhausted, by spending or by a quota error); only with budget.",
	}, nil)
	refusedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "api_budget_refused_total",
		Help: "API calls the budget refused, by class (event, critical_port, live, background).",
	}, []string{"class"})
	refused [len(Classes)]prometheus.Counter
)

func init() {
	for _, c := range Classes {
		refused[c] = refusedTotal.WithLabelValues(c.String())
	}
}

// Collectors are this package's metrics, for the plugin's list of its
// metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{spentGauge, remainingGauge, refusedTotal}
}

func publish(s Status) {
	spentGauge.WithLabelValues().Set(float64(s.Spent))
	remainingGauge.WithLabelValues().Set(float64(s.Remaining))
}
