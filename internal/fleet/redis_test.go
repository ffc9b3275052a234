package fleet

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// redisServer is a private redis-server for one test. It listens on a
// unix socket in a temporary directory and on no TCP port, or, for the
// tests that need several servers (Cluster, Sentinel), on a free port of
// 127.0.0.1.
type redisServer struct {
	t       *testing.T
	dir     string
	network string // "unix" or "tcp"
	addr    string // the socket's path, or 127.0.0.1:port
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startRedis starts a redis-server on a unix socket, stopped at the end
// of the test. It skips the test if redis-server is not installed.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	s := newRedisServer(t)
	s.network, s.addr = "unix", filepath.Join(s.dir, "redis.sock")
	s.args = []string{"--port", "0", "--unixsocket", s.addr, "--unixsocketperm", "700"}
	s.start()
	return s
}

// startRedisTCP starts a redis-server on a free port of 127.0.0.1, with
// the configuration file conf (written with the port's number in place
// of PORT) if not empty, and the extra arguments.
func startRedisTCP(t *testing.T, conf string, extra ...string) *redisServer {
	t.Helper()
	s := newRedisServer(t)
	port := freePort(t)
	s.network, s.addr = "tcp", net.JoinHostPort("127.0.0.1", port)
	if conf != "" {
		file := filepath.Join(s.dir, "redis.conf")
		if err := os.WriteFile(file, []byte(strings.ReplaceAll(conf, "PORT", port)), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = append(s.args, file)
	}
	s.args = append(s.args, "--port", port, "--bind", "127.0.0.1")
	s.args = append(s.args, extra...)
	s.start()
	return s
}

func newRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server): skipping the tests against a real Redis")
	}
	// Not t.TempDir: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "fleet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &redisServer{t: t, dir: dir}
	t.Cleanup(s.kill)
	return s
}

// freePort returns a port of 127.0.0.1 that is free, and whose cluster
// bus port (+10000) is free too.
func freePort(t *testing.T) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		bus.Close()
		return strconv.Itoa(port)
	}
	t.Fatal("no free port pair")
	return ""
}

// url is the server's Config.URL.
func (s *redisServer) url() string {
	if s.network == "unix" {
		return "unix://" + s.addr
	}
	return "redis://" + s.addr
}

// start runs redis-server and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	args := append(slices.Clone(s.args),
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func(cmd *exec.Cmd) {
		_ = cmd.Wait()
		close(exited)
	}(s.cmd)
	deadline := time.Now().Add(10 * time.Second)
	for !s.pong() {
		select {
		case <-exited:
			s.t.Fatalf("redis-server exited at startup:\n%s", s.log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server does not answer PING:\n%s", s.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop shuts redis-server down with SIGTERM and waits for it to exit.
func (s *redisServer) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("stopping redis-server: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("redis-server did not exit on SIGTERM:\n%s", s.log())
	}
}

// kill ends redis-server, if it runs, at the end of the test.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// pong reports whether the server answers PING on its socket.
func (s *redisServer) pong() bool {
	c, err := net.DialTimeout(s.network, s.addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// log returns the server's log, for failure messages.
func (s *redisServer) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

// open opens a Fleet on s as node, closed at the end of the test. The
// timeout is generous: these tests are about behaviour, and a slow
// machine must not open the circuit.
func (s *redisServer) open(node string) *Fleet {
	s.t.Helper()
	f, err := Open(Config{URL: s.url(), Node: node, Timeout: time.Second, Logf: s.t.Logf})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { f.Close() })
	if !f.Up() {
		s.t.Fatalf("%s: not up after Open", node)
	}
	return f
}

// eventually polls cond every 10ms until it holds, failing the test with
// what after the deadline.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noLeaks fails the test if more goroutines than before still run a few
// seconds after the Fleets were closed. go-redis's dial retry loop sleeps
// a second between attempts, so it takes up to that to notice a Close.
func noLeaks(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
