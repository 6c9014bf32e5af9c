package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// sourceOptions configures the flaky local camera stand-in.
type sourceOptions struct {
	Port int
	Env  []string
	// LogPath collects the output of every incarnation of the server.
	LogPath string
	// TimeOverlay burns the source's running time into the picture
	// (timeoverlay needs GStreamer's pango plugin, not always installed).
	TimeOverlay bool
}

// flakySource is a gst-launch-1.0 H.264/MPEG-TS server on 127.0.0.1 that the
// scheduler kills, restarts and freezes.
type flakySource struct {
	opts     sourceOptions
	children *children
	log      *os.File
	proc     *groupProcess
	// expectedExit is set while the demo itself kills the server, so that any
	// other exit can be reported as the source dying on its own.
	expectedExit bool
	// unexpectedExits counts incarnations that died without being killed.
	unexpectedExits int
	starts          int
}

// sourceArgs is the server's gst-launch-1.0 command line.
func sourceArgs(port int, timeOverlay bool) []string {
	args := []string{"gst-launch-1.0", "-q",
		"videotestsrc", "is-live=true", "pattern=ball", "!",
		"video/x-raw,width=640,height=360,framerate=25/1", "!"}
	if timeOverlay {
		args = append(args, "timeoverlay", "!")
	}
	return append(args,
		"x264enc", "tune=zerolatency", "speed-preset=ultrafast", "key-int-max=25", "!",
		"h264parse", "!", "mpegtsmux", "!",
		"tcpserversink", "host=127.0.0.1", "port="+strconv.Itoa(port))
}

func newFlakySource(opts sourceOptions, c *children) (*flakySource, error) {
	log, err := os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("source log: %w", err)
	}
	return &flakySource{opts: opts, children: c, log: log}, nil
}

// start launches a new incarnation of the server.
func (s *flakySource) start() error {
	s.noteExit()
	s.starts++
	fmt.Fprintf(s.log, "=== source start #%d ===\n", s.starts)
	p, err := s.children.start("source server", sourceArgs(s.opts.Port, s.opts.TimeOverlay), s.opts.Env, s.log, s.log)
	if err != nil {
		return err
	}
	s.proc = p
	s.expectedExit = false
	return nil
}

// waitListening waits until the server accepts TCP connections, so that the
// relay does not start with a burst of refused connections that would blur
// the demo's first fault.
func (s *flakySource) waitListening(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.opts.Port))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-s.proc.exited():
			return fmt.Errorf("the source server exited while starting (%s); see %s", s.proc.exitDescription(), s.opts.LogPath)
		case <-ctx.Done():
			return fmt.Errorf("the source server did not listen on %s within %v (last error: %v); see %s", addr, timeout, err, s.opts.LogPath)
		case <-tick.C:
		}
	}
}

// kill takes the server down hard: the port closes, clients see the
// connection drop and new connections are refused.
func (s *flakySource) kill() error {
	if s.proc == nil {
		return nil
	}
	s.noteExit()
	s.expectedExit = true
	if err := s.proc.kill(5 * time.Second); err != nil {
		return fmt.Errorf("killing the source server: %w", err)
	}
	return nil
}

// freeze stops the server without closing anything.
func (s *flakySource) freeze() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.signalGroup(syscall.SIGSTOP)
}

// noteExit counts an incarnation that died on its own.
func (s *flakySource) noteExit() {
	if s.proc != nil && !s.expectedExit && s.proc.hasExited() {
		s.unexpectedExits++
		s.expectedExit = true // count it once
	}
}

// diedOnItsOwn reports (once) a server exit that the demo did not cause.
func (s *flakySource) diedOnItsOwn() bool {
	before := s.unexpectedExits
	s.noteExit()
	return s.unexpectedExits > before
}

// close kills the current incarnation and closes the log.
func (s *flakySource) close() {
	_ = s.kill()
	s.log.Close()
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. The listener is
// closed again before the server binds it; the window is tiny and the server
// failing to bind is reported clearly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
