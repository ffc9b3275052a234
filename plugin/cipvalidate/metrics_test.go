package cipvalidate

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestReadmeListsMetrics: the README lists every metric the plugin
// registers, with its labels, and no other; running totals are counters
// named *_total.
func TestReadmeListsMetrics(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	section = section[strings.Index(section, "## Metrics"):strings.Index(section, "## Ready")]
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\* `(coredns_cipvalidate_[a-z_]+(?:\\{[a-z_, ]+\\})?)`").FindAllStringSubmatch(section, -1) {
		documented[m[1]] = true
	}

	registered := map[string]bool{}
	for _, c := range collectors {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		desc := (<-ch).String()
		name := regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch(desc)[1]
		entry := name
		if labels := regexp.MustCompile(`variableLabels: \{([a-z_,]*)\}`).FindStringSubmatch(desc); labels != nil && labels[1] != "" {
			entry += "{" + strings.ReplaceAll(labels[1], ",", ", ") + "}"
		}
		registered[entry] = true
		if !documented[entry] {
			t.Errorf("metric %s is not in the README's Metrics section", entry)
		}
		_, counter := c.(prometheus.Counter) // a Gauge is one too, but has Set
		_, gauge := c.(prometheus.Gauge)
		_, counterVec := c.(*prometheus.CounterVec)
		if isCounter := counterVec || counter && !gauge; isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("metric %s: a counter must be named *_total, and only a counter", name)
		}
	}
	for entry := range documented {
		if !registered[entry] {
			t.Errorf("the README lists %s, which the plugin does not register", entry)
		}
	}
}
