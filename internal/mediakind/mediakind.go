// Package mediakind tells what kind of stream a pad carries from its caps:
// video, audio or something else (subtitles, metadata, KLV). reconnectbin
// routes each unlinked src pad of a source description by it: video to its
// src pad, audio to its audio pad, the rest absorbed inside. The order in
// which a description's pads appear says nothing about what they carry (an
// explicit branch for audio can come first), so the caps decide.
//
// It works on caps as text (structure names and the RTP media field), so it
// needs no GStreamer and is table-tested on its own.
package mediakind

import (
	"regexp"
	"strings"
)

// Kind is what a pad carries.
type Kind int

const (
	// Unknown: the caps do not say yet (ANY, empty, a mix of kinds, RTP
	// without its media field): decide once the pad has negotiated caps.
	Unknown Kind = iota
	Video
	Audio
	// Other: a stream that is neither video nor audio (subtitles, closed
	// captions, metadata, KLV, ID3).
	Other
)

func (k Kind) String() string {
	switch k {
	case Video:
		return "video"
	case Audio:
		return "audio"
	case Other:
		return "other"
	default:
		return "unknown"
	}
}

// OfStructure classifies one caps structure by its name and, for RTP, its
// media field ("" when absent). Caps features ("video/x-raw(memory:GLMemory)")
// are ignored.
func OfStructure(name, media string) Kind {
	name = strings.TrimSpace(name)
	if i := strings.IndexByte(name, '('); i >= 0 {
		name = name[:i]
	}
	switch name {
	case "", "ANY", "EMPTY", "NONE":
		return Unknown
	case "application/x-rtp", "application/x-srtp":
		// RTP template caps name no media: only negotiated caps do.
		switch media {
		case "video":
			return Video
		case "audio":
			return Audio
		case "":
			return Unknown
		}
		return Other
	}
	switch {
	// Containers (video/mpegts, video/quicktime) count as video too: a
	// description that ends in one relays it as its main stream, as
	// before pads were classified.
	case strings.HasPrefix(name, "video/"), strings.HasPrefix(name, "image/"):
		return Video
	case strings.HasPrefix(name, "audio/"):
		return Audio
	}
	return Other
}

// Combine is the kind of caps made of structures of the given kinds: their
// one kind when they agree, Unknown when they do not (a pad that may carry
// video or audio has to negotiate first) or when there are none.
func Combine(kinds ...Kind) Kind {
	if len(kinds) == 0 {
		return Unknown
	}
	k := kinds[0]
	for _, other := range kinds[1:] {
		if other != k {
			return Unknown
		}
	}
	return k
}

var mediaField = regexp.MustCompile(`(?:^|[,\s])media\s*=\s*(?:\(string\))?\s*"?([A-Za-z]+)`)

// Classify classifies caps in their serialized form, as gst_caps_to_string
// writes them ("video/x-raw, format=(string)I420; audio/x-raw", "ANY"), or
// a bare structure name.
func Classify(caps string) Kind {
	caps = strings.TrimSpace(caps)
	if caps == "" {
		return Unknown
	}
	var kinds []Kind
	for _, st := range strings.Split(caps, ";") {
		st = strings.TrimSpace(st)
		if st == "" {
			continue
		}
		name := st
		if i := strings.IndexByte(st, ','); i >= 0 {
			name = st[:i]
		}
		media := ""
		if m := mediaField.FindStringSubmatch(st); m != nil {
			media = m[1]
		}
		kinds = append(kinds, OfStructure(name, media))
	}
	return Combine(kinds...)
}
