// Package helm holds the tests of the Helm chart in coredns-cip/: helm lint and
// helm template in every mode, each rendered object strict-decoded into its
// Kubernetes API type (an unknown or misspelt field fails), and assertions on
// what an operator relies on: the key only in a Secret, the Corefile, the
// probes, the ports, the mounts and the security context.
package helm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const chartDir = "coredns-cip"

// kubeVersion is the Kubernetes version the chart is rendered and linted for:
// a Helm built with go build (without its Makefile's -ldflags) otherwise
// assumes v1.20, below the chart's kubeVersion.
const kubeVersion = "1.34.0"

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmBin builds Helm once from the tools/helm module (its own go.mod, so its
// dependencies stay out of the server's) and returns the binary's path.
func helmBin(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		dir, err := os.MkdirTemp("", "coredns-cip-helm")
		if err != nil {
			helmErr = err
			return
		}
		helmPath = filepath.Join(dir, "helm")
		cmd := exec.Command("go", "build", "-o", helmPath, "helm.sh/helm/v3/cmd/helm")
		cmd.Dir = filepath.Join("..", "..", "tools", "helm")
		if out, err := cmd.CombinedOutput(); err != nil {
			helmErr = fmt.Errorf("building helm in tools/helm: %v\n%s", err, out)
		}
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if helmPath != "" {
		os.RemoveAll(filepath.Dir(helmPath))
	}
	os.Exit(code)
}

// runHelm runs helm with a private home, so no user's repositories or plugins
// take part.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// rendered is a rendered chart: its objects by kind and name.
type rendered struct {
	objs map[string][]byte // "Kind/name" → the object as YAML
	raw  string
}

func (r rendered) has(kind, name string) bool { _, ok := r.objs[kind+"/"+name]; return ok }

// get strict-decodes the object into out, failing on an unknown field.
func (r rendered) get(t *testing.T, kind, name string, out any) {
	t.Helper()
	doc, ok := r.objs[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s/%s rendered; have %v", kind, name, r.names())
	}
	if err := strictDecode(doc, out); err != nil {
		t.Fatalf("%s/%s: %v", kind, name, err)
	}
}

func (r rendered) names() []string {
	var names []string
	for n := range r.objs {
		names = append(names, n)
	}
	return names
}

// template renders the chart into kube-system with the ci values file and the
// extra arguments, and checks every object against its Kubernetes API type.
func template(t *testing.T, valuesFile string, extra ...string) rendered {
	t.Helper()
	args := append([]string{"template", "cip", chartDir, "--namespace", "kube-system", "--kube-version", kubeVersion,
		"-f", filepath.Join(chartDir, "ci", valuesFile)}, extra...)
	out, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r := rendered{objs: map[string][]byte{}, raw: out}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("splitting the rendered manifests: %v", err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if meta.Kind == "" {
			continue // a document of comments only
		}
		checkSchema(t, meta.APIVersion, meta.Kind, doc)
		key := meta.Kind + "/" + meta.Metadata.Name
		if _, dup := r.objs[key]; dup {
			t.Fatalf("%s rendered twice", key)
		}
		r.objs[key] = doc
	}
	return r
}

// checkSchema strict-decodes doc into the typed k8s.io/api struct of its kind:
// a field that the API does not have (a typo, a wrong indentation) or a value
// of the wrong type fails, as the API server's validation would refuse it.
func checkSchema(t *testing.T, apiVersion, kind string, doc []byte) {
	t.Helper()
	types := map[string]func() any{
		"v1/ConfigMap":       func() any { return &corev1.ConfigMap{} },
		"v1/Secret":          func() any { return &corev1.Secret{} },
		"v1/Service":         func() any { return &corev1.Service{} },
		"v1/ServiceAccount":  func() any { return &corev1.ServiceAccount{} },
		"apps/v1/Deployment": func() any { return &appsv1.Deployment{} },
		"apps/v1/DaemonSet":  func() any { return &appsv1.DaemonSet{} },
		"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
		"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
		"policy/v1/PodDisruptionBudget":                   func() any { return &policyv1.PodDisruptionBudget{} },
		// No Go type of the Prometheus operator is in the module graph: its
		// fields are checked by TestServiceMonitor.
		"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &map[string]any{} },
	}
	newObj, ok := types[apiVersion+"/"+kind]
	if !ok {
		t.Fatalf("rendered %s %s: no schema to check it against", apiVersion, kind)
	}
	if err := strictDecode(doc, newObj()); err != nil {
		t.Errorf("%s %s does not match its API schema: %v\n%s", apiVersion, kind, err, doc)
	}
}

// strictDecode decodes a YAML object as the API server reads JSON: field
// names case-sensitive (encoding/json alone would take readonly for
// readOnly), unknown and duplicate fields refused.
func strictDecode(doc []byte, out any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	strict, err := k8sjson.UnmarshalStrict(j, out, k8sjson.DisallowUnknownFields, k8sjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}
