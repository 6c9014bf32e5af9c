package servers

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// shellLoop is a child that forks a grandchild repeatedly, so group signals
// are observable; it prints a marker and exits 7 on SIGINT unless told to
// ignore it.
func shellLoop(t *testing.T, ignoreInt bool) *Process {
	trap := `trap 'echo got-int; exit 7' INT`
	if ignoreInt {
		trap = `trap '' INT`
	}
	script := trap + `; echo started; while :; do sleep 0.05; done`
	return NewProcess(t, ProcessOptions{Name: "loop", Path: "/bin/sh", Args: []string{"-c", script}, StopTimeout: 500 * time.Millisecond})
}

func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

func TestProcessStopIsGracefulAndKillsGroup(t *testing.T) {
	p := shellLoop(t, false)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "child output", 5*time.Second, func() bool { return strings.Contains(p.OutputTail(), "\nstarted\n") })
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
	if err := p.Wait(10 * time.Second); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("Wait after graceful stop = %v, want exit status 7", err)
	}
	waitFor(t, "process group gone", 5*time.Second, func() bool { return !groupAlive(pgid) })
}

func TestProcessStopEscalatesToKill(t *testing.T) {
	p := shellLoop(t, true)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "child output", 5*time.Second, func() bool { return strings.Contains(p.OutputTail(), "\nstarted\n") })
	pgid := p.PID()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(10 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait after Stop of a SIGINT-ignoring child = %v, want killed", err)
	}
	waitFor(t, "process group gone", 5*time.Second, func() bool { return !groupAlive(pgid) })
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
	waitFor(t, "stopped state", 5*time.Second, func() bool { return processState(t, pid) == "T" })
	if !p.Paused() {
		t.Error("Paused() = false after Pause")
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running state", 5*time.Second, func() bool { return processState(t, pid) != "T" })

	// A paused process must still stop promptly (Stop resumes it first).
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
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
