package relay_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

func tsSource(port int) string {
	return fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse ! avdec_h264", port)
}

// The server dies (connection closed, then refused while it is down) and
// comes back: the relay keeps running and the recording continues.
func TestTSServerKilledAndRestarted(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{})
	r := startRelay(t, tsSource(srv.Port()), "stall-timeout="+sec(3*time.Second))
	r.waitStreaming(t)

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	first := r.WaitFor(20*time.Second, 1, "a restart after the server died", restartWithReason("error", "eos", "stall"))
	// While the server is down, attempts fail at start (connection refused).
	r.WaitFor(20*time.Second, 1, "a failed attempt while the server is down", restartWithReason("start-failed"))
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	rec := r.WaitFor(30*time.Second, 1, "recovery after the server came back", recovered)
	r.waitGrowth(t, 20*time.Second)

	outage := nsField(t, rec, "outage")
	if outage <= 0 || rec.At.Sub(first.At) > outage+2*time.Second {
		t.Errorf("recovered message says outage %v; the restart was announced %v before it", outage, rec.At.Sub(first.At))
	}
	packets := r.finish(t)
	t.Logf("outage %v, largest output gap %v, %d packets", outage, harness.LargestGap(packets), len(packets))
	// The output has a hole as long as the outage, not a timestamp reset.
	if gap := harness.LargestGap(packets); gap < outage/2 {
		t.Errorf("largest timestamp gap %v is much shorter than the outage %v: timestamps were not kept on the clock", gap, outage)
	}
}

// SIGSTOP freezes the server with the connection open: no error, no EOS,
// only silence. stall-timeout catches it.
func TestTSServerFrozenIsAStall(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{})
	r := startRelay(t, tsSource(srv.Port()), "stall-timeout="+sec(2*time.Second))
	r.waitStreaming(t)

	if err := srv.Process().Pause(); err != nil {
		t.Fatal(err)
	}
	stall := r.WaitFor(15*time.Second, 1, "a stall restart", restartWithReason("stall"))
	if stall.Field("error") == "" {
		t.Errorf("stall restart carries no error text: %q", stall.Text)
	}
	if err := srv.Process().Resume(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(30*time.Second, 1, "recovery after the server thawed", recovered)
	r.waitGrowth(t, 20*time.Second)
	r.finish(t)
}

// Operator's Ctrl-C (gst-launch -e) in the middle of an outage still ends the
// pipeline promptly and leaves a finished file.
func TestApplicationEOSDuringOutage(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{})
	r := startRelay(t, tsSource(srv.Port()), "stall-timeout="+sec(2*time.Second))
	r.waitStreaming(t)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(20*time.Second, 2, "the outage to be under way", harness.Element("reconnectbin-restart"))
	r.finish(t)
}
