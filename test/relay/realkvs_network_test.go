package relay_test

import (
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/kvsendpoint"
)

// A network outage between kvssink and KVS loses nothing that fits in
// kvssink's buffer (issue #14 part 3): a 30 s and a 2 min cut (packets
// dropped, connections left hanging, as when a route goes away) and a link
// slower than the stream, each while a live source keeps encoding. After the
// network is back every frame of the run, those of the outage included, is
// persisted at the endpoint, in order, with no hole. kvssink is sized as the
// recipes size it for OUTAGE_BUDGET_S=150 (buffer-duration 180 s).
func TestRealKVSSinkNetworkCut(t *testing.T) {
	requireRealKVSSink(t)
	t.Parallel()
	video := []string{"reconnectbin", "name=r",
		"source=videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1",
		"!", "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "key-int-max=25", "bitrate=400", "!", "h264parse"}
	cases := []struct {
		name  string
		fault func(r *realRelay) error
		lasts time.Duration
	}{
		{"30 s cut", func(r *realRelay) error { return r.proxy.Timeout() }, 30 * time.Second},
		{"2 min cut", func(r *realRelay) error { return r.proxy.Timeout() }, 2 * time.Minute},
		// 25 KB/s is half of the stream's 400 kbit/s.
		{"slow link", func(r *realRelay) error { return r.proxy.BandwidthUp(25) }, 30 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startRealKVSRelay(t, realSetup{video: video, dataProxy: true,
				kvssink: []string{"buffer-duration=180", "storage-size=128"}})
			r.waitPersisted(t, 3, time.Time{}, "before the outage")
			if err := tc.fault(r); err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			// The outage itself: the scenario's length, not a wait for
			// anything.
			<-time.After(tc.lasts)
			r.proxy.Clear()
			restored := time.Now()
			// The backlog drains: a fragment from after the outage is
			// persisted once everything before it was (kvssink sends in order).
			var drained time.Duration
			r.waitFragments(t, 4*time.Minute, "fragments from after the outage persisted", func(frags []kvsendpoint.Fragment) bool {
				for _, f := range frags {
					if f.Persisted() && f.Timecode > restored.Add(2*time.Second).UnixMilli() {
						drained = time.Since(restored)
						return true
					}
				}
				return false
			})
			up := r.finish(t)
			first, last := up.video[0].Timecode, up.video[len(up.video)-1].Timecode
			if first > began.UnixMilli() || last < restored.UnixMilli() {
				t.Errorf("the uploaded video (%d..%d) does not span the outage (%d..%d)", first, last, began.UnixMilli(), restored.UnixMilli())
			}
			if gap := largestGap(up.video); gap > 2*frameInterval {
				t.Errorf("a %v hole in the uploaded video: frames of the outage were lost\n%s", gap, r.summary())
			}
			t.Logf("%s: %d video frames persisted over %v, largest gap %v, %d putMedia calls, backlog drained %v after the network came back",
				tc.name, len(up.video), span(up.video), largestGap(up.video), len(r.ep.Sessions(realStream)), drained.Round(100*time.Millisecond))
		})
	}
}
