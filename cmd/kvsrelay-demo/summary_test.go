package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const sec = time.Second

func restartAt(at time.Duration, reason string) relayEvent {
	return relayEvent{Kind: eventRestart, At: at, Reason: reason, Error: "x", Attempt: 1}
}

func recoveredAt(at, outage time.Duration) relayEvent {
	return relayEvent{Kind: eventRecovered, At: at, Outage: outage, Attempts: 1}
}

func TestAnalyseFaults(t *testing.T) {
	kill := faultRecord{State: sourceKilled, Start: 8 * sec, End: 13 * sec}
	freeze := faultRecord{State: sourceFrozen, Start: 24 * sec, End: 30 * sec}
	tests := []struct {
		name           string
		restarts       []relayEvent
		recoveries     []relayEvent
		wantDetected   []bool
		wantRecovered  []bool
		wantStall      []bool
		wantTotals     []int
		wantUnprovoked int
		wantBackAfter  []time.Duration
	}{
		{
			name:          "both faults caught and healed",
			restarts:      []relayEvent{restartAt(8*sec, "eos"), restartAt(9*sec, "start-failed"), restartAt(26*sec, "stall"), restartAt(30*sec, "error")},
			recoveries:    []relayEvent{recoveredAt(14*sec, 6*sec), recoveredAt(32*sec, 6*sec)},
			wantDetected:  []bool{true, true},
			wantRecovered: []bool{true, true},
			wantStall:     []bool{false, true},
			wantTotals:    []int{2, 2},
			wantBackAfter: []time.Duration{1 * sec, 2 * sec},
		},
		{
			name:          "freeze never noticed",
			restarts:      []relayEvent{restartAt(8*sec, "eos")},
			recoveries:    []relayEvent{recoveredAt(14*sec, 6*sec)},
			wantDetected:  []bool{true, false},
			wantRecovered: []bool{true, false},
			wantStall:     []bool{false, false},
			wantTotals:    []int{1, 0},
			wantBackAfter: []time.Duration{1 * sec, 0},
		},
		{
			name: "kill never recovered: the recovery in the next window does not count for it",
			restarts: []relayEvent{restartAt(8*sec, "eos"), restartAt(12*sec, "start-failed"),
				restartAt(26*sec, "stall")},
			recoveries:    []relayEvent{recoveredAt(31*sec, 5*sec)},
			wantDetected:  []bool{true, true},
			wantRecovered: []bool{false, true},
			wantStall:     []bool{false, true},
			wantTotals:    []int{2, 1},
			wantBackAfter: []time.Duration{0, 1 * sec},
		},
		{
			name:           "a restart before any fault is unprovoked",
			restarts:       []relayEvent{restartAt(2*sec, "stall"), restartAt(8*sec, "eos"), restartAt(26*sec, "stall")},
			recoveries:     []relayEvent{recoveredAt(3*sec, sec), recoveredAt(14*sec, 6*sec), recoveredAt(31*sec, 5*sec)},
			wantDetected:   []bool{true, true},
			wantRecovered:  []bool{true, true},
			wantStall:      []bool{false, true},
			wantTotals:     []int{1, 1},
			wantUnprovoked: 1,
			wantBackAfter:  []time.Duration{1 * sec, 1 * sec},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcomes, unprovoked := analyseFaults([]faultRecord{kill, freeze}, tt.restarts, tt.recoveries, 45*sec)
			if len(unprovoked) != tt.wantUnprovoked {
				t.Errorf("unprovoked = %d, want %d", len(unprovoked), tt.wantUnprovoked)
			}
			for i, o := range outcomes {
				if o.Detected != tt.wantDetected[i] || o.Recovered != tt.wantRecovered[i] || o.SawStall != tt.wantStall[i] || o.Total != tt.wantTotals[i] {
					t.Errorf("fault %d: detected=%v recovered=%v stall=%v total=%d, want %v %v %v %d",
						i, o.Detected, o.Recovered, o.SawStall, o.Total, tt.wantDetected[i], tt.wantRecovered[i], tt.wantStall[i], tt.wantTotals[i])
				}
				if o.Recovered && o.BackAfter != tt.wantBackAfter[i] {
					t.Errorf("fault %d: recovered %v after the source came back, want %v", i, o.BackAfter, tt.wantBackAfter[i])
				}
			}
		})
	}
}

// passingFacts is a run in which everything went right.
func passingFacts() runFacts {
	tr := &tracker{}
	for _, ev := range []relayEvent{
		{Kind: eventPlaying},
		restartAt(8*sec, "eos"), restartAt(9*sec, "start-failed"), recoveredAt(14*sec, 6*sec),
		restartAt(26*sec, "stall"), recoveredAt(31*sec, 5*sec),
	} {
		tr.apply(ev)
	}
	faults := []faultRecord{{sourceKilled, 8 * sec, 13 * sec}, {sourceFrozen, 24 * sec, 30 * sec}}
	outcomes, unprovoked := analyseFaults(faults, tr.restarts, tr.recoveries, 45*sec)
	return runFacts{
		Outcomes: outcomes, Unprovoked: unprovoked, Tracker: tr,
		Sink:      relaySink{MKVPath: "/tmp/out.mkv"},
		Recording: &recordingCheck{Frames: 900, Keyframes: 36, Start: 1, End: 44, Gaps: []gap{{8, 6}, {24, 7}}},
		StopTook:  20 * time.Millisecond,
		LogDir:    "/tmp/logs",
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		name   string
		change func(*runFacts)
		want   string // "" means pass; otherwise a fragment of one problem
	}{
		{name: "all good", change: func(*runFacts) {}},
		{name: "relay exited early", change: func(r *runFacts) {
			r.RelayExitedEarly, r.RelayExit, r.RelayExitAt = true, "exit status 1", 9*sec
		}, want: "exited on its own at 9.0s (exit status 1)"},
		{name: "hung at shutdown", change: func(r *runFacts) { r.StopForced = true }, want: "had to be killed"},
		{name: "timestamps backwards", change: func(r *runFacts) {
			r.Recording.Backsteps = []backstep{{Packet: 50, Field: "dts", From: 2.96, To: 0.3}}
		}, want: "timestamps go backwards 1 time(s)"},
		{name: "decode errors", change: func(r *runFacts) {
			r.DecodeProblems = []string{"[h264 @ 0x1] no frame!"}
		}, want: "ffmpeg reported 1 decoding error(s)"},
		{name: "empty recording", change: func(r *runFacts) { r.Recording = &recordingCheck{} }, want: "no video frames"},
		{name: "ffprobe failed", change: func(r *runFacts) {
			r.Recording, r.RecordingErr = nil, errors.New("ffprobe /tmp/out.mkv: exit status 1")
		}, want: "checking the recording"},
		{name: "no stall restart for the freeze", change: func(r *runFacts) {
			r.Outcomes[1].SawStall = false
		}, want: "stall detection did not fire"},
		{name: "freeze not recovered", change: func(r *runFacts) {
			r.Outcomes[1].Recovered = false
		}, want: "fault #2 (source frozen at 24.0s): the relay did not recover"},
		{name: "kvssink run is not judged on a local file", change: func(r *runFacts) {
			r.Sink, r.Recording = relaySink{KVSStreamName: "cam"}, nil
		}},
		{name: "source died", change: func(r *runFacts) { r.SourceDied = 1 }, want: "test source died on its own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := passingFacts()
			tt.change(&r)
			var out bytes.Buffer
			ok := writeSummary(&out, r)
			problems := r.problems()
			if tt.want == "" {
				if !ok || len(problems) > 0 || !strings.Contains(out.String(), "RESULT: PASS") {
					t.Fatalf("want a pass, got problems %q:\n%s", problems, out.String())
				}
				return
			}
			if ok || !strings.Contains(out.String(), "RESULT: FAIL") {
				t.Fatalf("want a failure, summary says:\n%s", out.String())
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("problems %q lack %q", problems, tt.want)
			}
			if !strings.Contains(out.String(), r.LogDir) {
				t.Errorf("a failing summary must say where the logs are:\n%s", out.String())
			}
		})
	}
}

// The end-to-end test and scripts read this line; keep its shape.
var restartsLine = regexp.MustCompile(`(?m)^Restarts: (\d+) \(error=(\d+), eos=(\d+), stall=(\d+), start-failed=(\d+)\)$`)

func TestSummaryRestartsLine(t *testing.T) {
	var out bytes.Buffer
	writeSummary(&out, passingFacts())
	m := restartsLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no Restarts line in:\n%s", out.String())
	}
	if got := m[1] + " " + m[3] + " " + m[4] + " " + m[5]; got != "3 1 1 1" {
		t.Errorf("restarts total/eos/stall/start-failed = %s, want 3 1 1 1", got)
	}
	if !strings.Contains(out.String(), "Total outage 11.0s (reconnectbin's measure) for 11.0s of injected faults") {
		t.Errorf("summary lacks the outage total:\n%s", out.String())
	}
}

func TestTrackerStatus(t *testing.T) {
	tr := &tracker{}
	if got := tr.status(sec, false); got != "starting" {
		t.Errorf("before PLAYING: %q", got)
	}
	tr.apply(relayEvent{Kind: eventPlaying})
	if got := tr.status(2*sec, false); got != "running" {
		t.Errorf("playing: %q", got)
	}
	tr.apply(restartAt(8*sec, "eos"))
	tr.apply(restartAt(9*sec, "start-failed"))
	if got := tr.status(11500*time.Millisecond, false); got != "retrying for 3.5s" {
		t.Errorf("retrying since the FIRST restart of the outage: %q", got)
	}
	tr.apply(recoveredAt(12*sec, 4*sec))
	if got := tr.status(13*sec, false); got != "running" {
		t.Errorf("after recovery: %q", got)
	}
	if got, ok := tr.lastOutage(); !ok || got != 4*sec {
		t.Errorf("lastOutage = %v %v", got, ok)
	}
	if got := tr.status(14*sec, true); got != "EXITED" {
		t.Errorf("exited: %q", got)
	}
	tr.apply(restartAt(20*sec, "surprise"))
	if got := formatReasons(tr.restartsByReason()); got != "error=0, eos=1, stall=0, start-failed=1, surprise=1" {
		t.Errorf("formatReasons = %q (unknown reasons must still be counted)", got)
	}
}

func TestChildEnv(t *testing.T) {
	userDir := t.TempDir()      // e.g. where kvssink lives: kept
	installedDir := t.TempDir() // holds another copy of our plugin: dropped
	if err := os.WriteFile(filepath.Join(installedDir, pluginFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := childEnv([]string{
		"PATH=/usr/bin",
		"GST_REGISTRY=/home/u/.cache/registry.bin",
		"GST_REGISTRY_1_0=/home/u/.cache/registry2.bin",
		"GST_PLUGIN_SYSTEM_PATH_1_0=/home/u/.local/share/gstreamer-1.0/plugins",
		"GST_PLUGIN_PATH=" + userDir + ":" + installedDir + "::/work/build",
		"GST_DEBUG=2",
	}, "/work/build", "/usr/lib/x86_64-linux-gnu/gstreamer-1.0", "/tmp/d/registry.bin")
	want := []string{
		"PATH=/usr/bin",
		"GST_DEBUG=2",
		"GST_REGISTRY=/tmp/d/registry.bin",
		"GST_PLUGIN_PATH=/work/build:" + userDir,
		"GST_PLUGIN_SYSTEM_PATH_1_0=/usr/lib/x86_64-linux-gnu/gstreamer-1.0",
	}
	if !slices.Equal(env, want) {
		t.Errorf("childEnv =\n%q\nwant\n%q", env, want)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: []string{"-plugin-dir", "build"}},
		{args: []string{}, wantErr: "-plugin-dir is required"},
		{args: []string{"-plugin-dir", "build", "-duration", "10s"}, wantErr: "-duration 10s is too short"},
		{args: []string{"-plugin-dir", "build", "-stream-name", "bad name"}, wantErr: `-stream-name "bad name"`},
		{args: []string{"-plugin-dir", "build", "-out", ""}, wantErr: "-out must name a file"},
		{args: []string{"-plugin-dir", "build", "extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(strings.Join(tt.args, " ")), func(t *testing.T) {
			_, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
