package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// sinkTail is the measurable end every gst-launch contender shares: scale
// to tiny raw I420 frames and write them to fd 3 as fast as they come.
var sinkTail = []string{
	"!", "videoconvert", "!", "videoscale", "!",
	fmt.Sprintf("video/x-raw,format=I420,width=%d,height=%d", frameWidth, frameHeight),
	"!", "fdsink", "fd=3", "sync=false",
}

// incidentQueue is the queue of the incident report's pipeline.
var incidentQueue = []string{"queue", "max-size-buffers=0", "max-size-bytes=0", "max-size-time=5000000000", "leaky=downstream"}

// Source is what the clients read: its protocol and address.
type Source struct {
	Proto string // "hls", "tcp", "srt"
	URL   string // playlist URL, tcp://host:port, srt://host:port
	Host  string
	Port  int
}

// clientHead is the gst-launch description of a plain client up to and
// including decodebin; withQueue adds the incident report's queue after
// the demuxer (HLS) or source (TCP, SRT).
func (s Source) clientHead(withQueue bool) []string {
	var head []string
	switch s.Proto {
	case "hls":
		// The incident report's exact source line.
		head = []string{"souphttpsrc", "location=" + s.URL, "retries=5", "timeout=10", "!", "hlsdemux"}
	case "tcp":
		head = []string{"tcpclientsrc", fmt.Sprintf("host=%s", s.Host), fmt.Sprintf("port=%d", s.Port)}
	case "srt":
		head = []string{"srtsrc", "uri=" + s.URL}
	}
	if withQueue {
		head = append(append(head, "!"), incidentQueue...)
	}
	return append(head, "!", "decodebin")
}

// ReconnectSettings are reconnectbin's properties for a run; zero values
// keep the element's defaults.
type ReconnectSettings struct {
	StallTimeout time.Duration
	Fallback     string // "", "none", "black", "image"
	// FallbackImage is the picture file of fallback=image.
	FallbackImage string
	OutputCaps    string
}

func reconnectbinContender(name string, src Source, s ReconnectSettings) Contender {
	args := []string{"-m", "reconnectbin", `source="` + strings.Join(src.clientHead(false), " ") + `"`}
	if s.StallTimeout > 0 {
		args = append(args, fmt.Sprintf("stall-timeout=%d", s.StallTimeout.Nanoseconds()))
	}
	if s.OutputCaps != "" {
		args = append(args, `output-caps="`+s.OutputCaps+`"`)
	}
	if s.Fallback != "" {
		args = append(args, "fallback="+s.Fallback)
	}
	if s.FallbackImage != "" {
		args = append(args, "fallback-image="+s.FallbackImage)
	}
	args = append(args, sinkTail...)
	// reconnectbin itself runs under the same supervisor with systemd's
	// RestartSec=5, as deployed; it is not expected to exit.
	return Contender{Name: name, Kind: "reconnectbin", Path: "gst-launch-1.0", Args: args, RestartSec: 5 * time.Second, Messages: true, Reference: true}
}

func gstLaunchContender(src Source, restartSec time.Duration) Contender {
	args := append(src.clientHead(true), sinkTail...)
	label := "gst-launch (incident line)"
	if src.Proto != "hls" {
		label = "gst-launch (plain " + src.Proto + " client)"
	}
	return Contender{Name: fmt.Sprintf("%s, RestartSec=%s", label, secs(restartSec)), Kind: "gst-launch", Path: "gst-launch-1.0", Args: args, RestartSec: restartSec}
}

func ffmpegContender(src Source, restartSec time.Duration) Contender {
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error"}
	if src.Proto == "hls" {
		// The reconnect options apply to ffmpeg's http protocol only.
		// Deliberately not -reconnect_at_eof: on a live playlist it turns
		// every normal end of a segment download into a reconnect.
		args = append(args, "-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_on_network_error", "1",
			"-reconnect_on_http_error", "4xx,5xx", "-reconnect_delay_max", "5")
	}
	args = append(args, "-i", src.URL, "-an", "-sn",
		"-vf", fmt.Sprintf("scale=%d:%d", frameWidth, frameHeight), "-pix_fmt", "yuv420p",
		// passthrough: never invent duplicate frames during an outage;
		// flush_packets: hand each frame over at once.
		"-fps_mode", "passthrough", "-flush_packets", "1", "-f", "rawvideo", "pipe:3")
	return Contender{Name: fmt.Sprintf("ffmpeg, RestartSec=%s", secs(restartSec)), Kind: "ffmpeg", Path: "ffmpeg", Args: args, RestartSec: restartSec}
}

func secs(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%g", d.Seconds()), ".0"), "s")
}

// recoveryContenders are the side-by-side contenders of the recovery
// scenarios: reconnectbin, then the baselines under the supervisor.
func recoveryContenders(src Source, rb ReconnectSettings) []Contender {
	return []Contender{
		reconnectbinContender("reconnectbin", src, rb),
		gstLaunchContender(src, 0),
		gstLaunchContender(src, 5*time.Second),
		ffmpegContender(src, 0),
		ffmpegContender(src, 5*time.Second),
	}
}

var propertyLine = regexp.MustCompile(`(?m)^  ([a-z][a-z0-9-]*)\s+: `)

// elementProperties lists the properties gst-inspect-1.0 shows for
// factory, and the values of enum property fallback if present.
func elementProperties(env []string, factory string) (map[string]string, error) {
	cmd := exec.Command("gst-inspect-1.0", factory)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("gst-inspect-1.0 %s: %w: %s", factory, err, lastLine(string(out)))
	}
	props := map[string]string{}
	text := string(out)
	locs := propertyLine.FindAllStringSubmatchIndex(text, -1)
	for i, loc := range locs {
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		props[text[loc[2]:loc[3]]] = text[loc[1]:end]
	}
	return props, nil
}

// enumValues returns the nicks gst-inspect lists for an enum property,
// e.g. `(0): none - ...` lines give "none".
func enumValues(description string) []string {
	re := regexp.MustCompile(`\(\d+\): ([a-z][a-z0-9-]*)`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(description, -1) {
		out = append(out, m[1])
	}
	return out
}

// presenting returns c writing each frame at its presentation time, as a
// player (or a viewer of the KVS stream, whose fragments carry the frames'
// timestamps) sees it: gst-launch contenders sync their sink to the
// pipeline clock, ffmpeg reads its input at the native rate (-re). Without
// it, what reaches a sink is the download pattern: HLS hands a client a
// few segments in one burst, seconds ahead of their time.
func presenting(c Contender) Contender {
	args := make([]string, 0, len(c.Args)+1)
	for _, a := range c.Args {
		switch {
		case c.Path == "gst-launch-1.0" && a == "sync=false":
			a = "sync=true"
		case c.Path == "ffmpeg" && a == "-i":
			args = append(args, "-re")
		}
		args = append(args, a)
	}
	c.Args = args
	return c
}
