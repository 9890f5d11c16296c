package devcluster

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec is what Proc.Start runs: Wrapper (if any) followed by Path and Args,
// so that with Wrapper = ip netns exec NS the wrapper execs Path and the
// child's pid is still the node's.
type Spec struct {
	Path    string
	Args    []string
	Wrapper []string
	Env     []string // nil: the caller's environment
	Dir     string
	// Output receives stdout and stderr; an *os.File is handed to the child
	// directly, anything else through a copying goroutine.
	Output io.Writer
	// Label, when set, makes Start and the exit write one "=== Label: ..."
	// line each to Output, so a log shows where each process began and ended.
	Label string
	// DieWithParent kills the child (SIGKILL) when the calling thread's
	// process dies, so a crashed test leaves no node behind.
	DieWithParent bool
}

// Proc is one process slot: at most one process runs at a time, and it can
// be started again after it exited. Its methods are safe for concurrent use.
type Proc struct {
	Name string // used in errors, e.g. "n1"

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has exited
	state  *exec.ExitError
	ok     bool // the last process exited with status 0
	paused bool
	starts int
	exits  []string // how each process ended, e.g. "signal: killed"
}

// Start runs spec. It fails when a process already runs in the slot.
func (p *Proc) Start(spec Spec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.Name)
	}
	argv := append(append([]string{}, spec.Wrapper...), spec.Path)
	argv = append(argv, spec.Args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = spec.Env, spec.Dir
	cmd.Stdout, cmd.Stderr = spec.Output, spec.Output
	if spec.DieWithParent {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	mark := func(format string, args ...any) {
		if spec.Label != "" && spec.Output != nil {
			fmt.Fprintf(spec.Output, "=== "+spec.Label+": "+format+"\n", args...)
		}
	}
	mark("start %s at %s: %s", p.Name, time.Now().Format(time.RFC3339Nano), strings.Join(spec.Args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done, p.paused = cmd, make(chan struct{}), false
	p.starts++
	done := p.done
	go func() {
		err := cmd.Wait()
		how := "exit 0"
		if err != nil {
			how = err.Error()
		}
		mark("%s exited at %s: %s", p.Name, time.Now().Format(time.RFC3339Nano), how)
		p.mu.Lock()
		p.state, p.ok = nil, err == nil
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.state = ee
		}
		p.exits = append(p.exits, how)
		p.cmd, p.paused = nil, false
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether a process is up (possibly paused).
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Paused reports whether the running process was stopped with SIGSTOP.
func (p *Proc) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Pid is the running process's pid, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Done returns a channel closed when the last started process exits (nil
// before the first start).
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Starts is how many processes the slot has started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Exits says how each process ended, oldest first.
func (p *Proc) Exits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.exits...)
}

// Signal sends sig to the running process and returns a channel closed when
// it exits. SIGSTOP and SIGCONT update Paused.
func (p *Proc) Signal(sig syscall.Signal) (<-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil, fmt.Errorf("%s is not running", p.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("signal %s: %w", p.Name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return p.done, nil
}

// Pause and Resume send SIGSTOP and SIGCONT.
func (p *Proc) Pause() error { _, err := p.Signal(syscall.SIGSTOP); return err }

// Resume sends SIGCONT.
func (p *Proc) Resume() error { _, err := p.Signal(syscall.SIGCONT); return err }

// Kill sends SIGKILL and waits up to timeout for the process to exit.
func (p *Proc) Kill(timeout time.Duration) error {
	done, err := p.Signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit %s after SIGKILL", p.Name, timeout)
	}
}

// Stop resumes a paused process, sends SIGTERM and waits up to timeout, then
// kills it. It reports a process that had to be killed or exited non-zero.
func (p *Proc) Stop(timeout time.Duration) error {
	if p.Paused() {
		_ = p.Resume()
	}
	done, err := p.Signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(timeout):
		_ = p.Kill(10 * time.Second)
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", p.Name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ok {
		return fmt.Errorf("%s stopped uncleanly: %s", p.Name, p.exits[len(p.exits)-1])
	}
	return nil
}

// LastExitKilled reports whether the last process ended by SIGKILL.
func (p *Proc) LastExitKilled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return false
	}
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
