package servers

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// Deadlines only catch hangs, so they are generous: on a loaded 2-core
// machine a shell may wait seconds for the CPU.
const (
	hangTimeout = 20 * time.Second
	exitTimeout = 10 * time.Second
)

// shellLoop is a child that forks a grandchild repeatedly, so group signals
// are observable; it prints a marker and exits 7 on SIGINT unless told to
// ignore it. A child that handles SIGINT gets a generous StopTimeout (so a
// slow graceful exit is not mistaken for a hang and killed); one that
// ignores it gets a short one, as the escalation to SIGKILL is what its test
// waits for.
func shellLoop(t *testing.T, ignoreInt bool) *Process {
	trap, stopTimeout := `trap 'echo got-int; exit 7' INT`, exitTimeout
	if ignoreInt {
		trap, stopTimeout = `trap '' INT`, 500*time.Millisecond
	}
	script := trap + `; echo started; while :; do sleep 0.05; done`
	return NewProcess(t, ProcessOptions{Name: "loop", Path: "/bin/sh", Args: []string{"-c", script}, StopTimeout: stopTimeout})
}

func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

func TestProcessStopIsGracefulAndKillsGroup(t *testing.T) {
	p := shellLoop(t, false)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "child output", hangTimeout, func() bool { return strings.Contains(p.OutputTail(), "\nstarted\n") })
	pgid := p.PID()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("process still running after Stop")
	}
	if !strings.Contains(p.OutputTail(), "\ngot-int\n") {
		t.Errorf("Stop did not deliver SIGINT first; output:\n%s", p.OutputTail())
	}
	if err := p.Wait(exitTimeout); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("Wait after graceful stop = %v, want exit status 7", err)
	}
	waitFor(t, "process group gone", exitTimeout, func() bool { return !groupAlive(pgid) })
}

func TestProcessStopEscalatesToKill(t *testing.T) {
	p := shellLoop(t, true)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "child output", hangTimeout, func() bool { return strings.Contains(p.OutputTail(), "\nstarted\n") })
	pgid := p.PID()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(exitTimeout); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait after Stop of a SIGINT-ignoring child = %v, want killed", err)
	}
	waitFor(t, "process group gone", exitTimeout, func() bool { return !groupAlive(pgid) })
}

func TestProcessPauseResumeRestart(t *testing.T) {
	p := shellLoop(t, false)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
		t.Error("second Start of a running process succeeded")
	}
	pid := p.PID()
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the process group to stop", hangTimeout, func() bool { return groupStopped(t, pid) })
	if !p.Paused() {
		t.Error("Paused() = false after Pause")
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the process group to run again", hangTimeout, func() bool { return groupResumed(t, pid) })

	// A paused process must still stop gracefully (Stop resumes it first,
	// so it can handle SIGINT).
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.OutputTail(), "\ngot-int\n") {
		t.Errorf("Restart of a paused process did not stop it gracefully (no SIGINT trap output):\n%s", p.OutputTail())
	}
	if p.PID() == pid || !p.Running() {
		t.Fatalf("Restart: pid %d -> %d, running %v; want a new running process", pid, p.PID(), p.Running())
	}
	if got := strings.Count(p.OutputTail(), "start #"); got != 2 {
		t.Errorf("output tail records %d starts, want 2", got)
	}
	if err := p.Wait(50 * time.Millisecond); err == nil {
		t.Error("Wait on a running process returned nil")
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Pause(); err == nil {
		t.Error("Pause of an exited process succeeded")
	}
}

func TestProcessStartErrorNamesExecutable(t *testing.T) {
	p := NewProcess(t, ProcessOptions{Name: "missing", Path: "/nonexistent/gst-launch"})
	err := p.Start()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/gst-launch") {
		t.Fatalf("Start of a missing executable = %v, want error naming it", err)
	}
}
