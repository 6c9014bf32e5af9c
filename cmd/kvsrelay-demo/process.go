package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// groupProcess is a child started in its own process group, so that the
// demo can stop, continue or kill it together with anything it forks, and so
// that a Ctrl-C in the terminal reaches only the demo, which then shuts the
// children down in the right order (the relay must get its SIGINT to finish
// the MKV).
type groupProcess struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status; read only after done is closed
}

// children tracks every live child so that one call can kill them all (on a
// second Ctrl-C, or when the demo leaves through an error path).
type children struct {
	mu   sync.Mutex
	live map[*groupProcess]struct{}
}

func newChildren() *children { return &children{live: map[*groupProcess]struct{}{}} }

// start runs argv[0] with argv[1:] in a new process group. stdout and stderr
// must be files (or nil) so that exec does not add copying goroutines that
// Wait would block on.
func (c *children) start(name string, argv, env []string, stdout, stderr *os.File) (*groupProcess, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Safety net for when the demo itself is killed with SIGKILL and
		// cannot clean up: the kernel then kills the child.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, argv[0], err)
	}
	p := &groupProcess{name: name, cmd: cmd, done: make(chan struct{})}
	c.mu.Lock()
	c.live[p] = struct{}{}
	c.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		c.mu.Lock()
		delete(c.live, p)
		c.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// killAll kills every live child's process group and waits up to timeout for
// them to be reaped.
func (c *children) killAll(timeout time.Duration) {
	c.mu.Lock()
	var procs []*groupProcess
	for p := range c.live {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	for _, p := range procs {
		_ = p.kill(timeout)
	}
}

// exited is closed once the process has exited and been reaped.
func (p *groupProcess) exited() <-chan struct{} { return p.done }

func (p *groupProcess) hasExited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalGroup sends sig to the child's whole process group.
func (p *groupProcess) signalGroup(sig syscall.Signal) error {
	if p.hasExited() {
		return nil
	}
	// The child's pid is its process group id (Setpgid with Pgid 0).
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sending %v to %s (process group %d): %w", sig, p.name, p.cmd.Process.Pid, err)
	}
	return nil
}

// kill SIGKILLs the group (after SIGCONT, harmless if it was not stopped) and
// waits for the exit.
func (p *groupProcess) kill(timeout time.Duration) error {
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		return err
	}
	_ = p.signalGroup(syscall.SIGCONT)
	return p.wait(timeout)
}

// wait waits up to timeout for the process to exit.
func (p *groupProcess) wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		return fmt.Errorf("%s (pid %d) did not exit within %v", p.name, p.cmd.Process.Pid, timeout)
	}
}

// exitDescription says how the process ended, for the summary.
func (p *groupProcess) exitDescription() string {
	if !p.hasExited() {
		return "still running"
	}
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}
