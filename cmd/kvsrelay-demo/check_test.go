package main

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParsePackets(t *testing.T) {
	got, err := parsePackets("0.991000,0.991000,K_\n1.031000,N/A,__\n\nN/A,1.111000,K__\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []packet{
		{PTS: 0.991, DTS: 0.991, HasPTS: true, HasDTS: true, Key: true},
		{PTS: 1.031, HasPTS: true},
		{DTS: 1.111, HasDTS: true, Key: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d packets %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("packet %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	for _, bad := range []string{"0.1,0.1", "abc,0.1,K_", "0.1,x,K_"} {
		if _, err := parsePackets(bad); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("parsePackets(%q) error = %v, want one naming line 1", bad, err)
		}
	}
}

// frames builds ffprobe CSV for frames at 25 fps from start for n frames,
// pts equal to dts, a keyframe every 25.
func frames(start float64, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		ts := start + float64(i)*0.04
		flags := "__"
		if i%25 == 0 {
			flags = "K_"
		}
		ts6 := strconv.FormatFloat(ts, 'f', 6, 64)
		b.WriteString(ts6 + "," + ts6 + "," + flags + "\n")
	}
	return b.String()
}

func TestAnalysePackets(t *testing.T) {
	tests := []struct {
		name          string
		csv           string
		wantFrames    int
		wantKeys      int
		wantMonotonic bool
		wantBack      []string // "field@packet"
		wantGaps      []gap
		wantDuration  float64
	}{
		{
			name:          "steady 2s",
			csv:           frames(1, 50),
			wantFrames:    50,
			wantKeys:      2,
			wantMonotonic: true,
			wantDuration:  1.96,
		},
		{
			name:          "outage spliced forward is a gap, not a problem",
			csv:           frames(1, 50) + frames(8, 25),
			wantFrames:    75,
			wantKeys:      3,
			wantMonotonic: true,
			wantGaps:      []gap{{At: 2.96, Length: 5.04}},
			wantDuration:  7.96,
		},
		{
			name:          "timestamps restarting near zero after a reconnect go backwards",
			csv:           frames(1, 50) + frames(0.3, 10),
			wantFrames:    60,
			wantKeys:      3,
			wantMonotonic: false,
			wantBack:      []string{"pts@50", "dts@50"},
			wantDuration:  2.66,
		},
		{
			name:          "only dts goes backwards",
			csv:           "1.000,1.000,K_\n1.040,0.900,__\n1.080,1.080,__\n",
			wantFrames:    3,
			wantKeys:      1,
			wantMonotonic: false,
			wantBack:      []string{"dts@1"},
			wantDuration:  0.08,
		},
		{name: "empty file", csv: "", wantMonotonic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts, err := parsePackets(tt.csv)
			if err != nil {
				t.Fatal(err)
			}
			c := analysePackets(pkts, 500*time.Millisecond)
			if c.Frames != tt.wantFrames || c.Keyframes != tt.wantKeys {
				t.Errorf("frames/keyframes = %d/%d, want %d/%d", c.Frames, c.Keyframes, tt.wantFrames, tt.wantKeys)
			}
			if c.Monotonic() != tt.wantMonotonic {
				t.Errorf("Monotonic() = %v, want %v (backsteps %+v)", c.Monotonic(), tt.wantMonotonic, c.Backsteps)
			}
			var back []string
			for _, b := range c.Backsteps {
				back = append(back, b.Field+"@"+strconv.Itoa(b.Packet))
			}
			if strings.Join(back, " ") != strings.Join(tt.wantBack, " ") {
				t.Errorf("backsteps = %v, want %v", back, tt.wantBack)
			}
			if len(c.Gaps) != len(tt.wantGaps) {
				t.Fatalf("gaps = %+v, want %+v", c.Gaps, tt.wantGaps)
			}
			for i, g := range tt.wantGaps {
				if !near(c.Gaps[i].At, g.At) || !near(c.Gaps[i].Length, g.Length) {
					t.Errorf("gap %d = %+v, want %+v", i, c.Gaps[i], g)
				}
			}
			if !near(c.Duration(), tt.wantDuration) {
				t.Errorf("Duration() = %v, want %v", c.Duration(), tt.wantDuration)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }
