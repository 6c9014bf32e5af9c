package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseLaunchLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    relayEvent
		wantOK  bool
		wantErr string
	}{
		{
			name:   "restart after eos",
			line:   `Got message #207 from element "reconnectbin0" (element): reconnectbin-restart, attempt=(int)1, delay=(guint64)204471008, reason=(string)eos, error=(string)"end\ of\ stream";`,
			want:   relayEvent{Kind: eventRestart, Reason: "eos", Error: "end of stream", Attempt: 1, Delay: 204471008},
			wantOK: true,
		},
		{
			name:   "restart, fields in another order",
			line:   `Got message #603 from element "reconnectbin0" (element): reconnectbin-restart, reason=(string)start-failed, error=(string)"tcpclientsrc2:\ Could\ not\ open\ resource\ for\ reading.", attempt=(int)3, delay=(guint64)962916796;`,
			want:   relayEvent{Kind: eventRestart, Reason: "start-failed", Error: "tcpclientsrc2: Could not open resource for reading.", Attempt: 3, Delay: 962916796},
			wantOK: true,
		},
		{
			name:   "error text with a comma, a quote and non-ASCII (octal escapes)",
			line:   `Got message #9 from element "cam1" (element): reconnectbin-restart, reason=(string)error, error=(string)"a\,\ \"b\"\ \303\251", attempt=(int)2, delay=(guint64)5;`,
			want:   relayEvent{Kind: eventRestart, Reason: "error", Error: `a, "b" é`, Attempt: 2, Delay: 5},
			wantOK: true,
		},
		{
			name:   "recovered",
			line:   `Got message #247 from element "reconnectbin0" (element): reconnectbin-recovered, outage=(guint64)209802876, attempts=(int)1;`,
			want:   relayEvent{Kind: eventRecovered, Outage: 209802876, Attempts: 1},
			wantOK: true,
		},
		{
			name:   "recovered, fields swapped",
			line:   `Got message #9 from element "reconnectbin0" (element): reconnectbin-recovered, attempts=(int)4, outage=(guint64)4200000000;`,
			want:   relayEvent{Kind: eventRecovered, Outage: 4200 * time.Millisecond, Attempts: 4},
			wantOK: true,
		},
		{
			name:   "error line",
			line:   `ERROR: from element /GstPipeline:pipeline0/GstMatroskaMux:matroskamux0: Caps changes are not supported by Matroska`,
			want:   relayEvent{Kind: eventError, Text: "from element /GstPipeline:pipeline0/GstMatroskaMux:matroskamux0: Caps changes are not supported by Matroska"},
			wantOK: true,
		},
		{name: "warning line", line: "WARNING: from element x: late", want: relayEvent{Kind: eventWarning, Text: "from element x: late"}, wantOK: true},
		{name: "playing", line: "Setting pipeline to PLAYING ...", want: relayEvent{Kind: eventPlaying}, wantOK: true},
		{name: "eos", line: `Got EOS from element "pipeline0".`, want: relayEvent{Kind: eventEOS}, wantOK: true},
		{name: "other element message", line: `Got message #51 from element "x264enc0" (element): GstVideoEncoderStats, a=(int)1;`},
		{name: "state change", line: `Got message #12 from element "pipeline0" (state-changed): GstMessageStateChanged, old-state=(GstState)GST_STATE_PAUSED;`},
		{name: "noise", line: "Pipeline is PREROLLED ..."},
		{
			name:    "restart without attempt",
			line:    `Got message #1 from element "reconnectbin0" (element): reconnectbin-restart, reason=(string)eos, delay=(guint64)1;`,
			wantErr: "no attempt field",
		},
		{
			name:    "restart with a bad delay",
			line:    `Got message #1 from element "reconnectbin0" (element): reconnectbin-restart, reason=(string)eos, attempt=(int)1, delay=(guint64)soon;`,
			wantErr: `delay="soon"`,
		},
		{
			name:    "unterminated quote",
			line:    `Got message #1 from element "reconnectbin0" (element): reconnectbin-recovered, outage=(string)"oops;`,
			wantErr: "unterminated quote",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := parseLaunchLine(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v (event %+v)", ok, tt.wantOK, got)
			}
			if ok && got != tt.want {
				t.Errorf("event = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestRelayArgs(t *testing.T) {
	mkv := relayArgs(4000, 2*time.Second, relaySink{MKVPath: "/tmp/my demo/out.mkv"})
	for _, want := range []string{
		"-m", "-e", "reconnectbin",
		"source=tcpclientsrc host=127.0.0.1 port=4000 ! tsdemux ! h264parse ! avdec_h264",
		"stall-timeout=2000000000",
		"matroskamux",
		// One argument, spaces and all: gst-launch escapes them itself.
		"location=/tmp/my demo/out.mkv",
	} {
		if !slices.Contains(mkv, want) {
			t.Errorf("MKV relay args lack %q: %q", want, mkv)
		}
	}
	if slices.Contains(mkv, "kvssink") {
		t.Errorf("MKV relay must not use kvssink: %q", mkv)
	}

	kvs := relayArgs(4000, 2*time.Second, relaySink{KVSStreamName: "cam-1"})
	n := len(kvs)
	if got := kvs[n-4:]; !slices.Equal(got, []string{"video/x-h264,stream-format=avc,alignment=au", "!", "kvssink", "stream-name=cam-1"}) {
		t.Errorf("kvssink relay must end with the avc capsfilter then kvssink, got %q", got)
	}
	if slices.Contains(kvs, "matroskamux") {
		t.Errorf("kvssink relay must not record an MKV: %q", kvs)
	}
}
