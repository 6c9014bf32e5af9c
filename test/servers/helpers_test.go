package servers

import (
	"context"
	"errors"
	"net"
	"os"
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

// processState returns the state letter from /proc/PID/stat (R, S, T, Z...).
func processState(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// pid (comm) STATE ...; comm may contain spaces, so cut after ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		t.Fatalf("unexpected /proc stat format: %q", s)
	}
	return s[i+2 : i+3]
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
