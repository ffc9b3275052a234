package helm

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

const testAPIKey = "test-criminal-ip-key-0123456789" // ci/deployment-values.yaml's

func TestLint(t *testing.T) {
	for _, values := range []string{"deployment-values.yaml", "daemonset-values.yaml", "daemonset-service-values.yaml"} {
		out, err := runHelm(t, "lint", "--strict", "--kube-version", kubeVersion, chartDir, "-f", filepath.Join(chartDir, "ci", values))
		if err != nil {
			t.Errorf("helm lint --strict with %s: %v\n%s", values, err, out)
		}
	}
}

// A chart installed without what it needs must say what to set, not render a
// server that cannot start.
func TestRefusesIncompleteValues(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no api key", nil, "apiKey.existingSecret"},
		{"daemonset without cluster DNS", []string{"--set", "mode=daemonset", "--set", "apiKey.existingSecret=k"}, "nodeLocal.clusterDNS"},
		{"events without tokens", []string{"--set", "apiKey.existingSecret=k", "--set", "events.enabled=true"}, "events.tokens.existingSecret"},
		{"unknown mode", []string{"--set", "mode=statefulset", "--set", "apiKey.existingSecret=k"}, "mode"},
	} {
		out, err := runHelm(t, append([]string{"template", "cip", chartDir, "--kube-version", kubeVersion}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: helm template err=%v, want an error naming %q; got\n%s", c.name, err, c.want, out)
		}
	}
}

func TestDeploymentMode(t *testing.T) {
	r := template(t, "deployment-values.yaml")

	// The key is in its Secret and nowhere else: not in the ConfigMap, not in the pod spec.
	var keySecret corev1.Secret
	r.get(t, "Secret", "cip-coredns-cip-api-key", &keySecret)
	if keySecret.StringData["api-key"] != testAPIKey {
		t.Errorf("api key Secret holds %q", keySecret.StringData)
	}
	for name, doc := range r.objs {
		if name != "Secret/cip-coredns-cip-api-key" && strings.Contains(string(doc), testAPIKey) {
			t.Errorf("the API key appears in %s", name)
		}
	}

	corefile := corefileOf(t, r)
	for _, want := range []string{"reload", "cipvalidate {", "api_key {$CIP_API_KEY}", "kubernetes cluster.local in-addr.arpa ip6.arpa",
		"health :8080", "ready :8181 {", "monitor continuously", "prometheus :9153", "state /var/lib/coredns-cip",
		"events :8053 tokens /run/coredns-cip/tokens/tokens", "scope tagged", ".:53 {"} {
		if !strings.Contains(corefile, want) {
			t.Errorf("Corefile lacks %q:\n%s", want, corefile)
		}
	}

	var d appsv1.Deployment
	r.get(t, "Deployment", "cip-coredns-cip", &d)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	checkPod(t, pod, "")
	if pod.PriorityClassName != "system-cluster-critical" || pod.HostNetwork {
		t.Errorf("priorityClassName %q hostNetwork %v", pod.PriorityClassName, pod.HostNetwork)
	}
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil ||
		pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("no anti-affinity across nodes: %+v", pod.Affinity)
	}
	if pod.ServiceAccountName != "cip-coredns-cip" || !r.has("ServiceAccount", "cip-coredns-cip") {
		t.Errorf("service account %q not rendered", pod.ServiceAccountName)
	}
	c := pod.Containers[0]
	if caps := c.SecurityContext.Capabilities.Add; !slices.Equal(caps, []corev1.Capability{"NET_BIND_SERVICE"}) {
		t.Errorf("capabilities added %v, want only NET_BIND_SERVICE without the nftables hook", caps)
	}
	env := envVar(t, c, "CIP_API_KEY")
	if ref := env.ValueFrom.SecretKeyRef; ref == nil || ref.Name != keySecret.Name || ref.Key != "api-key" {
		t.Errorf("CIP_API_KEY is not the Secret's key: %+v", env.ValueFrom)
	}
	if d.Spec.Template.Annotations["checksum/api-key"] == "" {
		t.Error("no checksum/api-key annotation: a new key in values would not restart the pods")
	}

	// The tokens file is the chart's Secret, mounted where the Corefile reads it, not world-readable.
	var tokens corev1.Secret
	r.get(t, "Secret", "cip-coredns-cip-tokens", &tokens)
	if !strings.HasPrefix(tokens.StringData["tokens"], "siem events sha256:") {
		t.Errorf("tokens Secret holds %q", tokens.StringData)
	}
	checkSecretFile(t, pod, "/run/coredns-cip/tokens/tokens", tokens.Name)

	var svc corev1.Service
	r.get(t, "Service", "cip-coredns-cip", &svc)
	if svc.Spec.ClusterIP != "10.96.0.10" {
		t.Errorf("DNS Service clusterIP %q, want 10.96.0.10", svc.Spec.ClusterIP)
	}
	checkDNSPorts(t, svc)
	checkEventsService(t, r, c, 8053)

	var role rbacv1.ClusterRole
	r.get(t, "ClusterRole", "cip-coredns-cip", &role)
	checkRBAC(t, role)
	var binding rbacv1.ClusterRoleBinding
	r.get(t, "ClusterRoleBinding", "cip-coredns-cip", &binding)
	if binding.Subjects[0].Name != pod.ServiceAccountName || binding.Subjects[0].Namespace != "kube-system" {
		t.Errorf("ClusterRoleBinding subject %+v", binding.Subjects)
	}

	var pdb policyv1.PodDisruptionBudget
	r.get(t, "PodDisruptionBudget", "cip-coredns-cip", &pdb)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 ||
		pdb.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "cip" {
		t.Errorf("PodDisruptionBudget %+v", pdb.Spec)
	}
	if r.has("ServiceMonitor", "cip-coredns-cip") {
		t.Error("ServiceMonitor rendered though serviceMonitor.enabled is false")
	}
}

func TestDaemonSetHostNetwork(t *testing.T) {
	r := template(t, "daemonset-values.yaml")
	if r.has("Secret", "cip-coredns-cip-api-key") || r.has("Secret", "cip-coredns-cip-tokens") {
		t.Error("a Secret is rendered though existingSecret names one")
	}
	if r.has("ClusterRole", "cip-coredns-cip") || r.has("Service", "cip-coredns-cip") {
		t.Error("a node-local cache on hostNetwork needs neither the kubernetes plugin's ClusterRole nor a DNS Service")
	}
	corefile := corefileOf(t, r)
	for _, want := range []string{"reload", "cipvalidate {", "bind 169.254.20.10", "forward . 10.96.0.10",
		"cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {", "health 169.254.20.10:8080", "ready 169.254.20.10:8181",
		"api_key_file /run/coredns-cip/api-key/api_key.json", "events :9053 tokens /run/coredns-cip/tokens/tokens",
		"hook nftables inet coredns_cip blocked4 blocked6 create"} {
		if !strings.Contains(corefile, want) {
			t.Errorf("Corefile lacks %q:\n%s", want, corefile)
		}
	}
	if strings.Contains(corefile, "kubernetes") || strings.Contains(corefile, "CIP_API_KEY") {
		t.Errorf("Corefile of a node-local cache with a key file:\n%s", corefile)
	}

	var ds appsv1.DaemonSet
	r.get(t, "DaemonSet", "cip-coredns-cip", &ds)
	pod := ds.Spec.Template.Spec
	checkPod(t, pod, "169.254.20.10")
	if !pod.HostNetwork {
		t.Error("hostNetwork is off")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the service account token is mounted though nothing talks to the API server")
	}
	c := pod.Containers[0]
	if !slices.Contains(c.SecurityContext.Capabilities.Add, "NET_ADMIN") || !slices.Contains(c.SecurityContext.Capabilities.Add, "NET_BIND_SERVICE") {
		t.Errorf("the nftables hook needs NET_ADMIN and DNS NET_BIND_SERVICE: %v", c.SecurityContext.Capabilities.Add)
	}
	for _, e := range c.Env {
		if e.Name == "CIP_API_KEY" {
			t.Error("CIP_API_KEY set though the key is mounted as a file")
		}
	}
	checkSecretFile(t, pod, "/run/coredns-cip/api-key/api_key.json", "criminal-ip")
	checkSecretFile(t, pod, "/run/coredns-cip/tokens/tokens", "coredns-cip-tokens")
	checkEventsService(t, r, c, 9053)

	var pdb policyv1.PodDisruptionBudget
	r.get(t, "PodDisruptionBudget", "cip-coredns-cip", &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 0 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget %+v, want minAvailable 0 only", pdb.Spec)
	}
}

func TestDaemonSetBehindLocalService(t *testing.T) {
	r := template(t, "daemonset-service-values.yaml")
	corefile := corefileOf(t, r)
	if strings.Contains(corefile, "bind ") || !strings.Contains(corefile, "health :8080") {
		t.Errorf("in the pod network the server binds the pod's address:\n%s", corefile)
	}
	var ds appsv1.DaemonSet
	r.get(t, "DaemonSet", "cip-coredns-cip", &ds)
	checkPod(t, ds.Spec.Template.Spec, "")
	if ds.Spec.Template.Spec.HostNetwork {
		t.Error("hostNetwork is on")
	}
	var svc corev1.Service
	r.get(t, "Service", "cip-coredns-cip", &svc)
	if svc.Spec.ClusterIP != "10.96.0.11" || svc.Spec.InternalTrafficPolicy == nil || *svc.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyLocal {
		t.Errorf("node-local Service clusterIP %q internalTrafficPolicy %v", svc.Spec.ClusterIP, svc.Spec.InternalTrafficPolicy)
	}
	checkDNSPorts(t, svc)
	if r.has("Service", "cip-coredns-cip-events") {
		t.Error("events Service rendered though events.enabled is false")
	}
}

// The ServiceMonitor is rendered only where the Prometheus operator's API is
// (or when forced), and it selects the metrics Service's port.
func TestServiceMonitor(t *testing.T) {
	if r := template(t, "daemonset-values.yaml"); r.has("ServiceMonitor", "cip-coredns-cip") {
		t.Error("ServiceMonitor rendered on a cluster without monitoring.coreos.com/v1")
	}
	for _, extra := range [][]string{{"--api-versions", "monitoring.coreos.com/v1"}, {"--set", "serviceMonitor.force=true"}} {
		r := template(t, "daemonset-values.yaml", extra...)
		// Strict: a field the ServiceMonitor CRD lacks fails here too.
		var sm struct {
			APIVersion string         `json:"apiVersion"`
			Kind       string         `json:"kind"`
			Metadata   map[string]any `json:"metadata"`
			Spec       struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				Endpoints []struct {
					Port     string `json:"port"`
					Path     string `json:"path"`
					Interval string `json:"interval"`
				} `json:"endpoints"`
				NamespaceSelector struct {
					MatchNames []string `json:"matchNames"`
				} `json:"namespaceSelector"`
			} `json:"spec"`
		}
		r.get(t, "ServiceMonitor", "cip-coredns-cip", &sm)
		var metrics corev1.Service
		r.get(t, "Service", "cip-coredns-cip-metrics", &metrics)
		for k, v := range sm.Spec.Selector.MatchLabels {
			if metrics.Labels[k] != v {
				t.Errorf("%v: ServiceMonitor selects %s=%s, the metrics Service has %q", extra, k, v, metrics.Labels[k])
			}
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" ||
			metrics.Spec.Ports[0].Name != "metrics" || metrics.Spec.Ports[0].TargetPort.StrVal != "metrics" {
			t.Errorf("%v: endpoints %+v, metrics Service ports %+v", extra, sm.Spec.Endpoints, metrics.Spec.Ports)
		}
		if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{"kube-system"}) {
			t.Errorf("%v: namespaceSelector %v", extra, sm.Spec.NamespaceSelector.MatchNames)
		}
	}
}

// The nftables hook is the only thing that adds NET_ADMIN, in either mode.
func TestNftablesAddsNetAdmin(t *testing.T) {
	r := template(t, "deployment-values.yaml", "--set", "nftables.enabled=true", "--set", "nftables.table=cip")
	var d appsv1.Deployment
	r.get(t, "Deployment", "cip-coredns-cip", &d)
	sc := d.Spec.Template.Spec.Containers[0].SecurityContext
	if !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE", "NET_ADMIN"}) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities %+v", sc.Capabilities)
	}
	if corefile := corefileOf(t, r); !strings.Contains(corefile, "hook nftables inet cip blocked4 blocked6 create") {
		t.Errorf("Corefile lacks the hook:\n%s", corefile)
	}
}

// An existing Secret for the key, read from the environment: nothing of the
// key is rendered, and the env var names the user's Secret and key.
func TestExistingAPIKeySecret(t *testing.T) {
	r := template(t, "deployment-values.yaml", "--set", "apiKey.value=", "--set", "apiKey.existingSecret=cip-key", "--set", "apiKey.secretKey=key")
	if r.has("Secret", "cip-coredns-cip-api-key") || strings.Contains(r.raw, testAPIKey) {
		t.Error("an API key Secret is rendered though existingSecret names one")
	}
	var d appsv1.Deployment
	r.get(t, "Deployment", "cip-coredns-cip", &d)
	env := envVar(t, d.Spec.Template.Spec.Containers[0], "CIP_API_KEY")
	if ref := env.ValueFrom.SecretKeyRef; ref == nil || ref.Name != "cip-key" || ref.Key != "key" {
		t.Errorf("CIP_API_KEY from %+v, want cip-key/key", env.ValueFrom)
	}
}

// A key created from values and mounted as a file is the JSON file api_key_file reads.
func TestAPIKeyFileFromValues(t *testing.T) {
	r := template(t, "deployment-values.yaml", "--set", "apiKey.mountAs=file")
	var s corev1.Secret
	r.get(t, "Secret", "cip-coredns-cip-api-key", &s)
	if got := s.StringData["api-key"]; got != `{"api_key":"`+testAPIKey+`"}` {
		t.Errorf("key file %q", got)
	}
	var d appsv1.Deployment
	r.get(t, "Deployment", "cip-coredns-cip", &d)
	checkSecretFile(t, d.Spec.Template.Spec, "/run/coredns-cip/api-key/api-key", s.Name)
	if !strings.Contains(corefileOf(t, r), "api_key_file /run/coredns-cip/api-key/api-key") {
		t.Error("Corefile does not read the mounted key file")
	}
}
