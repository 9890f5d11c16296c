package chaos

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Every object this suite creates in the kernel carries the prefix "qkc" and a
// 4-hex-digit run id: namespaces "qkc-<run>-n<i>", links "qkc<run>...", the
// root-namespace iptables rule commented "qkc-chaos-<run>". The owner's pid is
// kept in stateDir/<run>.pid, so leftovers of crashed runs can be removed at
// start without touching a concurrent live run.
const (
	stateDir   = "/run/qkc-chaos"
	subnetBase = "10.213" // private; hosts live in 10.213.<x>.0/24, x chosen per run
	peerPort   = 9080
	httpPort   = 8080
)

// network is one run's bridge and its node hosts.
type network struct {
	run    string
	bridge string
	subnet string // "10.213.<x>"
	hostIP string // the bridge's (client side) address
	hosts  []*host
	rule   []string // the FORWARD rule, as iptables arguments after -I/-D
}

// host is one node's network namespace.
type host struct {
	name string // n1, n2, ...
	ns   string
	veth string // the namespace side
	ip   string
}

var runIDPattern = regexp.MustCompile(`^qkc-?([0-9a-f]{4})`)

// run executes a command and returns its combined output, with the command in the error.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// requireRoot fails (never skips) the test when it cannot create namespaces.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("test/chaos needs root: it creates network namespaces, veth pairs, a bridge and iptables rules. " +
			"Run as root (CI does), or skip the package with -short.")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("test/chaos needs %s on PATH (scripts/test.sh installs iproute2 and iptables): %v", tool, err)
		}
	}
}

// withLock runs f holding an exclusive lock on stateDir, so concurrent runs do
// not pick the same subnet or clean each other up.
func withLock(f func() error) error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	return f()
}

// ownerAlive reports whether the process that created run is still running.
func ownerAlive(run string) bool {
	b, err := os.ReadFile(filepath.Join(stateDir, run+".pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	return syscall.Kill(pid, 0) == nil
}

// cleanStale removes namespaces (and their processes), links and iptables rules
// left by earlier runs whose owner process is gone. Call with the lock held.
func cleanStale(logf func(string, ...any)) {
	dead := map[string]bool{}
	isDead := func(run string) bool {
		if v, ok := dead[run]; ok {
			return v
		}
		dead[run] = !ownerAlive(run)
		return dead[run]
	}
	if out, err := run("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			m := runIDPattern.FindStringSubmatch(f[0])
			if m == nil || !isDead(m[1]) {
				continue
			}
			killNamespace(f[0])
			run("ip", "netns", "del", f[0])
			logf("removed stale namespace %s", f[0])
		}
	}
	if out, err := run("ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			m := runIDPattern.FindStringSubmatch(name)
			if m == nil || !isDead(m[1]) {
				continue
			}
			run("ip", "link", "del", name)
			logf("removed stale link %s", name)
		}
	}
	if out, err := run("iptables", "-S", "FORWARD"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			i := strings.Index(line, "qkc-chaos-")
			if !strings.HasPrefix(line, "-A FORWARD") || i < 0 || len(line) < i+14 {
				continue
			}
			if !isDead(line[i+10 : i+14]) {
				continue
			}
			args := append([]string{"-D"}, strings.Fields(strings.TrimPrefix(line, "-A "))...)
			for j := range args {
				args[j] = strings.Trim(args[j], `"`)
			}
			if _, err := run("iptables", args...); err == nil {
				logf("removed stale iptables rule %q", line)
			}
		}
	}
	for run := range dead {
		if dead[run] {
			os.Remove(filepath.Join(stateDir, run+".pid"))
		}
	}
}

// killNamespace SIGKILLs every process inside network namespace ns.
func killNamespace(ns string) {
	out, err := run("ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// newNetwork creates a bridge and n namespaces with one veth each, and
// registers their removal with t.Cleanup.
func newNetwork(t testing.TB, n int) *network {
	t.Helper()
	requireRoot(t)
	var b [2]byte
	rand.Read(b[:])
	nw := &network{run: hex.EncodeToString(b[:])}
	nw.bridge = "qkc" + nw.run + "br"
	err := withLock(func() error {
		cleanStale(t.Logf)
		if err := os.WriteFile(filepath.Join(stateDir, nw.run+".pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return err
		}
		out, err := run("ip", "-4", "addr")
		if err != nil {
			return err
		}
		for x := 1 + int(b[0])%200; ; x++ {
			if x > 250 {
				return fmt.Errorf("no free %s.x.0/24 subnet", subnetBase)
			}
			cand := fmt.Sprintf("%s.%d", subnetBase, x)
			if !strings.Contains(out, cand+".") {
				nw.subnet = cand
				break
			}
		}
		nw.hostIP = nw.subnet + ".1"
		// Claim the subnet before releasing the lock.
		for _, c := range [][]string{
			{"ip", "link", "add", nw.bridge, "type", "bridge"},
			{"ip", "addr", "add", nw.hostIP + "/24", "dev", nw.bridge},
			{"ip", "link", "set", nw.bridge, "up"},
		} {
			if _, err := run(c[0], c[1:]...); err != nil {
				return err
			}
		}
		return nil
	})
	t.Cleanup(nw.close)
	if err != nil {
		t.Fatalf("network setup: %v", err)
	}
	// With br_netfilter loaded, bridged frames traverse the root namespace's
	// FORWARD chain, whose policy Docker sets to DROP: let our bridge through.
	nw.rule = []string{"FORWARD", "-i", nw.bridge, "-o", nw.bridge, "-m", "comment", "--comment", "qkc-chaos-" + nw.run, "-j", "ACCEPT"}
	if _, err := run("iptables", append([]string{"-I"}, nw.rule...)...); err != nil {
		t.Fatalf("network setup: %v", err)
	}
	for i := 1; i <= n; i++ {
		h := &host{
			name: fmt.Sprintf("n%d", i),
			ns:   fmt.Sprintf("qkc-%s-n%d", nw.run, i),
			veth: fmt.Sprintf("qkc%sn%dc", nw.run, i),
			ip:   fmt.Sprintf("%s.%d", nw.subnet, 10+i),
		}
		outer := fmt.Sprintf("qkc%sn%dh", nw.run, i)
		nw.hosts = append(nw.hosts, h)
		for _, c := range [][]string{
			{"ip", "netns", "add", h.ns},
			{"ip", "link", "add", outer, "type", "veth", "peer", "name", h.veth},
			{"ip", "link", "set", h.veth, "netns", h.ns},
			{"ip", "link", "set", outer, "master", nw.bridge, "up"},
			{"ip", "netns", "exec", h.ns, "ip", "addr", "add", h.ip + "/24", "dev", h.veth},
			{"ip", "netns", "exec", h.ns, "ip", "link", "set", h.veth, "up"},
			{"ip", "netns", "exec", h.ns, "ip", "link", "set", "lo", "up"},
		} {
			if _, err := run(c[0], c[1:]...); err != nil {
				t.Fatalf("network setup: %v", err)
			}
		}
	}
	return nw
}

// close removes everything newNetwork created. Idempotent.
func (nw *network) close() {
	for _, h := range nw.hosts {
		killNamespace(h.ns)
		run("ip", "netns", "del", h.ns)
		run("ip", "link", "del", fmt.Sprintf("qkc%sn%sh", nw.run, strings.TrimPrefix(h.name, "n")))
	}
	run("ip", "link", "del", nw.bridge)
	if nw.rule != nil {
		run("iptables", append([]string{"-D"}, nw.rule...)...)
	}
	os.Remove(filepath.Join(stateDir, nw.run+".pid"))
}

// nsIptables runs iptables inside h's namespace.
func (h *host) iptables(args ...string) error {
	_, err := run("ip", append([]string{"netns", "exec", h.ns, "iptables"}, args...)...)
	return err
}

// dropFrom makes h drop peer-port traffic arriving from each of peers (both the
// connections they open to h and their answers on connections h opened). Client
// traffic, which comes from the bridge address, is untouched.
func (h *host) dropFrom(peers ...*host) error {
	for _, p := range peers {
		for _, port := range []string{"--dport", "--sport"} {
			if err := h.iptables("-A", "INPUT", "-p", "tcp", "-s", p.ip, port, strconv.Itoa(peerPort), "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	return nil
}

// heal removes every rule h's namespace holds.
func (h *host) heal() error { return h.iptables("-F", "INPUT") }

// partition cuts every link between a node in side a and a node in side b, both ways.
func partition(a, b []*host) error {
	for _, x := range a {
		if err := x.dropFrom(b...); err != nil {
			return err
		}
	}
	for _, y := range b {
		if err := y.dropFrom(a...); err != nil {
			return err
		}
	}
	return nil
}

// healAll removes every partition rule.
func (nw *network) healAll() error {
	var first error
	for _, h := range nw.hosts {
		if err := h.heal(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
