package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/pki"
)

// node is one kvnode process slot: a host, a data dir, a log file and, while
// running, a process. Restarts keep the data dir and append to the same log.
type node struct {
	id      string
	host    *host
	bin     string
	apiKey  string
	dataDir string
	logPath string
	peers   string   // --peers, used to bootstrap an empty data dir
	join    string   // --join URLs; when set, replaces --peers (see wipe)
	extra   []string // extra flags, e.g. --test-clock-offset
	certs   string   // directory with ca.pem and <id>.pem/<id>-key.pem: peer mutual TLS

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	state   *os.ProcessState
	paused  bool
	starts  int
	exits   []string // how each process ended, e.g. "signal: killed"
	logFile *os.File
}

func (n *node) httpBase() string { return fmt.Sprintf("http://%s:%d", n.host.ip, httpPort) }
func (n *node) peerAddr() string { return fmt.Sprintf("%s:%d", n.host.ip, peerPort) }

// start launches kvnode inside the node's namespace. ip netns exec execs the
// binary, so the child's pid is kvnode's and signals reach it directly.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s is already running", n.id)
	}
	if n.logFile == nil {
		f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		n.logFile = f
	}
	args := []string{"netns", "exec", n.host.ns, n.bin,
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
		// Peer mutual TLS, as every kvnode runs by default (certificates
		// generated per run by newNodes).
		"--peer-ca", filepath.Join(n.certs, "ca.pem"),
		"--peer-cert", filepath.Join(n.certs, n.id+".pem"),
		"--peer-key", filepath.Join(n.certs, n.id+"-key.pem"),
	}
	// A node given --join never bootstraps an empty data dir: it waits to be
	// added by the cluster. Once it has raft state both flags are ignored.
	if n.join != "" {
		args = append(args, "--join", n.join)
	} else {
		args = append(args, "--peers", n.peers)
	}
	args = append(args, n.extra...)
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), "KV_API_KEY="+n.apiKey)
	fmt.Fprintf(n.logFile, "=== chaos: start %s at %s: %s\n", n.id, time.Now().Format(time.RFC3339Nano), strings.Join(args[3:], " "))
	cmd.Stdout, cmd.Stderr = n.logFile, n.logFile
	// If the test process dies, its nodes die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.id, err)
	}
	n.cmd, n.done, n.paused = cmd, make(chan struct{}), false
	n.starts++
	done := n.done
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.state = cmd.ProcessState
		how := "exit 0"
		if err != nil {
			how = err.Error()
		}
		n.exits = append(n.exits, how)
		fmt.Fprintf(n.logFile, "=== chaos: %s exited at %s: %s\n", n.id, time.Now().Format(time.RFC3339Nano), how)
		n.cmd = nil
		n.mu.Unlock()
		close(done)
	}()
	return nil
}

// running reports whether a process is up (possibly paused).
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

func (n *node) signal(sig syscall.Signal) (chan struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil, fmt.Errorf("%s is not running", n.id)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return nil, err
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.done, nil
}

// kill sends SIGKILL and waits for the process to exit.
func (n *node) kill() error {
	done, err := n.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not exit 10s after SIGKILL", n.id)
	}
}

// stop sends SIGTERM (resuming a paused process first) and waits up to
// timeout, then kills. It reports an unclean exit.
func (n *node) stop(timeout time.Duration) error {
	n.mu.Lock()
	paused := n.paused
	n.mu.Unlock()
	if paused {
		n.signal(syscall.SIGCONT)
	}
	done, err := n.signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(timeout):
		n.kill()
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", n.id, timeout)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != nil && !n.state.Success() {
		return fmt.Errorf("%s stopped uncleanly: %s", n.id, n.state)
	}
	return nil
}

// wipe deletes the stopped node's data dir; its next start joins the cluster
// through joinURLs instead of bootstrapping.
func (n *node) wipe(joinURLs []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
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
func (n *node) pause() error { _, err := n.signal(syscall.SIGSTOP); return err }

func (n *node) resume() error { _, err := n.signal(syscall.SIGCONT); return err }

// lastExitKilled reports whether the last process ended by SIGKILL.
func (n *node) lastExitKilled() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == nil {
		return false
	}
	ws, ok := n.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

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
