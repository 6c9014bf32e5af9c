package ops_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
)

// Under systemd, a kvssink whose fragments are never persisted (the
// stand-in playing a service that takes data without acknowledging it)
// stops the watchdog pings once kvscredprovider judges the upload wedged
// (ack-timeout 10 s, buffer-duration 10 s), with a STATUS= line naming it,
// while reconnectbin's data keeps flowing; the EMF lines of the kvssink's
// stream carry the growing ack age.
func TestWatchdogStopsWhileTheUploadIsWedged(t *testing.T) {
	sock := newNotifySocket(t)
	imds := imdsfake.Start(t, imdsfake.Options{})
	metrics := filepath.Join(t.TempDir(), "metrics.log")
	cred := filepath.Join(harness.PrivateDir(t), "credential")
	const watchdog = 6 * time.Second
	env := harness.Env(t, "NOTIFY_SOCKET="+sock.path, "WATCHDOG_USEC="+strconv.FormatInt(watchdog.Microseconds(), 10),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL(), "KVSRELAY_METRICS="+metrics, "KVSRELAY_METRICS_INTERVAL=1s")
	l := harness.StartLaunch(t, env, "kvscredprovider", "name=cp", "ack-timeout=10000000000", "credential-path="+cred,
		"reconnectbin", "source=videotestsrc is-live=true", "!", "x264enc", "tune=zerolatency", "speed-preset=ultrafast",
		"key-int-max=30", "!", "h264parse", "!", "video/x-h264,stream-format=avc,alignment=au", "!",
		"kvssink", "name=sink", "stream-name=cam", "buffer-duration=10", "acks=hold")
	sock.waitFor(t, "READY=1", 30*time.Second)
	sock.waitFor(t, "WATCHDOG=1", 2*watchdog)
	sock.waitFor(t, "sink: upload wedged: no PERSISTED ack for", 60*time.Second)
	l.WaitFor(30*time.Second, 1, "upload-stalled", harness.Element("kvscredprovider-upload-stalled"))

	deadline := time.Now().Add(40 * time.Second)
	for sock.countWithin("WATCHDOG=1", watchdog+time.Second) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay kept pinging the watchdog while its upload was wedged")
		}
	}
	var ackAge float64
	harness.WaitUntil(t, 20*time.Second, "an EMF line with the ack age past the timeout", func() bool {
		data, _ := os.ReadFile(metrics)
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m["StreamName"] != "cam" {
				continue
			}
			if v, ok := m["UploadAckAgeSeconds"].(float64); ok && v > ackAge {
				ackAge = v
			}
		}
		return ackAge >= 10
	})
	if l.Exited() {
		t.Fatalf("gst-launch-1.0 exited (%d)", l.ExitCode())
	}
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Errorf("gst-launch-1.0 exited %d after EOS", code)
	}
}
