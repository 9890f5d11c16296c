package devcluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// goTool finds the go command: on PATH, else where the official tarball puts it.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if exists("/usr/local/go/bin/go") {
		return "/usr/local/go/bin/go", nil
	}
	return "", errors.New("go is not on PATH and not at /usr/local/go/bin/go")
}

// build compiles kvnode (with the given build tags) to out; go build
// relinks only when out is stale. Callers hold the cluster lock. go build
// removes the old file before writing the new one, so running nodes keep
// their (unlinked) binary instead of failing with ETXTBSY.
func (c *Cluster) build(out string, tags ...string) error {
	gobin, err := goTool()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command(gobin, append(args, "./cmd/kvnode")...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = c.cfg.RepoRoot, c.cfg.Err, c.cfg.Err
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s ./cmd/kvnode failed in %s: %v", strings.Join(args, " "), c.cfg.RepoRoot, err)
	}
	return nil
}

func (c *Cluster) buildNode() error {
	fmt.Fprintf(c.cfg.Out, "building kvnode (%s)\n", runtime.Version())
	return c.build(c.bin())
}

func (c *Cluster) ensureBuilt() error {
	if exists(c.bin()) {
		return nil
	}
	return c.buildNode()
}

// logTail prints the last 40 lines of node n's log to Err.
func (c *Cluster) logTail(n int) {
	fmt.Fprintf(c.cfg.Err, "----- n%d: last 40 lines of %s -----\n", n, c.logFile(n))
	f, err := os.Open(c.logFile(n))
	if err != nil {
		fmt.Fprintln(c.cfg.Err, "(no log)")
		return
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for s.Scan() {
		if lines = append(lines, s.Text()); len(lines) > 40 {
			lines = lines[1:]
		}
	}
	for _, l := range lines {
		fmt.Fprintln(c.cfg.Err, l)
	}
}

// startNode launches node n detached (its own session, output appended to
// its log) and records its pid.
func (c *Cluster) startNode(n int) error {
	for _, port := range []int{c.cfg.HTTPBase + n, c.cfg.PeerBase + n} {
		if err := portFree(n, port); err != nil {
			return err
		}
	}
	dir := c.nodeDir(n)
	if err := os.MkdirAll(c.dataDir(n), 0o755); err != nil {
		return err
	}
	os.Remove(c.pidFile(n))
	id := "n" + strconv.Itoa(n)
	args := []string{"--id", id, "--http-addr", c.httpAddr(n), "--peer-addr", c.peerAddr(n),
		"--data-dir", c.dataDir(n), "--api-key-file", c.keyFile()}
	// Bootstrap voters get the peer list (used only with no raft state); any
	// other node joins through the members (ignored once it has raft state).
	if n <= BootstrapNodes && !exists(filepath.Join(dir, "joined")) {
		var peers []string
		for m := 1; m <= BootstrapNodes; m++ {
			peers = append(peers, fmt.Sprintf("n%d=%s", m, c.peerAddr(m)))
		}
		args = append(args, "--peers", strings.Join(peers, ","))
	} else {
		var join []string
		for _, m := range c.Members() {
			if m != n {
				join = append(join, c.URL(m))
			}
		}
		args = append(args, "--join", strings.Join(join, ","))
	}
	if c.cfg.DebugBase > 0 {
		args = append(args, "--debug-addr", "127.0.0.1:"+strconv.Itoa(c.cfg.DebugBase+n))
	}
	if !c.cfg.InsecurePeer || c.tlsOn() {
		if err := c.ensureCerts(n); err != nil {
			return err
		}
	}
	if !c.cfg.InsecurePeer {
		args = append(args, PeerTLSArgs(c.certsDir(), id)...)
	}
	if c.tlsOn() {
		args = append(args, "--tls-cert", filepath.Join(c.certsDir(), id+".pem"),
			"--tls-key", filepath.Join(c.certsDir(), id+"-key.pem"))
	}
	// Tests only: with KV_TEST_CLOCK_OFFSET (read by kvnode itself) the node
	// runs the fault-injection build, whose offset can then be changed by
	// writing data/test-clock-offset; a new start resets it to the variable.
	exe := c.bin()
	os.Remove(filepath.Join(c.dataDir(n), "test-clock-offset"))
	if c.cfg.TestClockOffset != "" {
		exe += "-testclock"
		if err := c.build(exe, "testclock"); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(c.logFile(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.Env = envWithout(c.cfg.Env, "KV_API_KEY")
	// A session of its own: the node outlives this command and its terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start n%d: %w", n, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reap it should it die while this command still runs
	tmp := c.pidFile(n) + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.pidFile(n)); err != nil {
		return err
	}
	// /proc/PID/cmdline reads empty for a moment while the exec completes.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := c.Pid(n); ok {
			break
		}
		select {
		case <-exited:
			c.logTail(n)
			return fmt.Errorf("n%d exited right after starting", n)
		default:
		}
		if time.Now().After(deadline) {
			c.logTail(n)
			return fmt.Errorf("n%d did not start within 5s", n)
		}
	}
	fmt.Fprintf(c.cfg.Out, "started n%d (pid %d, http %s)\n", n, cmd.Process.Pid, c.httpAddr(n))
	return nil
}

// WaitLeader waits until every listed node answers /cluster/status with the
// same non-empty leader id and returns it. On timeout, or when a listed
// node's process is gone, it prints what each node sees and the failing
// nodes' log tails.
func (c *Cluster) WaitLeader(nodes ...int) (string, error) {
	deadline := time.Now().Add(c.cfg.Timeout)
	seen := map[int]string{}
	for {
		agreed := true
		for _, n := range nodes {
			if _, ok := c.Pid(n); !ok {
				c.logTail(n)
				return "", fmt.Errorf("n%d is not running (it may have exited; see its log above)", n)
			}
			st, _ := c.Status(n)
			seen[n] = st.LeaderID
			agreed = agreed && st.LeaderID != "" && st.LeaderID == seen[nodes[0]]
		}
		if agreed {
			return seen[nodes[0]], nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, n := range nodes {
		l := seen[n]
		if l == "" {
			l = "(none or not answering)"
		}
		fmt.Fprintf(c.cfg.Err, "n%d sees leader: %s\n", n, l)
	}
	for _, n := range nodes {
		// A node counts as failing unless a majority of the listed nodes agree with it.
		agree := 0
		for _, m := range nodes {
			if seen[n] != "" && seen[m] == seen[n] {
				agree++
			}
		}
		if 2*agree <= len(nodes) {
			c.logTail(n)
		}
	}
	return "", fmt.Errorf("no agreed leader after %s", c.cfg.Timeout)
}

func (c *Cluster) printEndpoints(leader string) {
	out := c.cfg.Out
	fmt.Fprintf(out, "cluster is up (state in %s)\n", c.cfg.Dir)
	for _, n := range c.Members() {
		mark := ""
		if leader == "n"+strconv.Itoa(n) {
			mark = "  (leader)"
		}
		fmt.Fprintf(out, "  n%d  %s%s\n", n, c.URL(n), mark)
	}
	fmt.Fprintf(out, "leader:  %s\n", leader)
	fmt.Fprintf(out, "api key: in %s (mode 0600; KEY=$(cat %s))\n", c.keyFile(), c.keyFile())
	ca := filepath.Join(c.certsDir(), "ca.pem")
	switch {
	case c.cfg.InsecurePeer:
		fmt.Fprintln(out, "tls:     NONE on the peer ports (KV_INSECURE_PEER=true): anyone who reaches them can rewrite the data")
	case c.tlsOn():
		fmt.Fprintf(out, "tls:     HTTPS and peer mutual TLS; CA certificate %s (curl --cacert)\n", ca)
	default:
		fmt.Fprintf(out, "tls:     peer mutual TLS (CA %s); the HTTP API is plain (start --tls for HTTPS)\n", ca)
	}
}

// Start builds kvnode, starts every member that is not running and waits
// for one agreed leader. withTLS also serves the HTTP API over HTTPS, and
// is remembered for the state directory.
func (c *Cluster) Start(withTLS bool) error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	if withTLS {
		if err := os.WriteFile(filepath.Join(c.cfg.Dir, "tls"), nil, 0o644); err != nil {
			return err
		}
	}
	nodes := c.Members()
	var down []int
	for _, n := range nodes {
		if _, ok := c.Pid(n); !ok {
			down = append(down, n)
		}
	}
	if err := c.ensureAPIKey(); err != nil {
		return err
	}
	if len(down) == 0 {
		fmt.Fprintln(c.cfg.Out, "cluster is already running")
	} else {
		if err := c.buildNode(); err != nil {
			return err
		}
		if !c.cfg.InsecurePeer {
			if err := c.ensureCerts(down...); err != nil {
				return err
			}
		}
		for _, n := range down {
			if err := c.startNode(n); err != nil {
				return err
			}
		}
	}
	leader, err := c.WaitLeader(nodes...)
	if err != nil {
		return err
	}
	c.printEndpoints(leader)
	return nil
}

// stopNodes resumes, SIGTERMs and waits for the listed nodes, SIGKILLing any
// still running after StopTimeout, and removes their pid files.
func (c *Cluster) stopNodes(nodes ...int) error {
	var running []nodeProc
	for _, n := range nodes {
		if pid, ok := c.Pid(n); ok {
			p, alive := procOf(pid)
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGTERM)
			if alive {
				running = append(running, nodeProc{n, p})
			}
			fmt.Fprintf(c.cfg.Out, "stopping n%d (pid %d)\n", n, pid)
		}
	}
	deadline := time.Now().Add(StopTimeout)
	for len(running) > 0 && time.Now().Before(deadline) {
		running = slices.DeleteFunc(running, func(r nodeProc) bool { return r.p.gone() })
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range running {
		if !r.p.gone() {
			fmt.Fprintf(c.cfg.Err, "n%d did not stop within %s; sending SIGKILL\n", r.n, StopTimeout)
			_ = syscall.Kill(r.p.pid, syscall.SIGKILL)
		}
	}
	if err := waitGone(running...); err != nil {
		return err
	}
	for _, n := range nodes {
		os.Remove(c.pidFile(n))
		os.Remove(c.pidFile(n) + ".tmp")
	}
	return nil
}

// nodeProc is node n's process, named before it was signalled.
type nodeProc struct {
	n int
	p proc
}

// waitGone waits (ten seconds at most) until the processes have exited.
// It waits on the processes named before the signal, not on Pid: while a
// process exits, the kernel frees its memory before it closes its files,
// and in between /proc/PID/cmdline reads empty, so Pid already reports the
// node gone while its listeners still hold their ports (at a million keys
// that window is long enough for a restart to find its port taken).
func waitGone(procs ...nodeProc) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range procs {
		for !r.p.gone() {
			if time.Now().After(deadline) {
				return fmt.Errorf("n%d (pid %d) is still running after SIGKILL", r.n, r.p.pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func allNodes() []int {
	var out []int
	for n := 1; n <= MaxNode; n++ {
		out = append(out, n)
	}
	return out
}

// Stop stops every node of the state directory.
func (c *Cluster) Stop() error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	any := slices.ContainsFunc(allNodes(), func(n int) bool { _, ok := c.Pid(n); return ok })
	if !any {
		for _, n := range allNodes() {
			os.Remove(c.pidFile(n))
		}
		fmt.Fprintln(c.cfg.Out, "cluster is not running")
		return nil
	}
	if err := c.stopNodes(allNodes()...); err != nil {
		return err
	}
	fmt.Fprintln(c.cfg.Out, "cluster stopped")
	return nil
}

// PrintStatus prints one line per member (process, raft state, term, applied
// index, leader) and the leader the nodes report. It fails when a member is
// down, paused or not answering.
func (c *Cluster) PrintStatus() error {
	out := c.cfg.Out
	const row = "%-4s %-8s %-7s %-10s %-6s %-8s %-7s %s\n"
	fmt.Fprintf(out, row, "NODE", "PID", "PROCESS", "STATE", "TERM", "APPLIED", "LEADER", "HTTP")
	var bad []string
	var leaders []string
	for _, n := range c.Members() {
		id := "n" + strconv.Itoa(n)
		pidS, proc, state, term, applied, leader := "-", "running", "-", "-", "-", "-"
		pid, ok := c.Pid(n)
		switch {
		case !ok:
			proc = "down"
			bad = append(bad, id+" is down")
		case paused(pid):
			pidS, proc = strconv.Itoa(pid), "paused"
			bad = append(bad, id+" is paused")
		default:
			pidS = strconv.Itoa(pid)
			st, err := c.Status(n)
			if err != nil {
				state = "unreachable"
				bad = append(bad, id+" does not answer")
				break
			}
			state, term, applied = st.State, strconv.FormatUint(st.Term, 10), strconv.FormatUint(st.AppliedIndex, 10)
			leader = st.LeaderID
			if leader != "" {
				leaders = append(leaders, leader)
			} else {
				leader = "(none)"
			}
		}
		fmt.Fprintf(out, row, id, pidS, proc, state, term, applied, leader, c.httpAddr(n))
	}
	distinct := slices.Compact(slices.Sorted(slices.Values(leaders)))
	switch {
	case len(distinct) == 0:
		fmt.Fprintln(out, "leader: none known")
	case len(distinct) == 1:
		note := ""
		if n, err := strconv.Atoi(strings.TrimPrefix(distinct[0], "n")); err == nil && n >= 1 && n <= MaxNode {
			if _, ok := c.Pid(n); !ok {
				note = " (reported by the others, but not running: an election is due)"
			}
		}
		fmt.Fprintf(out, "leader: %s%s\n", distinct[0], note)
	default:
		fmt.Fprintf(out, "leader: nodes disagree (%s)\n", strings.Join(distinct, " "))
	}
	if len(bad) > 0 {
		return fmt.Errorf("not healthy: %s", strings.Join(bad, ", "))
	}
	return nil
}

// Restart gracefully stops node n, starts it on the same data and waits until
// it sees a leader.
func (c *Cluster) Restart(n int) error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	if err := c.stopNodes(n); err != nil {
		return err
	}
	if err := c.ensureAPIKey(); err != nil {
		return err
	}
	if err := c.ensureBuilt(); err != nil {
		return err
	}
	if err := c.startNode(n); err != nil {
		return err
	}
	leader, err := c.WaitLeader(n)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.cfg.Out, "n%d is back on %s and sees leader %s\n", n, c.URL(n), leader)
	return nil
}

// Signal sends sig to running node n and prints "VERB nN (pid P)".
func (c *Cluster) Signal(n int, sig syscall.Signal, verb string) error {
	pid, ok := c.Pid(n)
	if !ok {
		return fmt.Errorf("n%d is not running", n)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal n%d (pid %d): %w", n, pid, err)
	}
	fmt.Fprintf(c.cfg.Out, "%s n%d (pid %d)\n", verb, n, pid)
	return nil
}

// Kill SIGKILLs node n and waits until it is gone.
func (c *Cluster) Kill(n int) error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	var procs []nodeProc
	if pid, ok := c.Pid(n); ok {
		if p, alive := procOf(pid); alive {
			procs = append(procs, nodeProc{n, p})
		}
	}
	if err := c.Signal(n, syscall.SIGKILL, "killed"); err != nil {
		return err
	}
	if err := waitGone(procs...); err != nil {
		return err
	}
	return os.Remove(c.pidFile(n))
}

// LogPath is node n's log file; it fails when there is none.
func (c *Cluster) LogPath(n int) (string, error) {
	if !exists(c.logFile(n)) {
		return "", fmt.Errorf("no log for n%d at %s", n, c.logFile(n))
	}
	return c.logFile(n), nil
}

// anyMemberBut returns a running, answering member other than n.
func (c *Cluster) anyMemberBut(n int) (int, bool) {
	for _, m := range c.Members() {
		if m == n {
			continue
		}
		if _, ok := c.Pid(m); ok {
			if _, err := c.Status(m); err == nil {
				return m, true
			}
		}
	}
	return 0, false
}

// Add starts node n (not running; new, or removed before) with an empty data
// dir and --join, and waits until the cluster lists it as a voter.
func (c *Cluster) Add(n int) error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	dir := c.nodeDir(n)
	if _, ok := c.Pid(n); ok {
		return fmt.Errorf("n%d is already running", n)
	}
	if n <= BootstrapNodes && !exists(filepath.Join(dir, "removed")) {
		return fmt.Errorf("n%d is a bootstrap member; use 'restart %d', or 'remove %d' first", n, n, n)
	}
	via, ok := c.anyMemberBut(n)
	if !ok {
		return errors.New("no running member answers; start the cluster first")
	}
	if err := c.ensureAPIKey(); err != nil {
		return err
	}
	if err := c.ensureBuilt(); err != nil {
		return err
	}
	if err := os.RemoveAll(c.dataDir(n)); err != nil {
		return err
	}
	os.Remove(filepath.Join(dir, "removed"))
	if err := os.MkdirAll(c.dataDir(n), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "joined"), nil, 0o644); err != nil {
		return err
	}
	if err := c.startNode(n); err != nil {
		return err
	}
	fmt.Fprintf(c.cfg.Out, "n%d is joining through %s; waiting until it is a voter\n", n, c.URL(via))
	id := "n" + strconv.Itoa(n)
	deadline := time.Now().Add(c.cfg.Timeout)
	for {
		members, _ := c.Nodes(via)
		if slices.Contains(members, Member{ID: id, Suffrage: "voter"}) {
			break
		}
		if _, ok := c.Pid(n); !ok {
			c.logTail(n)
			return fmt.Errorf("n%d exited while joining", n)
		}
		if time.Now().After(deadline) {
			c.logTail(n)
			return fmt.Errorf("n%d is not a voter after %s", n, c.cfg.Timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Fprintf(c.cfg.Out, "n%d is a voter (http %s)\n", n, c.URL(n))
	return nil
}

// Remove takes node n out of the configuration through another member, then
// stops it and wipes its data: a removed node cannot come back with its old
// state, and a "removed" marker keeps Start from bringing it back.
func (c *Cluster) Remove(n int) error {
	if err := c.Lock(); err != nil {
		return err
	}
	defer c.Unlock()
	if !exists(c.dataDir(n)) {
		return fmt.Errorf("n%d has no data dir; nothing to remove", n)
	}
	via, ok := c.anyMemberBut(n)
	if !ok {
		return fmt.Errorf("no other running member answers; cannot remove n%d", n)
	}
	if err := c.call(via, "DELETE", "/cluster/nodes/n"+strconv.Itoa(n), 30*time.Second, nil); err != nil {
		return fmt.Errorf("the cluster refused to remove n%d: %w", n, err)
	}
	fmt.Fprintf(c.cfg.Out, "removed n%d from the cluster (through n%d)\n", n, via)
	if err := c.stopNodes(n); err != nil {
		return err
	}
	if err := os.RemoveAll(c.dataDir(n)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.nodeDir(n), "removed"), nil, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.cfg.Out, "stopped n%d and wiped its data; 'add %d' brings it back empty\n", n, n)
	return nil
}
