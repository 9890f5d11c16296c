package chaos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/internal/devcluster"
	"github.com/quorumkv/quorumkv/pki"
	"github.com/quorumkv/quorumkv/test/faultfs"
)

// node is one kvnode process slot: a host, a data dir, a log file and, while
// running, a process (supervised by devcluster.Proc). Restarts keep the data
// dir and append to the same log.
type node struct {
	id      string
	host    *host
	bin     string
	apiKey  string
	dataDir string
	logPath string
	peers   string   // --peers, used to bootstrap an empty data dir
	extra   []string // extra flags, e.g. --test-clock-offset
	certs   string   // directory with ca.pem and <id>.pem/<id>-key.pem: peer mutual TLS
	proc    devcluster.Proc
	disk    *faultfs.FS // the data dir's mount in disk scenarios (disk.go), else nil

	mu      sync.Mutex
	join    string // --join URLs; when set, replaces --peers (see wipe)
	logFile *os.File
}

func (n *node) httpBase() string { return fmt.Sprintf("http://%s:%d", n.host.ip, httpPort) }
func (n *node) peerAddr() string { return fmt.Sprintf("%s:%d", n.host.ip, peerPort) }

// start launches kvnode inside the node's namespace. ip netns exec execs the
// binary, so the child's pid is kvnode's and signals reach it directly.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logFile == nil {
		f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		n.logFile = f
	}
	args := []string{
		"--id", n.id,
		"--http-addr", fmt.Sprintf("%s:%d", n.host.ip, httpPort),
		"--peer-addr", n.peerAddr(),
		"--data-dir", n.dataDir,
		"--request-timeout", "1s",
		"--shutdown-timeout", "10s",
		// Small enough that snapshots are taken (and installed on a node that
		// was down) within a scenario.
		"--snapshot-threshold", "1024",
		"--max-clock-offset", maxClockOffset.String(),
		"--log-format", "json",
	}
	// Peer mutual TLS, as every kvnode runs by default (certificates
	// generated per run by newNodes).
	args = append(args, devcluster.PeerTLSArgs(n.certs, n.id)...)
	// A node given --join never bootstraps an empty data dir: it waits to be
	// added by the cluster. Once it has raft state both flags are ignored.
	if n.join != "" {
		args = append(args, "--join", n.join)
	} else {
		args = append(args, "--peers", n.peers)
	}
	args = append(args, n.extra...)
	return n.proc.Start(devcluster.Spec{
		Path:    n.bin,
		Args:    args,
		Wrapper: []string{"ip", "netns", "exec", n.host.ns},
		Env:     append(os.Environ(), "KV_API_KEY="+n.apiKey),
		Output:  n.logFile,
		Label:   "chaos",
		// If the test process dies, its nodes die with it.
		DieWithParent: true,
	})
}

// running reports whether a process is up (possibly paused).
func (n *node) running() bool { return n.proc.Running() }

// kill sends SIGKILL and waits for the process to exit.
func (n *node) kill() error { return n.proc.Kill(10 * time.Second) }

// stop sends SIGTERM (resuming a paused process first) and waits up to
// timeout, then kills. It reports an unclean exit.
func (n *node) stop(timeout time.Duration) error { return n.proc.Stop(timeout) }

// wipe deletes the stopped node's data dir; its next start joins the cluster
// through joinURLs instead of bootstrapping.
func (n *node) wipe(joinURLs []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc.Running() {
		return fmt.Errorf("%s is running; stop it before wiping its data", n.id)
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		return err
	}
	n.join = strings.Join(joinURLs, ",")
	fmt.Fprintf(n.logFile, "=== chaos: wiped %s's data dir at %s; next start joins via %s\n", n.id, time.Now().Format(time.RFC3339Nano), n.join)
	return nil
}

// pause and resume send SIGSTOP and SIGCONT.
func (n *node) pause() error { return n.proc.Pause() }

func (n *node) resume() error { return n.proc.Resume() }

// lastExitKilled reports whether the last process ended by SIGKILL.
func (n *node) lastExitKilled() bool { return n.proc.LastExitKilled() }

// closeLog is called once the node will not be started again.
func (n *node) closeLog() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logFile != nil {
		n.logFile.Close()
		n.logFile = nil
	}
}

// newNodes prepares one node slot per host; nothing is started.
func newNodes(hosts []*host, dir, bin, apiKey string, extra map[string][]string) ([]*node, error) {
	var peers, ids, ips []string
	for _, h := range hosts {
		peers = append(peers, fmt.Sprintf("%s=%s:%d", h.name, h.ip, peerPort))
		ids, ips = append(ids, h.name), append(ips, h.ip)
	}
	certs := filepath.Join(dir, "certs")
	if len(hosts) > 0 {
		if err := pki.WriteDevSet(certs, pki.DefaultClusterName, ids, ips, 24*time.Hour); err != nil {
			return nil, fmt.Errorf("peer certificates: %w", err)
		}
	}
	var nodes []*node
	for _, h := range hosts {
		n := &node{
			id:      h.name,
			host:    h,
			bin:     bin,
			apiKey:  apiKey,
			dataDir: filepath.Join(dir, h.name, "data"),
			logPath: filepath.Join(dir, h.name+".log"),
			peers:   strings.Join(peers, ","),
			extra:   extra[h.name],
			certs:   certs,
			proc:    devcluster.Proc{Name: h.name},
		}
		if err := os.MkdirAll(filepath.Dir(n.dataDir), 0o755); err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, errors.New("no hosts")
	}
	return nodes, nil
}
