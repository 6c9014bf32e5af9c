package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Message is one bus message as gst-launch-1.0 -m prints it, or an ERROR or
// WARNING line it prints for the pipeline.
type Message struct {
	// Type is gst-launch's name: "element", "error", "warning", "eos",
	// "state-changed", ... Errors printed without -m details have Type "error".
	Type string
	// Source is the posting element's name ("reconnectbin0").
	Source string
	// Name is the structure name for element messages ("reconnectbin-restart").
	Name string
	// Text is the whole structure or error text as printed.
	Text string
	// At is when the harness read the line.
	At time.Time
}

// Field returns a structure field's printed value, unquoted and unescaped
// ("reason=(string)eos" gives "eos"), or "" when absent.
func (m Message) Field(name string) string {
	re := regexp.MustCompile(`(?:^|[ ,])` + regexp.QuoteMeta(name) + `=\([a-z0-9]+\)("(?:[^"\\]|\\.)*"|[^,;]*)`)
	sub := re.FindStringSubmatch(m.Text)
	if sub == nil {
		return ""
	}
	v := sub[1]
	v = strings.TrimPrefix(strings.TrimSuffix(v, `"`), `"`)
	return strings.NewReplacer(`\ `, " ", `\"`, `"`, `\\`, `\`, `\,`, ",", `\;`, ";", `\=`, "=").Replace(v)
}

// Launch is a gst-launch-1.0 child process whose bus messages are collected.
type Launch struct {
	tb     testing.TB
	cmd    *exec.Cmd
	stderr *tailBuffer

	mu       sync.Mutex
	msgs     []Message
	changed  chan struct{} // closed and replaced whenever msgs grows
	exited   chan struct{}
	exitCode int
	signal   syscall.Signal // what ended the process, 0 for an exit
	crash    string         // the first "Caught SIG..." line, sticky
}

var (
	msgLine   = regexp.MustCompile(`^Got message #\d+ from (?:element|pad|object) "([^"]*)" \(([a-z-]+)\): ?(.*)$`)
	errorLine = regexp.MustCompile(`^(ERROR|WARNING): from element (\S+): (.*)$`)
)

// StartLaunch runs `gst-launch-1.0 -m -e args...` in env (see Env). -e turns
// Interrupt into an application EOS, as an operator's Ctrl-C does.
func StartLaunch(tb testing.TB, env []string, args ...string) *Launch {
	tb.Helper()
	return StartCommand(tb, env, "gst-launch-1.0", append([]string{"-m", "-e"}, args...)...)
}

// StartCommand runs a command that ends up as gst-launch-1.0 -m (a relay
// recipe that execs it, say) and collects its messages like StartLaunch.
func StartCommand(tb testing.TB, env []string, name string, args ...string) *Launch {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	l := &Launch{tb: tb, cmd: cmd, stderr: &tailBuffer{max: 64 << 10}, changed: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting gst-launch-1.0: %v", err)
	}
	// ERROR and WARNING texts are only on stderr (-m prints their GError as
	// NULL), so both streams are read; the process is reaped once both end.
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); l.scan(stdout, nil) }()
	go func() { defer readers.Done(); l.scan(stderr, l.stderr) }()
	go func() { readers.Wait(); l.reap() }()
	tb.Cleanup(func() {
		l.Kill()
		// GStreamer's fault handler prints this and then spins: a crash
		// fails the test whatever else it waited for.
		if crash := l.Crash(); crash != "" {
			tb.Errorf("gst-launch-1.0 crashed: %s", crash)
		}
		if tb.Failed() {
			var events []string
			for _, m := range l.Messages() {
				ours := strings.HasPrefix(m.Name, "reconnectbin") || strings.HasPrefix(m.Name, "kvscredprovider")
				if ours || m.Type == "error" || m.Type == "warning" || m.Type == "eos" {
					events = append(events, m.At.Format("15:04:05.000")+" "+m.Source+" "+m.Type+": "+m.Text)
				}
			}
			tb.Logf("gst-launch-1.0 %s\nmessages:\n%s\nstderr tail:\n%s", strings.Join(args, " "),
				strings.Join(events, "\n"), l.stderr.String())
		}
	})
	return l
}

func (l *Launch) scan(r io.Reader, tail *tailBuffer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if tail != nil {
			tail.Write([]byte(line + "\n")) //nolint:errcheck
		}
		if strings.Contains(line, crashMarker) {
			l.mu.Lock()
			if l.crash == "" {
				l.crash = strings.TrimSpace(line)
			}
			l.mu.Unlock()
		}
		var m Message
		if sub := msgLine.FindStringSubmatch(line); sub != nil {
			m = Message{Source: sub[1], Type: sub[2], Text: sub[3]}
			if m.Type == "error" || m.Type == "warning" {
				continue // counted from the stderr line that carries the text
			}
			if name, _, ok := strings.Cut(m.Text, ","); ok {
				m.Name = strings.TrimSpace(name)
			} else {
				m.Name = strings.TrimSuffix(strings.TrimSpace(m.Text), ";")
			}
		} else if sub := errorLine.FindStringSubmatch(line); sub != nil {
			path := sub[2]
			m = Message{Type: strings.ToLower(sub[1]), Source: path[strings.LastIndex(path, ":")+1:], Text: sub[3]}
		} else {
			continue
		}
		m.At = time.Now()
		l.mu.Lock()
		l.msgs = append(l.msgs, m)
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
}

func (l *Launch) reap() {
	err := l.cmd.Wait()
	code := 0
	var sig syscall.Signal
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode() // -1 when a signal ended it
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			sig = ws.Signal()
		}
	}
	l.mu.Lock()
	l.exitCode = code
	l.signal = sig
	close(l.exited)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Messages returns every message seen so far.
func (l *Launch) Messages() []Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Message(nil), l.msgs...)
}

// MessagesSince returns the messages from index i on (Messages()[i:]
// without copying the ones before): a watcher that remembers how far it
// read stays cheap over a long run.
func (l *Launch) MessagesSince(i int) []Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= len(l.msgs) {
		return nil
	}
	return append([]Message(nil), l.msgs[i:]...)
}

// crashMarker starts the line GStreamer's fault handler prints on SIGSEGV,
// SIGBUS, SIGILL, SIGFPE ("Caught SIGSEGV"); it then spins (waiting for a
// debugger) instead of exiting.
const crashMarker = "Caught SIG"

// Crash returns the fault handler's line once the process printed one (see
// crashMarker), else "". It is kept apart from the stderr tail, which a
// long run would scroll past it.
func (l *Launch) Crash() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.crash
}

// PID is the gst-launch-1.0 (or command's) process id, for /proc samples.
func (l *Launch) PID() int { return l.cmd.Process.Pid }

// Count returns how many messages so far match.
func (l *Launch) Count(match func(Message) bool) int {
	n := 0
	for _, m := range l.Messages() {
		if match(m) {
			n++
		}
	}
	return n
}

// WaitFor waits until the n-th message matching match (counting from the
// start of the run) has arrived, and returns it. It fails the test at the
// deadline or when the process exits first.
func (l *Launch) WaitFor(timeout time.Duration, n int, what string, match func(Message) bool) Message {
	l.tb.Helper()
	m, err := l.waitFor(timeout, n, match)
	if err != nil {
		l.tb.Fatalf("waiting for %s: %v\nstderr tail:\n%s", what, err, l.stderr.String())
	}
	return m
}

func (l *Launch) waitFor(timeout time.Duration, n int, match func(Message) bool) (Message, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		seen := 0
		for _, m := range l.msgs {
			if match(m) {
				seen++
				if seen == n {
					l.mu.Unlock()
					return m, nil
				}
			}
		}
		changed, exited := l.changed, l.exited
		l.mu.Unlock()
		select {
		case <-exited:
			select {
			case <-changed:
				continue // messages may have arrived just before exit
			default:
			}
			return Message{}, fmt.Errorf("gst-launch-1.0 exited (code %d) after %d of %d matching messages", l.ExitCode(), seen, n)
		case <-changed:
		case <-deadline.C:
			return Message{}, fmt.Errorf("timed out after %v with %d of %d matching messages", timeout, seen, n)
		}
	}
}

// Interrupt sends SIGINT: with -e gst-launch sends EOS and waits for it.
func (l *Launch) Interrupt() { _ = l.cmd.Process.Signal(syscall.SIGINT) }

// Wait waits for the process to exit and returns its exit code; it fails the
// test at the deadline (and kills the process).
func (l *Launch) Wait(timeout time.Duration) int {
	l.tb.Helper()
	select {
	case <-l.exited:
		return l.ExitCode()
	case <-time.After(timeout):
		l.Kill()
		l.tb.Fatalf("gst-launch-1.0 did not exit within %v\nstderr tail:\n%s", timeout, l.stderr.String())
		return -1
	}
}

// Exited reports whether the process has ended.
func (l *Launch) Exited() bool {
	select {
	case <-l.exited:
		return true
	default:
		return false
	}
}

// ExitCode is the exit code once Exited.
func (l *Launch) ExitCode() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.exitCode
}

// ExitSignal is the signal that ended the process once Exited (SIGABRT
// from a GLib assertion, say), 0 when it exited by itself.
func (l *Launch) ExitSignal() syscall.Signal {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.signal
}

// Kill ends the whole process group and waits for it.
func (l *Launch) Kill() {
	if l.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-l.exited:
	case <-time.After(10 * time.Second):
	}
}

// Stderr is the tail of what the process wrote to stderr.
func (l *Launch) Stderr() string { return l.stderr.String() }

// Element matches element messages with the given structure name.
func Element(name string) func(Message) bool {
	return func(m Message) bool { return m.Type == "element" && m.Name == name }
}

// OfType matches messages of a gst-launch message type ("error", "eos", ...).
func OfType(t string) func(Message) bool {
	return func(m Message) bool { return m.Type == t }
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// Run runs a short-lived command in env with a deadline and returns its
// combined output and exit code (-1 when it could not run or timed out).
func Run(tb testing.TB, env []string, timeout time.Duration, name string, args ...string) (string, int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}
