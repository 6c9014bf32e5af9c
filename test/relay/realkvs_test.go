package relay_test

// The relay against the REAL kvssink (make test-kvssink, KVSSINK_PLUGIN_DIR
// set) uploading to the local KVS endpoint (test/kvsendpoint), with
// kvscredprovider feeding it credentials from the fake IMDS. What is
// asserted is what AWS would have stored: the endpoint's fragments. In the
// default (stand-in) mode these tests skip; the stand-in tests in
// kvs_test.go cover the same paths.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/kvsendpoint"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

const (
	realRegion = "us-west-2"
	realStream = "kvsrelay-real-kvssink"
	// realStopTimeout covers kvssink's drain at shutdown (stop-stream-timeout
	// is 120 s when ACKs stop coming).
	realStopTimeout = 150 * time.Second
)

func requireRealKVSSink(t *testing.T) {
	t.Helper()
	if _, ok := harness.RealKVSSink(); !ok {
		t.Skip("no real kvssink: set KVSSINK_PLUGIN_DIR (make test-kvssink)")
	}
}

// realRelay is `kvscredprovider reconnectbin(source) ! x264 ! caps ! kvssink`
// run by gst-launch-1.0 with the real kvssink uploading to a local endpoint.
type realRelay struct {
	*harness.Launch
	ep   *kvsendpoint.Server
	imds *imdsfake.Server
}

func startRealKVSRelay(t *testing.T, imdsOpts imdsfake.Options, refreshBefore time.Duration, sourcePort int) *realRelay {
	t.Helper()
	imdsfake.ClearAWSEnv(t)
	imds := imdsfake.Start(t, imdsOpts)
	ep := kvsendpoint.Start(t, kvsendpoint.Options{
		Validate: kvsendpoint.ValidateIssued(imds),
		Secret:   kvsendpoint.SecretIssued(imds),
		Region:   realRegion,
	})
	env := harness.KVSSinkEnv(t, ep.URL(), realRegion, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL())
	args := []string{"kvscredprovider", "refresh-before=" + sec(refreshBefore),
		"credential-path=" + filepath.Join(t.TempDir(), "credential"),
		"reconnectbin", tsSource(sourcePort), "stall-timeout=" + sec(2*time.Second), "!"}
	args = append(args, strings.Fields(encode)...)
	args = append(args, "!", kvsCaps, "!", "kvssink", "stream-name="+realStream)
	return &realRelay{Launch: harness.StartLaunch(t, env, args...), ep: ep, imds: imds}
}

// waitFragments waits until cond holds for the stream's fragments.
func (r *realRelay) waitFragments(t *testing.T, timeout time.Duration, what string, cond func([]kvsendpoint.Fragment) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := r.ep.WaitFor(ctx, func() bool { return cond(r.ep.Fragments(realStream)) || r.Exited() })
	if r.Exited() {
		t.Fatalf("waiting for %s: gst-launch-1.0 exited (code %d)\n%s", what, r.ExitCode(), r.summary())
	}
	if err != nil {
		t.Fatalf("waiting for %s: %v\n%s", what, err, r.summary())
	}
}

// summary describes what the endpoint saw, for failure messages.
func (r *realRelay) summary() string {
	var b strings.Builder
	for _, c := range r.ep.Calls() {
		fmt.Fprintf(&b, "call %s %s %s %d %s\n", c.Time.Format("15:04:05.000"), c.Path, kvsendpoint.MaskKey(c.AccessKeyID), c.Status, c.ErrorType)
	}
	for i, s := range r.ep.Sessions(realStream) {
		fmt.Fprintf(&b, "session %d key %s %s-%s fragments %d err %q\n", i, kvsendpoint.MaskKey(s.AccessKeyID),
			s.Start.Format("15:04:05"), s.End.Format("15:04:05"), s.Fragments, s.Err)
	}
	for _, rj := range r.ep.Rejections() {
		fmt.Fprintf(&b, "rejected %s %s: %s\n", rj.Path, rj.ErrorType, rj.Reason)
	}
	frags := r.ep.Fragments(realStream)
	fmt.Fprintf(&b, "%d fragments", len(frags))
	if n := len(frags); n > 0 {
		fmt.Fprintf(&b, ", last timecode %d", frags[n-1].Timecode)
	}
	return b.String()
}

func persistedAfter(frags []kvsendpoint.Fragment, after time.Time) int {
	n := 0
	for _, f := range frags {
		if f.Persisted() && f.Frames > 0 && f.Received.After(after) {
			n++
		}
	}
	return n
}

// finish stops the relay with EOS and checks what holds for every upload:
// a clean exit, no ERROR on the bus, every request made with credentials
// the IMDS issued and that had not expired, persisted fragments with
// strictly increasing timecodes, each starting on a keyframe with frames
// in it, one codec private data throughout. It returns the persisted
// fragments.
func (r *realRelay) finish(t *testing.T) []kvsendpoint.Fragment {
	t.Helper()
	if r.Exited() {
		t.Fatalf("gst-launch-1.0 quit by itself (exit %d)\n%s", r.ExitCode(), r.summary())
	}
	r.Interrupt()
	if code := r.Wait(realStopTimeout); code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d after EOS\n%s", code, r.summary())
	}
	if n := r.Count(harness.OfType("error")); n != 0 {
		t.Errorf("%d ERRORs on the bus", n)
	}
	if rej := r.ep.Rejections(); len(rej) != 0 {
		t.Errorf("the endpoint refused %d requests' credentials: %+v", len(rej), rej)
	}
	for i, s := range r.ep.Sessions(realStream) {
		is, ok := r.imds.Lookup(s.AccessKeyID)
		if !ok {
			t.Errorf("putMedia %d signed with %s, which the IMDS never issued", i, kvsendpoint.MaskKey(s.AccessKeyID))
			continue
		}
		if !s.Start.Before(is.Expiration) {
			t.Errorf("putMedia %d started at %s with %s, expired at %s", i, s.Start, kvsendpoint.MaskKey(s.AccessKeyID), is.Expiration)
		}
		if s.FragmentTimecodeType != "ABSOLUTE" || !s.AckRequired {
			t.Errorf("putMedia %d: timecode type %q, acks required %v", i, s.FragmentTimecodeType, s.AckRequired)
		}
	}

	var persisted []kvsendpoint.Fragment
	incomplete := 0
	for _, f := range r.ep.Fragments(realStream) {
		if f.ErrorID != 0 {
			t.Errorf("fragment %s (timecode %d) got ERROR %d", f.Number, f.Timecode, f.ErrorID)
		}
		if !f.Persisted() {
			incomplete++ // cut off with its putMedia call; kvssink sends it again
			continue
		}
		persisted = append(persisted, f)
	}
	if len(persisted) == 0 {
		t.Fatalf("no fragment persisted\n%s", r.summary())
	}
	for i, f := range persisted {
		if !f.KeyframeFirst || f.Frames == 0 {
			t.Errorf("fragment %d (timecode %d): keyframe first %v, %d frames", i, f.Timecode, f.KeyframeFirst, f.Frames)
		}
		if i > 0 && f.Timecode <= persisted[i-1].Timecode {
			t.Errorf("fragment %d timecode %d after %d: not increasing", i, f.Timecode, persisted[i-1].Timecode)
		}
		if string(f.CodecPrivate) != string(persisted[0].CodecPrivate) {
			t.Errorf("fragment %d (timecode %d) carries other codec private data than the first", i, f.Timecode)
		}
	}
	calls := r.ep.Calls()
	if len(calls) < 2 || calls[0].Path != kvsendpoint.PathDescribeStream || calls[0].Status != 404 || calls[1].Path != kvsendpoint.PathCreateStream {
		t.Errorf("kvssink did not describe (404) then create the stream:\n%s", r.summary())
	}
	t.Logf("%d fragments persisted, %d cut off, %d putMedia calls", len(persisted), incomplete, len(r.ep.Sessions(realStream)))
	return persisted
}

// The camera dies and comes back: kvssink keeps uploading on the same
// timeline, the fragments after recovery start on keyframes and carry
// frames, and the codec private data never changes.
func TestRealKVSSinkRelay(t *testing.T) {
	requireRealKVSSink(t)
	port := servers.FreePort(t)
	srv := servers.NewTSServer(t, servers.TSOptions{Port: port})
	r := startRealKVSRelay(t, imdsfake.Options{}, 5*time.Minute, port)
	r.waitFragments(t, 90*time.Second, "3 persisted fragments", func(f []kvsendpoint.Fragment) bool {
		return persistedAfter(f, time.Time{}) >= 3
	})

	for i := 1; i <= 2; i++ {
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		r.WaitFor(30*time.Second, i, "a restart", harness.Element("reconnectbin-restart"))
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		r.WaitFor(30*time.Second, i, "recovery", recovered)
		back := time.Now()
		r.waitFragments(t, 60*time.Second, fmt.Sprintf("3 fragments after recovery %d", i), func(f []kvsendpoint.Fragment) bool {
			return persistedAfter(f, back) >= 3
		})
	}
	persisted := r.finish(t)
	if len(persisted) < 9 {
		t.Errorf("only %d fragments persisted over three streaming phases", len(persisted))
	}
}

// Credentials rotate every few minutes: kvssink re-reads the provider's
// file before its key expires and starts a new putMedia call with the new
// key; the timeline continues and no request ever carries an unknown or
// expired key.
func TestRealKVSSinkCredentialRotation(t *testing.T) {
	requireRealKVSSink(t)
	srv := servers.NewTSServer(t, servers.TSOptions{})
	// 3-minute credentials, rotated by the fake once less than 2m57s is
	// left, fetched by the provider 2m56s before expiry: every re-read by
	// kvssink (38 s before the expiry it cached) finds a newer key.
	r := startRealKVSRelay(t, imdsfake.Options{Lifetime: 3 * time.Minute, RotateBefore: 2*time.Minute + 57*time.Second},
		2*time.Minute+56*time.Second, srv.Port())
	r.waitFragments(t, 90*time.Second, "3 persisted fragments", func(f []kvsendpoint.Fragment) bool {
		return persistedAfter(f, time.Time{}) >= 3
	})
	first := r.ep.Sessions(realStream)[0].AccessKeyID
	var rotatedAt time.Time
	r.waitFragments(t, 5*time.Minute, "a putMedia call with a new key", func([]kvsendpoint.Fragment) bool {
		for _, s := range r.ep.Sessions(realStream) {
			if s.AccessKeyID != first {
				rotatedAt = s.Start
				return true
			}
		}
		return false
	})
	r.waitFragments(t, 60*time.Second, "3 fragments after the rotation", func(f []kvsendpoint.Fragment) bool {
		return persistedAfter(f, rotatedAt) >= 3
	})
	persisted := r.finish(t)

	// No hole at the rotation: the largest step between persisted
	// fragments stays near the fragment duration (key-int-max=25 at 25 fps
	// is one second), far below the 30+ s a lapse would leave.
	var largest int64
	for i := 1; i < len(persisted); i++ {
		largest = max(largest, persisted[i].Timecode-persisted[i-1].Timecode)
	}
	if largest > 5000 {
		t.Errorf("a %d ms gap between persisted fragments around the key rotation", largest)
	}
}
