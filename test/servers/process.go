package servers

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultStopTimeout is how long Stop waits after SIGINT before SIGKILL.
const DefaultStopTimeout = 3 * time.Second

// outputTailBytes is how much of a child's combined stdout/stderr is kept
// for failure messages.
const outputTailBytes = 8 << 10

// ProcessOptions describes a child process.
type ProcessOptions struct {
	// Name labels the process in errors and logs, e.g. "ts-encoder".
	Name string
	// Path is the executable, e.g. "gst-launch-1.0" (looked up in PATH) or
	// "/usr/bin/python3".
	Path string
	// Args are the arguments after Path.
	Args []string
	// Env is appended to the parent's environment (later entries win).
	Env []string
	// Dir is the working directory; empty means the parent's.
	Dir string
	// StopTimeout is how long Stop waits for a graceful exit after SIGINT
	// before killing the process group. Zero means DefaultStopTimeout.
	StopTimeout time.Duration
}

// Process runs a child in its own process group so that signals reach the
// whole tree (gst-launch-1.0 has threads only, but python or shell wrappers
// may fork). It is safe for concurrent use.
//
// A Process is restartable: Restart (or Start after an exit) runs the same
// command again.
type Process struct {
	tb   testing.TB
	opts ProcessOptions

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current run has exited
	waitErr error         // exit status of the current run, valid after done
	paused  bool
	starts  int
	output  *tailBuffer
}

// NewProcess prepares a process without starting it. Cleanup (registered on
// tb) kills the process group if it is still running and, if the test
// failed, logs the tail of its output.
func NewProcess(tb testing.TB, opts ProcessOptions) *Process {
	tb.Helper()
	if opts.Name == "" {
		opts.Name = opts.Path
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	p := &Process{tb: tb, opts: opts, output: &tailBuffer{max: outputTailBytes}}
	tb.Cleanup(func() {
		_ = p.Kill()
		if tb.Failed() {
			if tail := p.OutputTail(); tail != "" {
				tb.Logf("%s output (tail):\n%s", p.opts.Name, tail)
			}
		}
	})
	return p
}

// StartProcess is NewProcess followed by Start; it fails the test if the
// process cannot be started.
func StartProcess(tb testing.TB, opts ProcessOptions) *Process {
	tb.Helper()
	p := NewProcess(tb, opts)
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Name returns the label given in ProcessOptions.
func (p *Process) Name() string { return p.opts.Name }

// Start runs the command. It is an error to Start a process that is running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runningLocked() {
		return fmt.Errorf("start %s: already running (pid %d)", p.opts.Name, p.cmd.Process.Pid)
	}
	cmd := exec.Command(p.opts.Path, p.opts.Args...)
	cmd.Dir = p.opts.Dir
	cmd.Env = append(os.Environ(), p.opts.Env...)
	cmd.Stdout = p.output
	cmd.Stderr = p.output
	// Own process group: Stop/Kill/Pause signal -pgid and reach every
	// descendant, and a Ctrl-C on the test does not hit the child twice.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// If an orphaned grandchild kept the output pipe open, do not let Wait
	// (and so Kill) hang on it.
	cmd.WaitDelay = time.Second
	p.starts++
	p.output.mark(fmt.Sprintf("--- %s start #%d: %s %s", p.opts.Name, p.starts, p.opts.Path, strings.Join(p.opts.Args, " ")))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (%s): %w", p.opts.Name, p.opts.Path, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.waitErr, p.paused = cmd, done, nil, false
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *Process) runningLocked() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Running reports whether the current run has not exited yet (a paused
// process is running).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningLocked()
}

// PID returns the pid (== process group id) of the current run, or 0.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited returns a channel closed when the current run exits; nil if the
// process was never started.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// signalGroup sends sig to the process group of the current run. It returns
// false if there is no running process.
func (p *Process) signalGroup(sig syscall.Signal) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.runningLocked() {
		return false, nil
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("send %v to %s (pgid %d): %w", sig, p.opts.Name, pgid, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return true, nil
}

// Stop asks the process group to exit with SIGINT (gst-launch-1.0 -e turns
// that into EOS), waits up to StopTimeout, then SIGKILLs the group. A paused
// process is resumed first so that it can handle SIGINT. Stopping a process
// that is not running is a no-op.
func (p *Process) Stop() error {
	done := p.Exited()
	if done == nil {
		return nil
	}
	if _, err := p.signalGroup(syscall.SIGCONT); err != nil {
		return err
	}
	running, err := p.signalGroup(syscall.SIGINT)
	if err != nil || !running {
		return err
	}
	timer := time.NewTimer(p.opts.StopTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
		return p.Kill()
	}
}

// Kill SIGKILLs the whole process group and waits for the process to be
// reaped, so its sockets are closed when Kill returns.
func (p *Process) Kill() error {
	done := p.Exited()
	if done == nil {
		return nil
	}
	if _, err := p.signalGroup(syscall.SIGKILL); err != nil {
		return err
	}
	<-done // SIGKILL cannot be ignored, even by a stopped process.
	return nil
}

// Pause SIGSTOPs the process group: sockets stay open but nothing is sent,
// the "silent stall" failure of a hung camera.
func (p *Process) Pause() error {
	running, err := p.signalGroup(syscall.SIGSTOP)
	if err == nil && !running {
		err = fmt.Errorf("pause %s: not running", p.opts.Name)
	}
	return err
}

// Resume SIGCONTs the process group after Pause.
func (p *Process) Resume() error {
	running, err := p.signalGroup(syscall.SIGCONT)
	if err == nil && !running {
		err = fmt.Errorf("resume %s: not running", p.opts.Name)
	}
	return err
}

// Paused reports whether Pause was called without a later Resume.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused && p.runningLocked()
}

// Restart stops the current run (gracefully, see Stop) and starts the same
// command again.
func (p *Process) Restart() error {
	if err := p.Stop(); err != nil {
		return fmt.Errorf("restart %s: %w", p.opts.Name, err)
	}
	return p.Start()
}

// Wait waits up to timeout for the current run to exit and returns its exit
// error (nil for exit status 0). It returns an error if the process is still
// running at the deadline or was never started.
func (p *Process) Wait(timeout time.Duration) error {
	done := p.Exited()
	if done == nil {
		return fmt.Errorf("wait %s: never started", p.opts.Name)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.waitErr != nil {
			return fmt.Errorf("%s: %w", p.opts.Name, p.waitErr)
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("wait %s: still running after %v", p.opts.Name, timeout)
	}
}

// OutputTail returns the last few KiB of the child's combined stdout and
// stderr across all runs, for failure messages.
func (p *Process) OutputTail() string { return p.output.String() }

// describeExit formats why a process is not serving, for error messages.
func (p *Process) describeExit() string {
	return fmt.Sprintf("%s exited; output tail:\n%s", p.opts.Name, p.OutputTail())
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(data []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, data...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0:0], b.buf[over:]...)
	}
	return len(data), nil
}

func (b *tailBuffer) mark(line string) { _, _ = b.Write([]byte(line + "\n")) }

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
