package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Contender is one way of relaying the source, run as a child process
// whose frames come out on fd 3.
type Contender struct {
	// Name labels the contender's rows, e.g. "gst-launch (incident line), RestartSec=5".
	Name string
	// Kind is "reconnectbin", "gst-launch" or "ffmpeg": which fresh-start
	// floor applies.
	Kind string
	Path string
	Args []string
	// RestartSec is how long the supervisor waits after an exit before
	// starting the process again, as systemd's Restart=always does.
	RestartSec time.Duration
	// Messages parses gst-launch -m output for reconnectbin's messages.
	Messages bool
	// Reference marks the contender the others' ratios are taken against.
	Reference bool
}

// BusMessage is a reconnectbin element message as gst-launch -m prints it.
type BusMessage struct {
	Name   string // reconnectbin-restart, reconnectbin-recovered
	Reason string // restart reason: error, eos, stall, start-failed
	At     time.Time
}

var busLine = regexp.MustCompile(`\(element\): (reconnectbin-[a-z-]+)[,;]`)
var reasonField = regexp.MustCompile(`reason=\(string\)"?([a-z-]+)`)

// parseBusLine recognises reconnectbin's element messages in a gst-launch
// -m line.
func parseBusLine(line string) (BusMessage, bool) {
	m := busLine.FindStringSubmatch(line)
	if m == nil {
		return BusMessage{}, false
	}
	msg := BusMessage{Name: m[1]}
	if r := reasonField.FindStringSubmatch(line); r != nil {
		msg.Reason = r[1]
	}
	return msg, true
}

// Runner supervises one contender: it starts the process, restarts it
// RestartSec after every exit until Stop, and records frames, starts,
// exits, CPU time and bus messages.
type Runner struct {
	c      Contender
	env    []string
	Frames *FrameLog

	mu       sync.Mutex
	starts   []time.Time
	exits    []time.Time
	cpu      time.Duration
	msgs     []BusMessage
	pid      int
	lastErr  string
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// startRunner starts supervising c.
func startRunner(c Contender, env []string) *Runner {
	r := &Runner{c: c, env: env, Frames: newFrameLog(), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *Runner) Contender() Contender { return r.c }

func (r *Runner) loop() {
	defer close(r.done)
	for {
		r.runOnce()
		select {
		case <-r.stop:
			return
		default:
		}
		if r.c.RestartSec > 0 {
			timer := time.NewTimer(r.c.RestartSec)
			select {
			case <-r.stop:
				timer.Stop()
				return
			case <-timer.C:
			}
		}
	}
}

// runOnce runs the process once, until it exits or Stop kills it.
func (r *Runner) runOnce() {
	cmd := exec.Command(r.c.Path, r.c.Args...)
	cmd.Env = r.env
	// Own process group: a Ctrl-C on the bench does not reach the
	// contenders behind the supervisor's back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &tailWriter{max: 4 << 10}
	cmd.Stderr = stderr
	var stdout io.ReadCloser
	if r.c.Messages {
		var err error
		if stdout, err = cmd.StdoutPipe(); err != nil {
			r.recordFailure(fmt.Sprintf("stdout pipe: %v", err))
			return
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		r.recordFailure(fmt.Sprintf("frame pipe: %v", err))
		return
	}
	cmd.ExtraFiles = []*os.File{pw}
	cmd.WaitDelay = time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		r.recordFailure(fmt.Sprintf("start %s: %v", r.c.Path, err))
		return
	}
	pw.Close()
	r.mu.Lock()
	r.starts = append(r.starts, start)
	r.pid = cmd.Process.Pid
	r.mu.Unlock()

	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer pr.Close()
		_, _ = r.Frames.ReadFrom(pr)
	}()
	if stdout != nil {
		readers.Add(1)
		go func() {
			defer readers.Done()
			r.scanMessages(stdout)
		}()
	}
	waited := make(chan error, 1)
	go func() {
		readers.Wait() // stdout must be drained before Wait closes it
		waited <- cmd.Wait()
	}()
	var werr error
	select {
	case werr = <-waited:
	case <-r.stop:
		_ = cmd.Process.Kill()
		werr = <-waited
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exits = append(r.exits, time.Now())
	r.pid = 0
	if st := cmd.ProcessState; st != nil {
		r.cpu += st.UserTime() + st.SystemTime()
	}
	if werr != nil && !errors.Is(werr, exec.ErrWaitDelay) {
		r.lastErr = fmt.Sprintf("%v: %s", werr, lastLine(stderr.String()))
	}
}

func (r *Runner) scanMessages(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := parseBusLine(sc.Text()); ok {
			m.At = time.Now()
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
}

func (r *Runner) recordFailure(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.starts = append(r.starts, now)
	r.exits = append(r.exits, now)
	r.lastErr = msg
}

// Stop kills the running process and ends supervision; it returns once the
// process is reaped.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

// Starts returns the process start times.
func (r *Runner) Starts() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.starts...)
}

// Exits returns the process exit times.
func (r *Runner) Exits() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.exits...)
}

// CPU returns the CPU time (user+sys) of all finished runs.
func (r *Runner) CPU() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cpu
}

// PID is the running process's pid, 0 between runs.
func (r *Runner) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid
}

// Messages returns the reconnectbin messages seen so far.
func (r *Runner) Messages() []BusMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]BusMessage(nil), r.msgs...)
}

// LastError is the last exit error with the last stderr line.
func (r *Runner) LastError() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// countIn counts times within [from, to).
func countIn(ts []time.Time, from, to time.Time) int {
	n := 0
	for _, t := range ts {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}
