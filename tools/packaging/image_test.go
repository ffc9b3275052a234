package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The image test builds contrib/packaging/Containerfile with buildah (vfs
// storage, chroot isolation: no daemon) as `make image` does, reads the
// image's config and file system back, then runs it with podman in a fresh
// network namespace, as uid 65532 with only CAP_NET_BIND_SERVICE, and
// checks it answers DNS on port 53 and takes an event that blocks.

const image = "localhost/coredns-cip:package-test"

func containers(t *testing.T, name string, args ...string) string {
	t.Helper()
	return run(t, name, append([]string{"--storage-driver", "vfs"}, args...)...)
}

func TestImage(t *testing.T) {
	bin := binary(t)
	ctx := t.TempDir()
	// make image's staging, by its own script.
	cmd := exec.Command("sh", filepath.Join(root, "contrib/packaging/stage-image.sh"), bin, ctx)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stage-image.sh: %v\n%s", err, out)
	}
	containers(t, "buildah", "bud", "--isolation", "chroot", "-f", filepath.Join(ctx, "Containerfile"), "-t", image, ctx)
	t.Cleanup(func() { exec.Command("buildah", "--storage-driver", "vfs", "rmi", "-f", image).Run() })

	t.Run("config", func(t *testing.T) {
		var inspect struct {
			OCIv1 struct {
				Config struct {
					User         string
					Entrypoint   []string
					Cmd          []string
					ExposedPorts map[string]struct{}
				} `json:"config"`
			}
		}
		if err := json.Unmarshal([]byte(containers(t, "buildah", "inspect", "--type", "image", image)), &inspect); err != nil {
			t.Fatal(err)
		}
		c := inspect.OCIv1.Config
		got := fmt.Sprintf("user=%s entrypoint=%q cmd=%q ports=%d", c.User, c.Entrypoint, c.Cmd, len(c.ExposedPorts))
		if want := `user=65532:65532 entrypoint=["/coredns-cip"] cmd=["-conf" "/etc/coredns-cip/Corefile"] ports=2`; got != want {
			t.Errorf("image config: %s, want %s", got, want)
		}
		_, udp := c.ExposedPorts["53/udp"]
		_, tcp := c.ExposedPorts["53/tcp"]
		if !udp || !tcp {
			t.Errorf("exposed %v, want 53/udp and 53/tcp", c.ExposedPorts)
		}
	})

	t.Run("filesystem", func(t *testing.T) {
		ctr := strings.TrimSpace(containers(t, "buildah", "from", image))
		defer containers(t, "buildah", "rm", ctr)
		mnt := strings.TrimSpace(containers(t, "buildah", "mount", ctr))
		defer containers(t, "buildah", "umount", ctr)
		var paths []string
		filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				paths = append(paths, strings.TrimPrefix(p, mnt))
			}
			return nil
		})
		if got, want := strings.Join(paths, " "), "/coredns-cip /etc/coredns-cip/Corefile /etc/ssl/certs/ca-certificates.crt"; got != want {
			t.Errorf("image files: %s, want %s (no shell, nothing else)", got, want)
		}
		if caps := run(t, "getcap", filepath.Join(mnt, "coredns-cip")); !strings.Contains(caps, "cap_net_bind_service=ep") {
			t.Errorf("binary's file capabilities: %q, want cap_net_bind_service=ep", caps)
		}
	})

	t.Run("run", func(t *testing.T) { runImage(t, bin, false) })
	t.Run("nftables", func(t *testing.T) { runImage(t, bin, true) })
}

// runImage starts the image in a network namespace holding a fake Criminal
// IP API and an upstream resolver (both the test binary), with the shipped
// Corefile pointed at the fake API. With nftables, as docs/packaging.md runs
// "hook nftables": root with NET_BIND_SERVICE and NET_ADMIN only, its state
// on a root-owned volume.
func runImage(t *testing.T, bin string, nftables bool) {
	ns := fmt.Sprintf("pkgtest%d%v", os.Getpid(), nftables)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", ns, "addr", "add", "127.0.0.2/8", "dev", "lo")

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	upstream := write("Corefile.upstream", ".:53 {\n bind 127.0.0.2\n hosts {\n  45.83.0.21 c2.demo.test\n }\n}\n")
	shipped, err := os.ReadFile(filepath.Join(root, "contrib/packaging/Corefile"))
	if err != nil {
		t.Fatal(err)
	}
	// The shipped Corefile, on 127.0.0.1 (the upstream has 127.0.0.2:53) and
	// pointed at the fake API.
	extra, caps, hook := []string{"--cap-add", "NET_BIND_SERVICE"}, "NET_BIND_SERVICE", ""
	if nftables {
		extra = append(extra, "--user", "0:0", "--cap-add", "NET_ADMIN", "-e", "STATE_DIRECTORY=/state", "-v", t.TempDir()+":/state")
		caps, hook = "NET_ADMIN,NET_BIND_SERVICE", "        hook nftables inet cip blocked4 blocked6 create\n"
	}
	corefile := write("Corefile", strings.NewReplacer(
		"    # bind 192.0.2.53", "    bind 127.0.0.1 #",
		"    cipvalidate {\n", "    cipvalidate {\n        api_url http://127.0.0.1:18081\n"+hook).Replace(string(shipped)))
	resolv := write("resolv.conf", "nameserver 127.0.0.2\n")
	for _, args := range [][]string{{bin, "fakeapi", "--listen", "127.0.0.1:18081"}, {bin, "-conf", upstream}} {
		c := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}

	name := ns
	// runc and cgroupfs: crun refuses hybrid cgroup hosts; the ulimits are
	// under this machine's hard limits (podman's defaults are above them).
	args := []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs", "run", "-d", "--name", name,
		"--network", "ns:/run/netns/" + ns, "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
		"--cap-drop", "ALL", "-e", "CIP_API_KEY=demo-key",
		"-v", corefile + ":/etc/coredns-cip/Corefile:ro", "-v", resolv + ":/etc/resolv.conf:ro"}
	containers(t, "podman", append(append(args, extra...), image)...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("podman", "--storage-driver", "vfs", "logs", name).CombinedOutput()
			t.Logf("container log:\n%s", out)
		}
		exec.Command("podman", "--storage-driver", "vfs", "rm", "-f", name).Run()
	})

	dig := func() string {
		out, _ := exec.Command("ip", "netns", "exec", ns, "dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", "-p", "53", "c2.demo.test", "A").Output()
		return strings.TrimSpace(string(out))
	}
	waitFor(t, "the container answers c2.demo.test on port 53", func() bool { return dig() == "45.83.0.21" })

	user := "65532"
	if nftables {
		user = "0"
	}
	top := strings.Fields(containers(t, "podman", "top", name, "user", "capeff"))
	if got, want := strings.Join(top, " "), "USER EFFECTIVE CAPS "+user+" "+caps; got != want {
		t.Errorf("container process: %q, want %q", got, want)
	}

	event := run(t, "ip", "netns", "exec", ns, "curl", "-sf", "-XPOST", "-H", "Content-Type: application/json",
		"127.0.0.1:8053/v1/events", "-d", `{"client":"127.0.0.1","type":"edr.malware"}`)
	if !strings.Contains(event, `"id":"ev-`) {
		t.Fatalf("event not taken: %s", event)
	}
	waitFor(t, "c2.demo.test sinkholed after the event", func() bool { return dig() == "0.0.0.0" })
	if nftables {
		waitFor(t, "45.83.0.21 in the kernel set", func() bool {
			out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "set", "inet", "cip", "blocked4").Output()
			return strings.Contains(string(out), "45.83.0.21")
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
