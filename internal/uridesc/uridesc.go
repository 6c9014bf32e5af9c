// Package uridesc builds the gst-launch description reconnectbin runs for its
// uri property, and decides when an HLS URI must avoid hlsdemux2.
//
// GStreamer 1.22's hlsdemux2 (adaptivedemux2, which uridecodebin3 picks for
// HLS) writes into freed memory when a media playlist refresh fails. The
// refresh is a blocking download: the download helper's transfer thread
// (on_request_sent) wakes the waiting caller while it still holds the
// request's lock; the caller drops its reference, the finished transfer task
// drops the last one on the caller's thread, and only then does the transfer
// thread unlock the freed request. Under CPU load it is preempted in between
// often enough to corrupt the heap, and gst-launch crashes later (typically
// when a thread exits: malloc_consolidate, "unaligned tcache chunk"). A relay
// whose HLS server went away refreshes a failing playlist every target
// duration. GStreamer 1.24 loads HLS playlists asynchronously (hlsdemux2's
// playlist loader) without that blocking download; before it, reconnectbin
// plays HLS URIs through the legacy hlsdemux. Seen and tested on 1.22.0 only;
// docs/hls-uri-crash.md has the backtrace.
package uridesc

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Version is a GStreamer release number.
type Version struct{ Major, Minor, Micro int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// Less reports whether v is an earlier release than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Micro < w.Micro
}

// ParseVersion reads "1.22.0" (a plugin's version string; a fourth number,
// as in development snapshots "1.23.0.1", is ignored).
func ParseVersion(s string) (Version, bool) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 3 {
		return Version{}, false
	}
	var n [3]int
	for i := range n {
		v, err := strconv.Atoi(parts[i])
		if err != nil || v < 0 {
			return Version{}, false
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, true
}

// SafeHLSDemux2 is the first adaptivedemux2 release whose hlsdemux2 has no
// blocking playlist download (see the package comment).
var SafeHLSDemux2 = Version{1, 24, 0}

// IsHLS reports whether uri names an HLS playlist reconnectbin can fetch
// itself: http or https, with a path ending in .m3u8 (any case; the query
// and fragment do not count).
func IsHLS(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return false
	}
	return strings.HasSuffix(strings.ToLower(u.Path), ".m3u8")
}

// Runtime is what the running GStreamer offers for HLS.
type Runtime struct {
	// HLSDemux2 is the adaptivedemux2 plugin's version; ok false when the
	// plugin is absent (uridecodebin3 then uses hlsdemux anyway).
	HLSDemux2   Version
	HLSDemux2OK bool
	// Legacy is true when souphttpsrc, hlsdemux and decodebin all exist.
	Legacy bool
}

// UseLegacyHLS reports whether uri must be played through the legacy chain:
// an HLS URI, an affected hlsdemux2, and the legacy elements available.
func UseLegacyHLS(uri string, rt Runtime) bool {
	return IsHLS(uri) && rt.HLSDemux2OK && rt.HLSDemux2.Less(SafeHLSDemux2) && rt.Legacy
}

// Description is the gst-launch description of one source instance for
// uri: uridecodebin3, or with legacy the chain relays used before the uri
// property existed (souphttpsrc ! hlsdemux ! decodebin). A tcp://host:port
// URI (MPEG-TS over plain TCP, as encoders serve it) plays through
// tcpclientsrc ! decodebin: no GStreamer element handles the tcp scheme, so
// uridecodebin3 could not play it.
func Description(uri string, legacy bool) string {
	quoted := `"` + strings.ReplaceAll(uri, `"`, `\"`) + `"`
	if host, port, ok := TCPAddress(uri); ok {
		return fmt.Sprintf(`tcpclientsrc host="%s" port=%d ! decodebin`, host, port)
	}
	if legacy {
		return "souphttpsrc location=" + quoted + " ! hlsdemux ! decodebin"
	}
	return "uridecodebin3 uri=" + quoted
}

// TCPAddress reads a tcp://host:port URI (an IPv6 host in brackets); ok is
// false for any other URI, and for a tcp URI without a host, with a port
// out of range, or with more than "/" after the address.
func TCPAddress(uri string) (host string, port int, ok bool) {
	u, err := url.Parse(uri)
	if err != nil || !strings.EqualFold(u.Scheme, "tcp") || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", 0, false
	}
	host = u.Hostname()
	port, err = strconv.Atoi(u.Port())
	if host == "" || strings.ContainsAny(host, `" `) || err != nil || port <= 0 || port > 65535 {
		return "", 0, false
	}
	return host, port, true
}
