package cipvalidate

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"

	"github.com/coredns/coredns/plugin/metrics"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// The shipped dashboard and alert rules (contrib/), and the page that
// explains them.
const (
	dashboardFile  = "../../contrib/grafana/coredns-cip.json"
	rulesFile      = "../../contrib/prometheus/coredns-cip.rules.yml"
	monitoringPage = "../../docs/monitoring.md"
)

var promQL = parser.NewParser(parser.Options{})

// TestAlertRules: Prometheus itself would load the rules file (rulefmt
// parses every expression with the PromQL parser), and every alert carries
// what an on-call needs: a for, a severity, a summary, a description and a
// runbook link to a section of the monitoring page that exists.
func TestAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promQL, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("Prometheus rejects %s: %v", rulesFile, err)
	}
	if groups == nil {
		t.FailNow()
	}
	page, err := os.ReadFile(monitoringPage)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(page), -1) {
		anchors[strings.ToLower(strings.ReplaceAll(strings.TrimSpace(m[1]), " ", "-"))] = true
	}
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if r.For <= 0 {
				t.Errorf("alert %s: no for:, so one bad scrape pages someone", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
			if _, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#"); !anchors[anchor] {
				t.Errorf("alert %s: runbook_url %q names no section of %s", r.Alert, r.Annotations["runbook_url"], monitoringPage)
			}
			if !strings.Contains(string(page), r.Alert) {
				t.Errorf("alert %s is not explained in %s", r.Alert, monitoringPage)
			}
		}
	}
	if alerts == 0 {
		t.Errorf("%s holds no alert", rulesFile)
	}
}

// TestMonitoringMetricsExported: every metric the dashboard's queries and
// the alert rules name is one a running CoreDNS with cipvalidate and
// prometheus exports, so a renamed metric cannot leave a blank panel or a
// silent alert behind.
//
// Exported means: on the server's /metrics after it answered a query, or,
// for a family with no sample yet (the gauges a sweep sets every 15s, the
// ones only state, audit, hooks or redis set), described by a collector
// registered with the registry that /metrics serves: it appears there
// with its first sample, under the same name.
func TestMonitoringMetricsExported(t *testing.T) {
	exported := scrapeRunningServer(t)
	for _, c := range collectors {
		if err := prometheus.DefaultRegisterer.Register(c); !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			t.Fatalf("collector %v is not registered with the registry /metrics serves (Register: %v)", c, err)
		}
		addSeriesNames(exported, collectorFamily(c), isHistogram(c))
	}
	for name, where := range monitoringQueryMetrics(t) {
		if !exported[name] {
			t.Errorf("%s queries %s, which the server does not export", strings.Join(where, ", "), name)
		}
	}
}

// TestDashboardCoversEveryMetric: the dashboard has a panel querying every
// metric family the plugin registers, so a new metric needs a panel.
func TestDashboardCoversEveryMetric(t *testing.T) {
	queried := map[string]bool{}
	for name, where := range monitoringQueryMetrics(t) {
		for _, w := range where {
			if strings.HasPrefix(w, "dashboard") {
				queried[name] = true
			}
		}
	}
	for _, c := range collectors {
		name := collectorFamily(c)
		series := map[string]bool{}
		addSeriesNames(series, name, isHistogram(c))
		found := false
		for s := range series {
			found = found || queried[s]
		}
		if !found {
			t.Errorf("%s has no panel in %s", name, dashboardFile)
		}
	}
}

// scrapeRunningServer starts CoreDNS with cipvalidate and prometheus,
// sends it a query and returns the series names its /metrics shows.
func scrapeRunningServer(t *testing.T) map[string]bool {
	RegisterDirective()
	_, apiURL := fakeapitest.Start(t, fakeapitest.WithKey("mon-key"))
	t.Setenv("CIP_MON_KEY", "mon-key")
	db := filepath.Join(t.TempDir(), "db.example.org")
	if err := os.WriteFile(db, []byte(e2eZone), 0o600); err != nil {
		t.Fatal(err)
	}
	_, udp, _ := coretest.Start(t, fmt.Sprintf(`.:0 {
    prometheus 127.0.0.1:0
    cipvalidate {
        api_key {$CIP_MON_KEY}
        api_url %s
    }
    file %s example.org
}
`, apiURL, db))
	m := new(dns.Msg)
	m.SetQuestion("clean.example.org.", dns.TypeA)
	coretest.Exchange(t, udp, m)

	// The DNS counters are bumped after the reply is written; wait for them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		exported := scrape(t, "http://"+metrics.ListenAddr+"/metrics")
		if exported["coredns_dns_requests_total"] && exported["coredns_cipvalidate_answers_inspected_total"] {
			return exported
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a query, /metrics still lacks coredns_dns_requests_total or coredns_cipvalidate_answers_inspected_total")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrape(t *testing.T, url string) map[string]bool {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	names := map[string]bool{}
	for name, f := range families {
		addSeriesNames(names, name, f.GetType() == dto.MetricType_HISTOGRAM)
	}
	return names
}

// addSeriesNames adds the names a query uses for family: a histogram's
// series are its _bucket, _sum and _count.
func addSeriesNames(names map[string]bool, family string, histogram bool) {
	if !histogram {
		names[family] = true
		return
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		names[family+suffix] = true
	}
}

func collectorFamily(c prometheus.Collector) string {
	ch := make(chan *prometheus.Desc, 1)
	c.Describe(ch)
	return regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch((<-ch).String())[1]
}

func isHistogram(c prometheus.Collector) bool {
	_, ok := c.(prometheus.Histogram)
	return ok
}

// monitoringQueryMetrics returns every metric name the dashboard's queries
// and variables and the alert rules' expressions select, with where each
// is used. Names come from the PromQL syntax tree, not from a pattern.
func monitoringQueryMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, expr string) {
		// Grafana's variables: $__rate_interval stands for a duration.
		expr = strings.ReplaceAll(expr, "$__rate_interval", "5m")
		node, err := promQL.ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", where, expr, err)
			return
		}
		parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				if vs.Name == "" {
					t.Errorf("%s: selector %s names no metric", where, vs)
				}
				used[vs.Name] = append(used[vs.Name], where)
			}
			return nil
		})
	}

	var dash struct {
		Templating struct {
			List []struct {
				Name       string
				Type       string
				Definition string
			}
		}
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			add(fmt.Sprintf("dashboard panel %q", p.Title), tg.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[a-z_]+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type == "query" {
			m := labelValues.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("dashboard variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
				continue
			}
			add("dashboard variable "+v.Name, m[1])
		}
	}

	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promQL, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", rulesFile, errs)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			add("alert "+r.Alert, r.Expr)
		}
	}
	for name := range used {
		sort.Strings(used[name])
	}
	if len(used) == 0 {
		t.Fatalf("no metric found in %s or %s", dashboardFile, filepath.Base(rulesFile))
	}
	return used
}
