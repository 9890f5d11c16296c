package devcluster

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcSupervisesThroughAWrapper(t *testing.T) {
	var out bytes.Buffer
	p := &Proc{Name: "sleeper"}
	// env is a wrapper that execs its argument, as ip netns exec does.
	spec := Spec{Path: "sleep", Args: []string{"30"}, Wrapper: []string{"env"}, Output: &out, Label: "test", DieWithParent: true}
	if err := p.Start(spec); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(spec); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start: %v, want already running", err)
	}
	if err := p.Pause(); err != nil || !p.Paused() {
		t.Fatalf("Pause: %v, paused %v", err, p.Paused())
	}
	// Stop resumes the paused process first, then SIGTERM ends it: unclean.
	if err := p.Stop(5 * time.Second); err == nil || !strings.Contains(err.Error(), "uncleanly") {
		t.Fatalf("Stop of a process that dies of SIGTERM: %v, want an unclean-exit error", err)
	}
	if p.Running() || p.LastExitKilled() {
		t.Fatalf("after Stop: running %v, killed %v", p.Running(), p.LastExitKilled())
	}
	if err := p.Start(spec); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(5 * time.Second); err != nil || !p.LastExitKilled() {
		t.Fatalf("Kill: %v, LastExitKilled %v", err, p.LastExitKilled())
	}
	if p.Starts() != 2 || len(p.Exits()) != 2 {
		t.Fatalf("starts %d, exits %v", p.Starts(), p.Exits())
	}
	if err := p.Resume(); err == nil {
		t.Fatal("Resume of a stopped slot succeeded")
	}
	if !strings.Contains(out.String(), "=== test: start sleeper") || !strings.Contains(out.String(), "exited at") {
		t.Fatalf("no start/exit markers in the output: %q", out.String())
	}
}

func testCluster(t *testing.T) *Cluster {
	t.Helper()
	env := map[string]string{"KV_CLUSTER_DIR": t.TempDir()}
	cfg, err := FromEnv(func(k string) string { return env[k] }, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFromEnvRejectsBadSettings(t *testing.T) {
	for name, val := range map[string]string{"KV_CLUSTER_HTTP_BASE": "80x", "KV_CLUSTER_DEBUG_BASE": "-1",
		"KV_CLUSTER_TIMEOUT": "0", "KV_CLUSTER_NAME": "bad name/", "KV_API_KEY": "two\nlines"} {
		_, err := FromEnv(func(k string) string {
			if k == name {
				return val
			}
			return ""
		}, "/r")
		if err == nil || !strings.Contains(err.Error(), strings.TrimSuffix(name, "_BASE")[:6]) {
			t.Errorf("%s=%q: error %v", name, val, err)
		}
	}
	cfg, err := FromEnv(func(string) string { return "" }, "/r")
	if err != nil || cfg.Dir != "/r/.cluster" || cfg.HTTPBase != 8080 || cfg.PeerBase != 9080 || cfg.ClusterName != "quorumkv" {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

// A pid file is trusted only for this directory's kvnode with this node's
// data dir: a live process that is something else (a recycled pid) is not.
func TestPidIgnoresStaleAndForeignProcesses(t *testing.T) {
	c := testCluster(t)
	if err := os.MkdirAll(c.nodeDir(1), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"", "garbage", "999999999", strconv.Itoa(os.Getpid())} {
		os.WriteFile(c.pidFile(1), []byte(content), 0o644)
		if pid, ok := c.Pid(1); ok {
			t.Fatalf("pid file %q: trusted as pid %d", content, pid)
		}
	}
	// A process started as this directory's kvnode for node 1 is trusted,
	// and only for node 1.
	bin := c.bin()
	os.MkdirAll(filepath.Dir(bin), 0o755)
	// A copy of bash stands in for kvnode: its argv is the binary's path
	// and the flags, as a real node's is.
	shell, err := os.ReadFile("/bin/bash")
	if err != nil {
		t.Skip("no /bin/bash to stand in for kvnode")
	}
	if err := os.WriteFile(bin, shell, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Name: "fake kvnode"}
	if err := p.Start(Spec{Path: bin, Args: []string{"-c", "while :; do sleep 0.2; done", "--data-dir", c.dataDir(1)}, DieWithParent: true}); err != nil {
		t.Fatal(err)
	}
	defer p.Kill(5 * time.Second)
	os.WriteFile(c.pidFile(1), []byte(strconv.Itoa(p.Pid())+"\n"), 0o644)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if pid, ok := c.Pid(1); ok && pid == p.Pid() {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/cmdline")
			t.Fatalf("our node's process not recognised; cmdline %q, exits %v", b, p.Exits())
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.MkdirAll(c.nodeDir(2), 0o755)
	os.WriteFile(c.pidFile(2), []byte(strconv.Itoa(p.Pid())+"\n"), 0o644)
	if _, ok := c.Pid(2); ok {
		t.Fatal("node 1's process trusted as node 2")
	}
}

func TestAPIKeyFile(t *testing.T) {
	c := testCluster(t)
	if err := c.ensureAPIKey(); err != nil {
		t.Fatal(err)
	}
	key, err := c.APIKey()
	if err != nil || len(key) != 64 {
		t.Fatalf("generated key %q, %v", key, err)
	}
	fi, _ := os.Stat(c.keyFile())
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := c.ensureAPIKey(); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.APIKey(); again != key {
		t.Fatal("a second start generated another key")
	}
	c.cfg.APIKey = "chosen"
	if err := c.ensureAPIKey(); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.APIKey(); got != "chosen" {
		t.Fatalf("KV_API_KEY not written: %q", got)
	}
}

func TestLockExcludesASecondCommand(t *testing.T) {
	c := testCluster(t)
	if err := c.Lock(); err != nil {
		t.Fatal(err)
	}
	other, _ := Open(c.cfg)
	got := make(chan error, 1)
	go func() { got <- other.Lock() }()
	select {
	case err := <-got:
		t.Fatalf("second Lock returned %v while the first is held", err)
	case <-time.After(300 * time.Millisecond):
	}
	c.Unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	other.Unlock()
}

func TestPortInUseIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	defer func(w time.Duration) { PortWait = w }(PortWait)
	PortWait = 100 * time.Millisecond
	err = portFree(2, port)
	if err == nil || !strings.Contains(err.Error(), "n2 cannot start: 127.0.0.1:"+strconv.Itoa(port)+" is already in use") ||
		!strings.Contains(err.Error(), "1 LISTEN") {
		t.Fatalf("portFree on a bound port: %v", err)
	}
	l.Close()
	if err := portFree(2, port); err != nil {
		t.Fatalf("portFree after the listener closed: %v", err)
	}

	// A port released while portFree waits (a stopped node's sockets going
	// away) counts as free.
	if l, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Skipf("port %d was taken meanwhile: %v", port, err)
	}
	PortWait = 10 * time.Second
	go func() {
		time.Sleep(200 * time.Millisecond)
		l.Close()
	}()
	if err := portFree(2, port); err != nil {
		t.Fatalf("portFree while the listener closes: %v", err)
	}
}

// A process counts as gone only once it has really exited (no /proc entry,
// or a zombie, whose files are closed) or its pid names another process;
// a stopped or running one is not gone, whatever its cmdline reads.
func TestProcGone(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	p, ok := procOf(cmd.Process.Pid)
	if !ok || p.gone() {
		t.Fatalf("procOf(running sleep) = %+v, %v; gone %v", p, ok, p.gone())
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if p.gone() {
		t.Fatal("a stopped process counts as gone")
	}
	other := p
	other.start += "0"
	if !other.gone() {
		t.Fatal("a pid whose start time changed (reused) does not count as gone")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not waited for yet: a zombie until Wait reaps it.
	deadline := time.Now().Add(10 * time.Second)
	for !p.gone() {
		if time.Now().After(deadline) {
			t.Fatal("a killed, unreaped process never counted as gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if state, _, ok := procStat(p.pid); !ok || state != 'Z' {
		t.Fatalf("killed, unreaped child: state %q, listed %v; want a zombie", state, ok)
	}
	if _, ok := procOf(p.pid); ok {
		t.Fatal("procOf names a zombie as running")
	}
	cmd.Wait()
	if !p.gone() {
		t.Fatal("a reaped process does not count as gone")
	}
}
