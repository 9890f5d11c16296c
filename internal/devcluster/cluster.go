package devcluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/pki"
)

const (
	// BootstrapNodes are the voters that form a new cluster (n1-n3); nodes
	// 4-9 exist only once added.
	BootstrapNodes = 3
	// MaxNode is the highest node number.
	MaxNode = 9
	// StopTimeout is how long a node gets to shut down before SIGKILL.
	StopTimeout = 20 * time.Second
	lockWait    = 120 * time.Second
)

// Config describes a state-dir cluster. FromEnv fills it the way
// scripts/cluster.sh documents.
type Config struct {
	Dir          string // state directory, absolute
	RepoRoot     string // source tree kvnode is built from
	HTTPBase     int    // node N serves HTTP on 127.0.0.1:HTTPBase+N
	PeerBase     int    // and raft on 127.0.0.1:PeerBase+N
	DebugBase    int    // when > 0, node N serves pprof on 127.0.0.1:DebugBase+N
	Timeout      time.Duration
	ClusterName  string
	InsecurePeer bool   // no peer mutual TLS (kvnode --insecure-peer)
	APIKey       string // the key to use instead of a generated one
	// TestClockOffset, when set, runs started nodes on kvnode's testclock
	// build (it reads KV_TEST_CLOCK_OFFSET from the environment itself).
	TestClockOffset string
	// Env is the environment nodes inherit (KV_* settings pass through);
	// KV_API_KEY is always removed: the key file is the only key source.
	Env []string
	// Out gets progress and results, Err diagnostics (log tails).
	Out, Err io.Writer
}

// FromEnv reads the KV_CLUSTER_* settings (see scripts/cluster.sh). The state
// directory defaults to <repoRoot>/.cluster.
func FromEnv(getenv func(string) string, repoRoot string) (Config, error) {
	c := Config{RepoRoot: repoRoot, HTTPBase: 8080, PeerBase: 9080, Timeout: 30 * time.Second,
		ClusterName: pki.DefaultClusterName, Env: os.Environ(), Out: os.Stdout, Err: os.Stderr}
	c.Dir = getenv("KV_CLUSTER_DIR")
	if c.Dir == "" {
		c.Dir = filepath.Join(repoRoot, ".cluster")
	}
	port := func(name string, into *int) error {
		v := getenv(name)
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 65525 {
			return fmt.Errorf("%s must be a port number, got %q", name, v)
		}
		*into = n
		return nil
	}
	for name, into := range map[string]*int{"KV_CLUSTER_HTTP_BASE": &c.HTTPBase,
		"KV_CLUSTER_PEER_BASE": &c.PeerBase, "KV_CLUSTER_DEBUG_BASE": &c.DebugBase} {
		if err := port(name, into); err != nil {
			return c, err
		}
	}
	if v := getenv("KV_CLUSTER_TIMEOUT"); v != "" {
		s, err := strconv.Atoi(v)
		if err != nil || s < 1 {
			return c, fmt.Errorf("KV_CLUSTER_TIMEOUT must be a whole number of seconds, got %q", v)
		}
		c.Timeout = time.Duration(s) * time.Second
	}
	if v := getenv("KV_CLUSTER_NAME"); v != "" {
		if err := pki.ValidateClusterName(v); err != nil {
			return c, fmt.Errorf("KV_CLUSTER_NAME: %w", err)
		}
		c.ClusterName = v
	}
	c.InsecurePeer = getenv("KV_INSECURE_PEER") == "true"
	c.APIKey = getenv("KV_API_KEY")
	if strings.ContainsAny(c.APIKey, "\r\n") {
		return c, errors.New("KV_API_KEY must be a single line")
	}
	c.TestClockOffset = getenv("KV_TEST_CLOCK_OFFSET")
	return c, nil
}

// Cluster is a state-dir cluster:
//
//	bin/kvnode      the binary every node runs (bin/kvnode-testclock: the testclock build)
//	api-key         the bearer key, mode 0600
//	tls             present: the HTTP API is served over HTTPS too (start --tls)
//	certs/          dev CA (ca.pem, ca-key.pem) and nN.pem / nN-key.pem
//	nN/data         node N's raft log, snapshots and store
//	nN/kvnode.log   node N's stdout and stderr, appended across runs
//	nN/pid          node N's pid while it runs
//	nN/joined       node N joins through the members instead of bootstrapping
//	nN/removed      node N was removed; start leaves it down
//	.lock           held by every command that changes the cluster
type Cluster struct {
	cfg  Config
	lock *os.File
}

// Open makes a Cluster of cfg; nothing is started or created.
func Open(cfg Config) (*Cluster, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	cfg.Dir = dir
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Err == nil {
		cfg.Err = io.Discard
	}
	return &Cluster{cfg: cfg}, nil
}

// Dir is the state directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }

func (c *Cluster) bin() string           { return filepath.Join(c.cfg.Dir, "bin", "kvnode") }
func (c *Cluster) keyFile() string       { return filepath.Join(c.cfg.Dir, "api-key") }
func (c *Cluster) certsDir() string      { return filepath.Join(c.cfg.Dir, "certs") }
func (c *Cluster) nodeDir(n int) string  { return filepath.Join(c.cfg.Dir, "n"+strconv.Itoa(n)) }
func (c *Cluster) dataDir(n int) string  { return filepath.Join(c.nodeDir(n), "data") }
func (c *Cluster) pidFile(n int) string  { return filepath.Join(c.nodeDir(n), "pid") }
func (c *Cluster) logFile(n int) string  { return filepath.Join(c.nodeDir(n), "kvnode.log") }
func (c *Cluster) httpAddr(n int) string { return "127.0.0.1:" + strconv.Itoa(c.cfg.HTTPBase+n) }
func (c *Cluster) peerAddr(n int) string { return "127.0.0.1:" + strconv.Itoa(c.cfg.PeerBase+n) }
func (c *Cluster) tlsOn() bool           { return exists(filepath.Join(c.cfg.Dir, "tls")) }

// URL is node N's HTTP base URL.
func (c *Cluster) URL(n int) string {
	if c.tlsOn() {
		return "https://" + c.httpAddr(n)
	}
	return "http://" + c.httpAddr(n)
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// Members are the node numbers that belong to the cluster: n1-n3 unless
// removed, and every added node (one with a data dir) not removed since.
func (c *Cluster) Members() []int {
	var out []int
	for n := 1; n <= MaxNode; n++ {
		if exists(filepath.Join(c.nodeDir(n), "removed")) {
			continue
		}
		if n <= BootstrapNodes || exists(c.dataDir(n)) {
			out = append(out, n)
		}
	}
	return out
}

// Pid returns node N's pid when it runs. A pid file is trusted only while
// /proc/PID/cmdline is this directory's kvnode started with node N's data
// dir, so a stale file or a recycled pid is never signalled; a zombie has an
// empty cmdline and does not count.
func (c *Cluster) Pid(n int) (int, bool) {
	b, err := os.ReadFile(c.pidFile(n))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0, false
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if argv[0] != c.bin() && argv[0] != c.bin()+"-testclock" {
		return 0, false
	}
	for i := 1; i+1 < len(argv); i++ {
		if argv[i] == "--data-dir" && argv[i+1] == c.dataDir(n) {
			return pid, true
		}
	}
	return 0, false
}

// paused reports whether pid is stopped (state T or t in /proc/PID/stat).
func paused(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && (state == 'T' || state == 't')
}

// procStat reads a process's state letter and start time (clock ticks
// after boot) from /proc/PID/stat.
func procStat(pid int) (state byte, start string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return 0, "", false
	}
	// After the name: state (field 3), ..., starttime (field 22).
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, "", false
	}
	return f[0][0], f[19], true
}

// proc names one process: its pid and its start time, which tells it from
// a later process given the same pid.
type proc struct {
	pid   int
	start string
}

// procOf names the running process pid; false if there is none.
func procOf(pid int) (proc, bool) {
	state, start, ok := procStat(pid)
	if !ok || state == 'Z' || state == 'X' {
		return proc{}, false
	}
	return proc{pid, start}, true
}

// gone reports whether the process has exited: /proc no longer lists it,
// it is a zombie (its files, listeners included, are closed by then), or
// its pid now names another process.
func (p proc) gone() bool {
	state, start, ok := procStat(p.pid)
	return !ok || state == 'Z' || state == 'X' || start != p.start
}

// Lock takes the state directory's lock, waiting up to two minutes for
// another invocation to finish. Unlock releases it.
func (c *Cluster) Lock() error {
	if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(c.cfg.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			c.lock = f
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return fmt.Errorf("another command holds %s (waited %s): %v", f.Name(), lockWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Unlock releases the lock taken by Lock.
func (c *Cluster) Unlock() {
	if c.lock != nil {
		c.lock.Close() // closing the descriptor drops the flock
		c.lock = nil
	}
}

// APIKey reads the key the nodes use.
func (c *Cluster) APIKey() (string, error) {
	b, err := os.ReadFile(c.keyFile())
	key, _, _ := strings.Cut(string(b), "\n")
	if err != nil || key == "" {
		return "", fmt.Errorf("no API key at %s (has the cluster been started?)", c.keyFile())
	}
	return key, nil
}

// ensureAPIKey makes the key file hold the key the nodes will read at
// startup: Config.APIKey when set (refused while running nodes use another),
// else the existing key, else 32 random bytes in hex. The file is mode 0600.
func (c *Cluster) ensureAPIKey() error {
	if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
		return err
	}
	old, _ := c.APIKey()
	want := c.cfg.APIKey
	switch {
	case want != "" && want != old:
		for _, n := range c.Members() {
			if _, ok := c.Pid(n); ok {
				return fmt.Errorf("KV_API_KEY differs from the key running nodes use (%s); stop the cluster first", c.keyFile())
			}
		}
	case old != "":
		return os.Chmod(c.keyFile(), 0o600)
	default:
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		want = hex.EncodeToString(b)
	}
	tmp := fmt.Sprintf("%s.tmp.%d", c.keyFile(), os.Getpid())
	if err := os.WriteFile(tmp, []byte(want+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.keyFile())
}

// ensureCerts generates the development CA once and a certificate for each
// listed node that has none yet, signed by that CA.
func (c *Cluster) ensureCerts(nodes ...int) error {
	var missing []string
	for _, n := range nodes {
		if id := "n" + strconv.Itoa(n); !exists(filepath.Join(c.certsDir(), id+".pem")) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	const validFor = 365 * 24 * time.Hour
	var err error
	if exists(filepath.Join(c.certsDir(), "ca.pem")) {
		err = pki.AddNodes(c.certsDir(), c.cfg.ClusterName, missing, nil, validFor)
	} else {
		err = pki.WriteDevSet(c.certsDir(), c.cfg.ClusterName, missing, nil, validFor)
	}
	if err != nil {
		return fmt.Errorf("could not generate certificates in %s: %w", c.certsDir(), err)
	}
	return nil
}

// PeerTLSArgs are kvnode's peer mutual TLS flags for node id with the
// certificates in dir, named as pki.WriteDevSet names them.
func PeerTLSArgs(dir, id string) []string {
	return []string{"--peer-ca", filepath.Join(dir, "ca.pem"),
		"--peer-cert", filepath.Join(dir, id+".pem"), "--peer-key", filepath.Join(dir, id+"-key.pem")}
}

// portFree fails when 127.0.0.1:port cannot be bound for PortWait: a node
// that was just stopped may still be releasing its sockets. The error lists
// the TCP states of the sockets on the port, from /proc/net/tcp.
func portFree(n, port int) error {
	deadline := time.Now().Add(PortWait)
	for {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			return l.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("n%d cannot start: 127.0.0.1:%d is already in use by another process (sockets on it: %s; ss -tlnp names a listener's process)",
				n, port, portStates(port))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PortWait is how long portFree waits for a port to come free.
var PortWait = 3 * time.Second

// tcpStates names /proc/net/tcp's state codes.
var tcpStates = map[string]string{"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
	"05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}

// portStates counts, by TCP state, the sockets whose local port is port.
func portStates(port int) string {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	suffix := fmt.Sprintf(":%04X", port)
	counts := map[string]int{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], suffix) {
			name := tcpStates[f[3]]
			if name == "" {
				name = f[3]
			}
			counts[name]++
		}
	}
	if len(counts) == 0 {
		return "none in /proc/net/tcp"
	}
	var parts []string
	for name, k := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", k, name))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// envWithout returns env minus the named variables.
func envWithout(env []string, names ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, name)
	})
}
