package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// blockedStart matches the restart that follows a start stuck in its state
// change.
func blockedStart(m harness.Message) bool {
	return m.Name == "reconnectbin-restart" && m.Field("reason") == "start-failed" &&
		strings.Contains(m.Field("error"), "did not complete")
}

// waitConnecting waits until a client is stuck connecting to hole.
func waitConnecting(t *testing.T, hole *servers.BlackHole) {
	t.Helper()
	harness.WaitUntil(t, 30*time.Second, "a connect blocked on the black hole", func() bool {
		n, err := hole.Connecting()
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
}

// A camera whose connect hangs (a firewall dropping packets) holds
// tcpclientsrc inside its state change for minutes. reconnectbin counts a
// start that has not completed within stall-timeout as a failed start,
// leaves the stuck instance behind and keeps trying, so the relay is back as
// soon as the camera answers.
func TestBlockedConnectIsAFailedStart(t *testing.T) {
	hole := servers.NewBlackHole(t)
	port := hole.Port()
	r := startKVSRelay(t, []string{fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse", port),
		"stall-timeout=" + sec(time.Second), "max-retry-delay=" + sec(500*time.Millisecond)}, "")
	r.WaitFor(30*time.Second, 2, "two starts that did not complete", blockedStart)
	hole.Close()
	servers.NewTSServer(t, servers.TSOptions{Port: port})
	r.WaitFor(40*time.Second, 1, "recovery", recovered)
	r.waitAccepted(t, 25, 30*time.Second)
	rep := r.finish(t)
	if rep.CapsChanges != 0 {
		t.Errorf("caps changed: %+v", rep.Caps)
	}
}

// Ctrl-C while the source is stuck connecting ends the relay cleanly at
// once: neither EOS nor the way to NULL waits for the kernel's connect
// timeout (minutes), so systemd's stop and restart are not held up.
func TestCtrlCDuringABlockedStartEndsPromptly(t *testing.T) {
	hole := servers.NewBlackHole(t)
	r := startKVSRelay(t, []string{fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse", hole.Port()),
		"stall-timeout=" + sec(60*time.Second)}, "")
	waitConnecting(t, hole)
	r.Interrupt()
	// The kernel gives up on the connect after about two minutes; half a
	// minute tells a prompt end from one that waited for it.
	code := r.Wait(30 * time.Second)
	if !r.Exited() {
		t.Fatal("gst-launch-1.0 still running 30 s after Ctrl-C with the source stuck connecting")
	}
	if code != 0 {
		t.Errorf("gst-launch-1.0 exited %d after Ctrl-C, want 0 (EOS)", code)
	}
}
