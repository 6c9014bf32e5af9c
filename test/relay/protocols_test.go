package relay_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/servers"
)

// SRT: the relay calls a listener that is restarted (a camera gateway or an
// encoder rebooting).
func TestSRTSenderRestarted(t *testing.T) {
	srv := servers.NewSRTSender(t, servers.SRTOptions{})
	r := startRelay(t, fmt.Sprintf("source=srtsrc uri=%s ! tsdemux ! h264parse ! avdec_h264", srv.URL()),
		"stall-timeout="+sec(3*time.Second))
	r.waitStreaming(t)

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(30*time.Second, 1, "a restart after the sender died", restartWithReason("error", "eos", "stall", "start-failed"))
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(40*time.Second, 1, "recovery after the sender came back", recovered)
	r.waitGrowth(t, 20*time.Second)
	r.finish(t)
}

// RTSP: a camera (Debian's gst-rtsp-server) reboots.
func TestRTSPServerRestarted(t *testing.T) {
	srv := servers.NewRTSPServer(t, servers.RTSPOptions{})
	r := startRelay(t, fmt.Sprintf("source=rtspsrc location=%s latency=200 ! rtph264depay ! h264parse ! avdec_h264", srv.URL()),
		"stall-timeout="+sec(3*time.Second))
	r.waitStreaming(t)

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(30*time.Second, 1, "a restart after the camera died", restartWithReason("error", "eos", "stall", "start-failed"))
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(40*time.Second, 1, "recovery after the camera came back", recovered)
	r.waitGrowth(t, 20*time.Second)
	r.finish(t)
}

// Network faults between the relay and an MPEG-TS server, through toxiproxy.
func TestNetworkFaults(t *testing.T) {
	cases := []struct {
		name string
		// inject breaks the path; the relay must notice and restart.
		inject func(*servers.Proxy) error
	}{
		{"reset_peer", (*servers.Proxy).ResetPeer},
		{"timeout", (*servers.Proxy).Timeout},
		// A link far too slow for the stream (1 KB/s for ~50 KB/s) delivers a
		// frame every few seconds: with stall-timeout=1s that is a stall too.
		{"bandwidth", func(p *servers.Proxy) error { return p.Bandwidth(1) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := servers.NewTSServer(t, servers.TSOptions{})
			proxy := servers.NewProxy(t, srv.Addr())
			r := startRelay(t, tsSource(proxy.Port()), "stall-timeout="+sec(time.Second))
			r.waitStreaming(t)

			if err := tc.inject(proxy); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(30*time.Second, 1, "a restart under "+tc.name, restartWithReason("error", "eos", "stall", "start-failed"))
			proxy.Clear()
			r.WaitFor(40*time.Second, 1, "recovery once the network is clean", recovered)
			r.waitGrowth(t, 20*time.Second)
			r.finish(t)
		})
	}
}

// Latency alone is not a failure: a link with 300 ms of added delay keeps
// streaming without a single restart.
func TestNetworkLatencyIsNotAFailure(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{})
	proxy := servers.NewProxy(t, srv.Addr())
	if err := proxy.Latency(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, tsSource(proxy.Port()), "stall-timeout="+sec(2*time.Second))
	r.waitStreaming(t)
	for i := 0; i < 3; i++ {
		r.waitGrowth(t, 20*time.Second)
	}
	if n := len(r.restarts()); n != 0 {
		t.Errorf("%d restarts on a slow but healthy link", n)
	}
	r.finish(t)
}
