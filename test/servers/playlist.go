package servers

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Playlist is the part of an HLS media playlist the tests care about.
type Playlist struct {
	MediaSequence  int
	TargetDuration int
	// Segments are the segment URIs in playlist order.
	Segments []string
	// EndList is true if the playlist has #EXT-X-ENDLIST (VOD/finished).
	EndList bool
}

// ParsePlaylist parses an HLS media playlist. It returns an error for
// anything that is not one (missing #EXTM3U or #EXT-X-TARGETDURATION), which
// also catches a playlist read while hlssink2 was writing it.
func ParsePlaylist(data []byte) (Playlist, error) {
	var pl Playlist
	sc := bufio.NewScanner(bytes.NewReader(data))
	first := true
	haveTarget := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			if line != "#EXTM3U" {
				return Playlist{}, fmt.Errorf("parse HLS playlist: first line %q, want #EXTM3U", line)
			}
			first = false
			continue
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			n, err := strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"))
			if err != nil {
				return Playlist{}, fmt.Errorf("parse HLS playlist: bad %q: %w", line, err)
			}
			pl.MediaSequence = n
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			n, err := strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"))
			if err != nil {
				return Playlist{}, fmt.Errorf("parse HLS playlist: bad %q: %w", line, err)
			}
			pl.TargetDuration = n
			haveTarget = true
		case line == "#EXT-X-ENDLIST":
			pl.EndList = true
		case strings.HasPrefix(line, "#"):
		default:
			pl.Segments = append(pl.Segments, line)
		}
	}
	if err := sc.Err(); err != nil {
		return Playlist{}, fmt.Errorf("parse HLS playlist: %w", err)
	}
	if first {
		return Playlist{}, fmt.Errorf("parse HLS playlist: empty")
	}
	if !haveTarget {
		return Playlist{}, fmt.Errorf("parse HLS playlist: no #EXT-X-TARGETDURATION")
	}
	return pl, nil
}

// segmentPattern matches the names hlssink2 writes with location=segment%05d.ts.
var segmentPattern = regexp.MustCompile(`^segment(\d+)\.ts$`)

// SegmentIndex returns the number in a "segmentNNNNN.ts" name.
func SegmentIndex(name string) (int, bool) {
	m := segmentPattern.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, false
	}
	return n, true
}

// SegmentName is the inverse of SegmentIndex.
func SegmentName(index int) string { return fmt.Sprintf("segment%05d.ts", index) }

// shiftPlaylist renumbers an hlssink2 playlist by offset: media sequence and
// segment names. It is how an encoder generation that must continue the
// previous generation's numbering is presented (hlssink2 has no start index).
func shiftPlaylist(data []byte, offset int) []byte {
	if offset == 0 {
		return data
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(trimmed, "#EXT-X-MEDIA-SEQUENCE:"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				line = fmt.Sprintf("#EXT-X-MEDIA-SEQUENCE:%d", n+offset)
			}
		} else if n, ok := SegmentIndex(trimmed); ok {
			line = SegmentName(n + offset)
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}
