package helm

import (
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/caddy/caddyfile"
	"github.com/coredns/coredns/core/dnsserver"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// corefileOf returns the Corefile of the chart's ConfigMap, after checking
// that CoreDNS's parser takes it: braces balanced, every directive one that
// a standard CoreDNS build (plus cipvalidate) knows.

func corefileOf(t *testing.T, r rendered) string {
	t.Helper()
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap", "cip-coredns-cip", &cm)
	corefile, ok := cm.Data["Corefile"]
	if !ok || len(cm.Data) != 1 {
		t.Fatalf("ConfigMap data has %d keys, want only Corefile", len(cm.Data))
	}
	directives := append(slices.Clone(dnsserver.Directives), "cipvalidate")
	if _, err := caddyfile.Parse("Corefile", strings.NewReader(corefile), directives); err != nil {
		t.Fatalf("the rendered Corefile does not parse: %v\n%s", err, corefile)
	}
	return corefile
}

// checkPod checks what every mode shares: the hardened security context, the
// probes on the health and ready plugins, the Corefile mounted where the
// entrypoint reads it, the writable state directory, and dnsPolicy Default so
// that the server does not resolve through itself. probeHost is the address
// the probes go to with hostNetwork ("" for the pod IP).
func checkPod(t *testing.T, pod corev1.PodSpec, probeHost string) {
	t.Helper()
	if pod.DNSPolicy != corev1.DNSDefault {
		t.Errorf("dnsPolicy %q, want Default", pod.DNSPolicy)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || psc.FSGroup == nil {
		t.Errorf("pod securityContext %+v", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !slices.Contains(sc.Capabilities.Add, "NET_BIND_SERVICE") ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext %+v", sc)
	}
	if !strings.HasPrefix(c.Image, "ghcr.io/coredns-cip/coredns-cip:") ||
		!slices.Equal(append(c.Command, c.Args...), []string{"/coredns-cip", "-conf", "/etc/coredns-cip/Corefile"}) {
		t.Errorf("image %q runs %v %v", c.Image, c.Command, c.Args)
	}
	checkProbe(t, "liveness", c.LivenessProbe, "/health", 8080, probeHost)
	checkProbe(t, "readiness", c.ReadinessProbe, "/ready", 8181, probeHost)

	config := mountAt(t, pod, "/etc/coredns-cip")
	if config.volume.ConfigMap == nil || config.volume.ConfigMap.Name != "cip-coredns-cip" || !config.mount.ReadOnly {
		t.Errorf("/etc/coredns-cip is %+v, want the chart's ConfigMap read-only", config.volume)
	}
	state := mountAt(t, pod, "/var/lib/coredns-cip")
	if state.volume.EmptyDir == nil || state.mount.ReadOnly {
		t.Errorf("state directory %+v, want a writable emptyDir by default", state)
	}
	var udp, tcp bool
	for _, p := range c.Ports {
		udp = udp || (p.ContainerPort == 53 && p.Protocol == corev1.ProtocolUDP)
		tcp = tcp || (p.ContainerPort == 53 && p.Protocol == corev1.ProtocolTCP)
	}
	if !udp || !tcp {
		t.Errorf("container ports %+v, want 53 UDP and TCP", c.Ports)
	}
}

func checkProbe(t *testing.T, which string, p *corev1.Probe, path string, port int, host string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.IntValue() != port || p.HTTPGet.Host != host {
		t.Errorf("%s probe %+v, want GET %s:%d%s", which, p, host, port, path)
	}
}

type mounted struct {
	mount  corev1.VolumeMount
	volume corev1.Volume
}

// mountAt finds the volume mounted at dir in the pod's container.
func mountAt(t *testing.T, pod corev1.PodSpec, dir string) mounted {
	t.Helper()
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name {
				return mounted{m, v}
			}
		}
		t.Fatalf("mount %s names volume %q, which the pod lacks", dir, m.Name)
	}
	t.Fatalf("nothing mounted at %s", dir)
	return mounted{}
}

// checkSecretFile checks that file is the Secret secretName's key, mounted
// read-only and not readable by other users (the tokens file is refused if it
// is when it holds plain tokens).
func checkSecretFile(t *testing.T, pod corev1.PodSpec, file, secretName string) {
	t.Helper()
	m := mountAt(t, pod, path.Dir(file))
	s := m.volume.Secret
	if s == nil || s.SecretName != secretName || !m.mount.ReadOnly {
		t.Fatalf("%s is in %+v, want the Secret %s read-only", file, m.volume, secretName)
	}
	if s.DefaultMode == nil || *s.DefaultMode&0o007 != 0 {
		t.Errorf("%s mode %v: readable by other users", file, s.DefaultMode)
	}
	if len(s.Items) != 1 || s.Items[0].Path != path.Base(file) {
		t.Errorf("%s: Secret items %+v", file, s.Items)
	}
}

func envVar(t *testing.T, c corev1.Container, name string) corev1.EnvVar {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			if e.Value != "" || e.ValueFrom == nil {
				t.Fatalf("%s has a literal value in the pod spec", name)
			}
			return e
		}
	}
	t.Fatalf("no %s in the container's environment", name)
	return corev1.EnvVar{}
}

func checkDNSPorts(t *testing.T, svc corev1.Service) {
	t.Helper()
	want := map[corev1.Protocol]bool{}
	for _, p := range svc.Spec.Ports {
		if p.Port == 53 && p.TargetPort.IntValue() == 53 {
			want[p.Protocol] = true
		}
	}
	if !want[corev1.ProtocolUDP] || !want[corev1.ProtocolTCP] || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("DNS Service %s: type %q ports %+v, want ClusterIP 53 UDP and TCP", svc.Name, svc.Spec.Type, svc.Spec.Ports)
	}
}

// checkEventsService checks the event API's own Service: ClusterIP, its port
// reaching the container's events port, and no DNS port on it.
func checkEventsService(t *testing.T, r rendered, c corev1.Container, port int32) {
	t.Helper()
	var svc corev1.Service
	r.get(t, "Service", "cip-coredns-cip-events", &svc)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 ||
		svc.Spec.Ports[0].Port != 8053 || svc.Spec.Ports[0].TargetPort.StrVal != "events" {
		t.Errorf("events Service %+v", svc.Spec)
	}
	var found bool
	for _, p := range c.Ports {
		found = found || (p.Name == "events" && p.ContainerPort == port && p.Protocol == corev1.ProtocolTCP)
	}
	if !found {
		t.Errorf("container has no events port %d: %+v", port, c.Ports)
	}
}

// checkRBAC checks that the kubernetes plugin may list and watch what it
// reads, and nothing is granted beyond list and watch.
func checkRBAC(t *testing.T, role rbacv1.ClusterRole) {
	t.Helper()
	granted := map[string]bool{}
	for _, rule := range role.Rules {
		if !slices.Equal(rule.Verbs, []string{"list", "watch"}) {
			t.Errorf("rule %+v grants more than list and watch", rule)
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				granted[g+"/"+res] = true
			}
		}
	}
	for _, want := range []string{"/services", "/pods", "/namespaces", "discovery.k8s.io/endpointslices"} {
		if !granted[want] {
			t.Errorf("ClusterRole does not grant list/watch on %s: %+v", want, role.Rules)
		}
	}
}
