package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// packet is one video packet as ffprobe lists it, in file (decode) order.
type packet struct {
	PTS, DTS       float64
	HasPTS, HasDTS bool
	Key            bool
}

// parsePackets reads `ffprobe -show_entries packet=pts_time,dts_time,flags
// -of csv=p=0` output: one "pts_time,dts_time,flags" line per packet, with
// N/A for a missing timestamp and K in flags for a keyframe.
func parsePackets(csv string) ([]packet, error) {
	var pkts []packet
	for n, line := range strings.Split(csv, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		cols := strings.Split(line, ",")
		if len(cols) < 3 {
			return nil, fmt.Errorf("ffprobe line %d %q: want pts_time,dts_time,flags", n+1, line)
		}
		var p packet
		var err error
		if p.PTS, p.HasPTS, err = parseTime(cols[0]); err != nil {
			return nil, fmt.Errorf("ffprobe line %d: pts_time: %w", n+1, err)
		}
		if p.DTS, p.HasDTS, err = parseTime(cols[1]); err != nil {
			return nil, fmt.Errorf("ffprobe line %d: dts_time: %w", n+1, err)
		}
		p.Key = strings.Contains(cols[2], "K")
		pkts = append(pkts, p)
	}
	return pkts, nil
}

func parseTime(s string) (float64, bool, error) {
	s = strings.TrimSpace(s)
	if s == "N/A" || s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%q is not a time in seconds", s)
	}
	return v, true, nil
}

// backstep is a timestamp lower than the one before it.
type backstep struct {
	Packet   int // 0-based index in file order
	Field    string
	From, To float64
}

// gap is a jump forward in the recording's timeline: the picture stopped
// there for Length seconds (an outage, spliced without going backwards).
type gap struct {
	At, Length float64
}

// recordingCheck is what the demo learned about the output file.
type recordingCheck struct {
	Frames, Keyframes int
	Start, End        float64 // first and last timestamp, seconds
	Backsteps         []backstep
	MissingPTS        int
	Gaps              []gap
}

func (c recordingCheck) Duration() float64 { return c.End - c.Start }

func (c recordingCheck) Monotonic() bool { return len(c.Backsteps) == 0 }

// analysePackets checks that PTS and DTS never go backwards (the relay
// re-encodes without B-frames, so both must rise) and lists the jumps
// longer than gapThreshold, which are the outages as a viewer sees them.
func analysePackets(pkts []packet, gapThreshold time.Duration) recordingCheck {
	var c recordingCheck
	c.Frames = len(pkts)
	var haveStart bool
	var prevPTS, prevDTS float64
	var havePTS, haveDTS bool
	for i, p := range pkts {
		if p.Key {
			c.Keyframes++
		}
		if !p.HasPTS {
			c.MissingPTS++
		}
		if p.HasPTS {
			if havePTS && p.PTS < prevPTS {
				c.Backsteps = append(c.Backsteps, backstep{Packet: i, Field: "pts", From: prevPTS, To: p.PTS})
			}
			if havePTS && p.PTS-prevPTS > gapThreshold.Seconds() {
				c.Gaps = append(c.Gaps, gap{At: prevPTS, Length: p.PTS - prevPTS})
			}
			if !haveStart || p.PTS < c.Start {
				c.Start = p.PTS
				haveStart = true
			}
			if p.PTS > c.End {
				c.End = p.PTS
			}
			prevPTS, havePTS = p.PTS, true
		}
		if p.HasDTS {
			if haveDTS && p.DTS < prevDTS {
				c.Backsteps = append(c.Backsteps, backstep{Packet: i, Field: "dts", From: prevDTS, To: p.DTS})
			}
			prevDTS, haveDTS = p.DTS, true
		}
	}
	return c
}

// probeRecording runs ffprobe on the output and analyses its packets.
func probeRecording(ctx context.Context, path string) (recordingCheck, error) {
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,dts_time,flags", "-of", "csv=p=0", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return recordingCheck{}, fmt.Errorf("ffprobe %s: %w: %s", path, err, firstLines(stderr.String(), 3))
	}
	pkts, err := parsePackets(stdout.String())
	if err != nil {
		return recordingCheck{}, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	return analysePackets(pkts, 500*time.Millisecond), nil
}

// decodeRecording decodes the whole file with ffmpeg; any line on its error
// output means a frame that a player would show broken or not at all.
func decodeRecording(ctx context.Context, path string) (problems []string, err error) {
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	for _, line := range strings.Split(stderr.String(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			problems = append(problems, line)
		}
	}
	if runErr != nil && len(problems) == 0 {
		return nil, fmt.Errorf("ffmpeg decoding %s: %w", path, runErr)
	}
	return problems, nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, " / ")
}
