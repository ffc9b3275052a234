package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The shipped unit, alone and with its nftables drop-in, is one that
// systemd loads without a warning, and its sandbox rates "OK" (exposure at
// most 3.0 of 10) in systemd-analyze security.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd; .ci/run installs it)")
	}
	unit, err := os.ReadFile("../contrib/systemd/coredns-cip.service")
	if err != nil {
		t.Fatal(err)
	}
	dropIn, err := os.ReadFile("../contrib/systemd/nftables.conf")
	if err != nil {
		t.Fatal(err)
	}
	const installed = "ExecStart=/usr/local/bin/coredns-cip "
	if !strings.Contains(string(unit), installed) {
		t.Fatalf("the unit has no %q line; update the test", installed)
	}
	// ExecStart must name an executable, so the unit points at the binary
	// under test instead of the installed path.
	unit = []byte(strings.Replace(string(unit), installed, "ExecStart="+binPath+" ", 1))

	for _, withDropIn := range []bool{false, true} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "coredns-cip.service"), unit, 0o644); err != nil {
			t.Fatal(err)
		}
		if withDropIn {
			d := filepath.Join(dir, "coredns-cip.service.d")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "nftables.conf"), dropIn, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		name := map[bool]string{false: "unit", true: "unit with the nftables drop-in"}[withDropIn]
		// The unit is loaded by name from dir first (the trailing colon keeps
		// the system's paths for the targets it names), with its drop-ins.
		env := append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":", "SYSTEMD_LOG_COLOR=0")
		verify := exec.Command(analyze, "verify", "coredns-cip.service")
		verify.Env = env
		out, err := verify.CombinedOutput()
		if err != nil || strings.Contains(string(out), "coredns-cip") {
			t.Errorf("%s: systemd-analyze verify: %v\n%s", name, err, out)
		}

		security := exec.Command(analyze, "security", "--offline=yes", "--no-pager", "coredns-cip.service")
		security.Env = env
		out, err = security.CombinedOutput()
		if err != nil && strings.Contains(string(out), "offline") {
			t.Skipf("this systemd-analyze cannot rate a unit offline (systemd 252 can): %s", out)
		}
		m := regexp.MustCompile(`Overall exposure level for coredns-cip\.service: (\d+\.\d+)`).FindSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("%s: systemd-analyze security: %v\n%s", name, err, out)
		}
		if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 3.0 {
			t.Errorf("%s: exposure %.1f, want at most 3.0 (OK)\n%s", name, score, out)
		}
		t.Logf("%s: exposure %s", name, m[1])
	}
}
