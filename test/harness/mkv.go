package harness

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Packet is one video packet of a recorded file as ffprobe reports it.
type Packet struct {
	PTS, DTS time.Duration
	HasDTS   bool
	Key      bool
}

// ProbePackets lists the first video stream's packets of a media file.
func ProbePackets(tb testing.TB, path string) []Packet {
	tb.Helper()
	out, code := Run(tb, nil, 60*time.Second, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,dts_time,flags", "-of", "csv=p=0", path)
	if code != 0 {
		tb.Fatalf("ffprobe %s: exit %d: %s", path, code, out)
	}
	packets, err := ParsePacketCSV(out)
	if err != nil {
		tb.Fatalf("ffprobe %s: %v", path, err)
	}
	return packets
}

// ParsePacketCSV parses `ffprobe -show_entries packet=pts_time,dts_time,flags
// -of csv=p=0` output.
func ParsePacketCSV(out string) ([]Packet, error) {
	var packets []Packet
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d %q: want pts,dts,flags", i+1, line)
		}
		var p Packet
		pts, err := parseSeconds(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: pts: %w", i+1, err)
		}
		p.PTS = pts
		if f[1] != "" && f[1] != "N/A" {
			if p.DTS, err = parseSeconds(f[1]); err != nil {
				return nil, fmt.Errorf("line %d: dts: %w", i+1, err)
			}
			p.HasDTS = true
		}
		p.Key = strings.Contains(f[2], "K")
		packets = append(packets, p)
	}
	return packets, nil
}

func parseSeconds(s string) (time.Duration, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(v * float64(time.Second)), nil
}

// DecodeOrderViolations counts packets whose decode timestamp (PTS when no
// DTS) is not after the previous packet's: what kvssink drops.
func DecodeOrderViolations(packets []Packet) int {
	n := 0
	for i := 1; i < len(packets); i++ {
		prev, cur := packets[i-1], packets[i]
		a, b := prev.PTS, cur.PTS
		if prev.HasDTS && cur.HasDTS {
			a, b = prev.DTS, cur.DTS
		}
		if b <= a {
			n++
		}
	}
	return n
}

// LargestGap is the largest step between consecutive decode timestamps.
func LargestGap(packets []Packet) time.Duration {
	var gap time.Duration
	for i := 1; i < len(packets); i++ {
		a, b := packets[i-1].PTS, packets[i].PTS
		if packets[i-1].HasDTS && packets[i].HasDTS {
			a, b = packets[i-1].DTS, packets[i].DTS
		}
		if d := b - a; d > gap {
			gap = d
		}
	}
	return gap
}

// DecodesCleanly reports ffmpeg's errors decoding the whole file ("" when none).
func DecodesCleanly(tb testing.TB, path string) string {
	tb.Helper()
	out, code := Run(tb, nil, 120*time.Second, "ffmpeg", "-v", "error", "-i", path, "-fps_mode", "passthrough", "-f", "null", "-")
	if code != 0 {
		return fmt.Sprintf("exit %d: %s", code, out)
	}
	// The null muxer rounds timestamps to the frame rate's time base and
	// complains when two jittery frames land on one tick; decode order is
	// checked exactly by DecodeOrderViolations instead. Decoder errors stay.
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "[null @") {
			problems = append(problems, line)
		}
	}
	return strings.Join(problems, "\n")
}
