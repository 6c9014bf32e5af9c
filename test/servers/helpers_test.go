package servers

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probeTimeout bounds one ffprobe run against a live server.
const probeTimeout = 20 * time.Second

// requireH264 asserts that ffprobe finds an H.264 video stream of the given
// size at url (and an AAC stream if wantAudio).
func requireH264(t *testing.T, url string, width, height int, wantAudio bool, extraArgs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	streams, err := FFProbe(ctx, url, extraArgs...)
	if err != nil {
		t.Fatal(err)
	}
	var video, audio bool
	for _, s := range streams {
		switch {
		case s.CodecType == "video" && s.CodecName == "h264":
			if s.Width != width || s.Height != height {
				t.Errorf("%s: h264 stream is %dx%d, want %dx%d", url, s.Width, s.Height, width, height)
			}
			video = true
		case s.CodecType == "audio" && s.CodecName == "aac":
			audio = true
		}
	}
	if !video {
		t.Errorf("%s: no h264 video stream in %+v", url, streams)
	}
	if audio != wantAudio {
		t.Errorf("%s: aac audio present = %v, want %v (streams %+v)", url, audio, wantAudio, streams)
	}
}

// requireRefused asserts that nothing accepts TCP connections on addr.
func requireRefused(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("dial %s succeeded, want connection refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}

// member is one process of a process group, from /proc/PID/stat.
type member struct {
	pid, ppid int
	state     byte // R, S, D, T, t, Z...
}

// groupMembers lists the processes whose process group is pgid.
func groupMembers(t *testing.T, pgid int) []member {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var members []member
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // exited since the glob
		}
		// pid (comm) STATE PPID PGRP ...; comm may contain spaces and
		// parentheses, so the fields start after the last ')'.
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			t.Fatalf("unexpected format of %s: %q", path, s)
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 3 || len(fields[0]) != 1 {
			t.Fatalf("unexpected format of %s: %q", path, s)
		}
		pid, err1 := strconv.Atoi(strings.TrimSpace(s[:strings.IndexByte(s, ' ')]))
		ppid, err2 := strconv.Atoi(fields[1])
		pgrp, err3 := strconv.Atoi(fields[2])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("unexpected format of %s: %q", path, s)
		}
		if pgrp == pgid {
			members = append(members, member{pid: pid, ppid: ppid, state: fields[0][0]})
		}
	}
	return members
}

// groupStopped reports whether no process of group pgid can run: each is
// stopped by a signal (T), a zombie, or a vfork parent blocked on a stopped
// child. The last case is not rare: dash (Debian's /bin/sh) starts every
// external command with vfork, and a SIGSTOP that lands between the vfork
// and the child's exec stops the child while the shell waits for it in the
// kernel, uninterruptibly (state D), until SIGCONT. Asking only for the
// shell's state T failed about one pause in twenty.
func groupStopped(t *testing.T, pgid int) bool {
	members := groupMembers(t, pgid)
	stopped := func(m member) bool { return m.state == 'T' || m.state == 'Z' }
	for _, m := range members {
		if stopped(m) {
			continue
		}
		if m.state != 'D' {
			return false
		}
		childStopped := false
		for _, c := range members {
			if c.ppid == m.pid && c.state == 'T' {
				childStopped = true
			}
		}
		if !childStopped {
			return false
		}
	}
	return len(members) > 0
}

// groupResumed reports whether group pgid has members and none is stopped.
func groupResumed(t *testing.T, pgid int) bool {
	members := groupMembers(t, pgid)
	for _, m := range members {
		if m.state == 'T' {
			return false
		}
	}
	return len(members) > 0
}

// waitFor polls cond until it is true or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-ticker.C
	}
}

// requireGstClientPlays runs gst-launch-1.0 -v with the client pipeline
// description followed by a verbose fakesink, and asserts that buffers reach
// the sink: the way the relay itself consumes the server. It waits for
// buffers rather than EOS because a live hlsdemux ignores a downstream
// FLOW_EOS (num-buffers, identity eos-after) and keeps going.
func requireGstClientPlays(t *testing.T, description string) {
	t.Helper()
	args := append([]string{"-v"}, strings.Fields(description+" ! fakesink name=clientsink silent=false")...)
	client := StartProcess(t, ProcessOptions{Name: "gst-client", Path: GstLaunch, Args: args})
	const wantBuffers = 5
	deadline := time.Now().Add(probeTimeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for strings.Count(client.OutputTail(), "chain   ******* (clientsink:sink)") < wantBuffers {
		if time.Now().After(deadline) {
			t.Fatalf("client %q delivered < %d buffers in %v\n%s", description, wantBuffers, probeTimeout, client.OutputTail())
		}
		select {
		case <-client.Exited():
			t.Fatalf("client %q exited before %d buffers\n%s", description, wantBuffers, client.OutputTail())
		case <-ticker.C:
		}
	}
	if err := client.Kill(); err != nil {
		t.Fatal(err)
	}
}
