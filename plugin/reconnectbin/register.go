// Package reconnectbin implements the reconnectbin element: a bin that wraps
// any source (a gst-launch description or a URI) and rebuilds it in place when
// it errors, ends or stalls, while everything downstream keeps running and
// sees one continuous stream.
//
// Files, by concern:
//   - register.go: registration and the property table (each property is
//     documented once, here).
//   - settings.go: what the properties say, and their validation.
//   - element.go: the GObject virtual methods (properties, state changes,
//     messages, events, request pads), stats and status.
//   - run.go: the run state, one object made at READY->PAUSED and dropped
//     at PAUSED->READY (what runs, apart from what the properties say).
//   - supervise.go: the run's rebuild loop, the only place source instances
//     are started and stopped.
//   - instance.go: one source instance's life, in phases: building,
//     starting, running, releasing, released.
//   - probes.go: what runs on an instance's streaming threads: its buffers
//     placed on the output timeline, its EOS turned into a rebuild.
//   - output.go: the bin's own pads and what leaves through them (one
//     stream-start and segment, the per-stream order guard).
//   - capschange.go: the on-caps-change policy.
//   - fallback.go: fill frames and silence during an outage, and from the
//     start until a source feeds each stream.
//   - backup.go: the backup source (fallback-uri, fallback-source): a
//     second instance, started when the main fails, feeding the output
//     until the main is steady again.
//   - audio.go: the audio pad's one raw format per run (output-audio-caps
//     or negotiated), the source's raw audio converted to it.
//   - report.go (systemd, metrics), hls.go (HLS through uri), soup.go (soup
//     sessions kept per instance).
//
// Decisions (backoff, stall detection, status) live in the plain Go package
// internal/supervisor, the output timeline in internal/timeline, what kind
// of stream a pad carries in internal/mediakind, which source feeds the
// output in internal/failover.
package reconnectbin

import (
	"math"
	"time"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/failover"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
)

// FactoryName is the name gst-launch-1.0 and gst_element_factory_make use.
const FactoryName = "reconnectbin"

// Defaults of the properties below; the reconnect settings' own live in
// internal/supervisor.
const (
	DefaultStallTimeout  = supervisor.DefaultStallTimeout
	DefaultRetryDelay    = supervisor.DefaultRetryDelay
	DefaultMaxRetryDelay = supervisor.DefaultMaxRetryDelay
	DefaultMaxRetries    = supervisor.DefaultMaxRetries
	DefaultRestartOnEOS  = true
	// DefaultMainSteadyTime: how long the main source must be live before
	// the output leaves the backup for it.
	DefaultMainSteadyTime = failover.DefaultMainSteadyTime
)

var cat = gst.NewDebugCategory(FactoryName, gst.DebugColorNone, "kvsrelay reconnectbin: source rebuilds")

// Register registers reconnectbin with plugin, or statically when plugin is nil.
func Register(plugin *gst.Plugin) bool {
	return gst.RegisterElement(plugin, FactoryName, gst.RankNone, &reconnectBin{}, gst.ExtendsBin)
}

const rw = glib.ParameterReadWrite
const ro = glib.ParameterReadable

// Property indexes: properties[i] is what SetProperty/GetProperty receive as id.
const (
	propSource = iota
	propURI
	propStallTimeout
	propRetryDelay
	propMaxRetryDelay
	propMaxRetries
	propRestartOnEOS
	propOutputCaps
	propOutputAudioCaps
	propFallback
	propFallbackHold
	propFallbackImage
	propFallbackUpload
	propOnCapsChange
	propStatus
	propStats
	propFallbackURI
	propFallbackSource
	propMainSteadyTime
)

// Fallback modes (property fallback).
const (
	FallbackNone = iota
	FallbackBlack
	FallbackImage
)

// Caps-change policies (property on-caps-change).
const (
	CapsChangeError = iota
	CapsChangeRetry
	CapsChangePass
)

// Defaults of the output properties.
const (
	DefaultFallback     = FallbackNone
	DefaultFallbackHold = time.Second
	// DefaultFallbackUpload: fill frames are uploaded like the camera's.
	DefaultFallbackUpload = true
	DefaultOnCapsChange   = CapsChangeError
)

var (
	fallbackType = gstshim.RegisterEnum("GstReconnectBinFallback", []gstshim.EnumValue{
		{Value: FallbackNone, Name: "No frames while the source is down (a gap in the output)", Nick: "none"},
		{Value: FallbackBlack, Name: "Repeat the last frame for fallback-hold, then black frames", Nick: "black"},
		{Value: FallbackImage, Name: "Repeat the last frame for fallback-hold, then fallback-image", Nick: "image"},
	})
	capsChangeType = gstshim.RegisterEnum("GstReconnectBinCapsChange", []gstshim.EnumValue{
		{Value: CapsChangeError, Name: "Post an ERROR and stop the stream, so the process restarts with a fresh sink", Nick: "error"},
		{Value: CapsChangeRetry, Name: "Drop the new source instance and rebuild until it comes back as before", Nick: "retry"},
		{Value: CapsChangePass, Name: "Pass the new caps downstream (only for sinks that handle caps changes)", Nick: "pass"},
	})
)

var properties = []*glib.ParamSpec{
	propSource: glib.NewStringParam("source", "Source description",
		"gst-launch-1.0 description of the source chain to wrap, e.g. \"souphttpsrc location=http://cam/index.m3u8 ! hlsdemux ! decodebin\". "+
			"Its unlinked src pads (static, or added later by a demuxer or decodebin) are told apart by their caps: video "+
			"becomes the bin's src pad, audio its audio pad (when requested), anything else is absorbed inside. "+
			"Exactly one of source and uri must be set. Changes take effect at the next rebuild.",
		nil, rw),
	propURI: glib.NewStringParam("uri", "Source URI",
		"URI to play through uridecodebin3 (http(s)://...m3u8, rtsp://, srt://, file://); tcp://host:port (MPEG-TS over TCP, "+
			"which no GStreamer element takes as a URI) plays through tcpclientsrc ! decodebin. "+
			"Before GStreamer 1.24 an http(s) URI whose path ends in .m3u8 plays through souphttpsrc ! hlsdemux ! decodebin "+
			"instead (hlsdemux2 there can crash the process when a playlist refresh fails). "+
			"Its video becomes the bin's src pad, its audio the audio pad (when requested); other streams are absorbed. "+
			"Exactly one of source and uri must be set. "+
			"Changes take effect at the next rebuild.",
		nil, rw),
	propStallTimeout: glib.NewUint64Param("stall-timeout", "Stall timeout (ns)",
		"No buffer from the source for this long counts as a failure even when nothing posted an error "+
			"(frozen HLS playlist, a server that accepts the connection and sends nothing). Streams count one by one: "+
			"video that stops for this long while the audio flows is a stall too (reconnectbin-restart silent-stream=video); "+
			"audio that stops while the video flows is not (the picture is kept, stats show silent-stream=audio). It also bounds a source "+
			"instance's start: a state change to PLAYING still blocked after it (a TCP connect to a host that drops "+
			"SYNs) is a failed start. 0 disables stall detection (starts are then bounded at 10 s).",
		0, math.MaxUint64, uint64(DefaultStallTimeout), rw),
	propRetryDelay: glib.NewUint64Param("retry-delay", "Retry delay (ns)",
		"Delay before the first rebuild after a failure; it doubles (with jitter) on each consecutive failure "+
			"up to max-retry-delay and resets once the source has streamed steadily for 10 s.",
		0, math.MaxUint64, uint64(DefaultRetryDelay), rw),
	propMaxRetryDelay: glib.NewUint64Param("max-retry-delay", "Maximum retry delay (ns)",
		"Cap of the backoff between rebuilds. Low on purpose: after a long outage the picture must come back soon "+
			"after the source does, while a dead source still costs at most one attempt per max-retry-delay.",
		0, math.MaxUint64, uint64(DefaultMaxRetryDelay), rw),
	propMaxRetries: glib.NewIntParam("max-retries", "Maximum retries",
		"Consecutive failed attempts after which the bin posts an ERROR naming the last cause, so that the "+
			"application or systemd decides. -1 retries forever.",
		-1, math.MaxInt32, DefaultMaxRetries, rw),
	propRestartOnEOS: glib.NewBoolParam("restart-on-eos", "Restart on EOS",
		"Rebuild the source when it ends (EOS) instead of ending the stream. When false the source's EOS "+
			"goes downstream and ends the pipeline.",
		DefaultRestartOnEOS, rw),
	propOutputCaps: glib.NewBoxedParam("output-caps", "Output caps",
		"Fixed raw video caps every source instance is converted, scaled and rate-adapted to, e.g. "+
			"video/x-raw,format=I420,width=1280,height=720,framerate=25/1, so the encoder is configured once and its "+
			"codec_data never changes whatever the camera comes back with. Needed by fallback. Default: none (the source's own caps).",
		gst.TypeCaps, rw),
	propOutputAudioCaps: glib.NewBoxedParam("output-audio-caps", "Output audio caps",
		"Fixed raw audio format of the audio pad, e.g. audio/x-raw,format=S16LE,rate=48000,channels=2: fallback's silence "+
			"is made in it and the source's raw audio is converted and resampled to it, so the audio encoder downstream is "+
			"configured once, before any source has run. Default: none; with fallback on and the audio pad linked, the format "+
			"is negotiated with downstream (S16LE, 48 kHz, stereo where downstream accepts it); no silence is made when "+
			"downstream takes no raw audio (encoded audio passed through).",
		gst.TypeCaps, rw),
	propFallback: gstshim.EnumParam("fallback", "Fallback",
		"What the bin outputs while the source is down, on the same timeline at the output-caps frame rate "+
			"(as broadcast encoders do on input loss): the last good frame for fallback-hold, then black or fallback-image, "+
			"and silence on the audio pad (in output-audio-caps' format). From the start too: 0.5 s after PLAYING, whatever stream no source has fed yet "+
			"is filled, so a muxer or kvssink waiting for both streams writes at once whether or not a camera answers. It also fills a source that merely pauses (the output falling behind the "+
			"clock) without rebuilding it, and switches back on the source's first good buffer. Needs output-caps.",
		fallbackType, DefaultFallback, rw),
	propFallbackHold: glib.NewUint64Param("fallback-hold", "Fallback hold (ns)",
		"How long the last good frame is repeated before black or fallback-image.",
		0, math.MaxUint64, uint64(DefaultFallbackHold), rw),
	propFallbackImage: glib.NewStringParam("fallback-image", "Fallback image",
		"PNG or JPEG file shown (scaled to output-caps) while the source is down, when fallback=image.",
		nil, rw),
	propFallbackUpload: glib.NewBoolParam("fallback-upload", "Upload fallback frames",
		"Whether fallback frames (and the silence beside them) are stored in Kinesis Video Streams. When false they still "+
			"keep the encoders and kvssink fed through an outage, but every kvssink in the pipeline (found at READY->PAUSED, "+
			"on the pads linked then) discards them: no stored, billed black video. The upload resumes on the source's "+
			"first frame after the outage, which the encoder is asked to make a keyframe; audio is withheld over the same span. "+
			"Each outage ends with a reconnectbin-fallback-withheld message per kvssink pad (kvssink, stream, buffers withheld, "+
			"fill-from and fill-to: the fill's running times, resumed-at: the first buffer let through); stats "+
			"count them (fallback-withheld-frames, fallback-withheld-audio). Silence beside the camera's own video (a camera "+
			"without a microphone) is uploaded either way. Without a kvssink in the pipeline a WARNING says nothing is withheld.",
		DefaultFallbackUpload, rw),
	propOnCapsChange: gstshim.EnumParam("on-caps-change", "On caps change",
		"What to do when a rebuilt source comes back with caps (resolution, codec_data) different from the first "+
			"instance's. kvssink keeps the first codec_data for the life of the element and silently uploads a corrupt "+
			"stream after a change, so the default stops with an ERROR (systemd restarts the relay with a fresh sink). "+
			"With output-caps set, raw video never changes caps. A reconnectbin-caps-changed element message is posted in every case.",
		capsChangeType, DefaultOnCapsChange, rw),
	propStatus: glib.NewStringParam("status", "Status",
		"What the bin is doing: stopped, starting, running, retrying or failed.",
		nil, ro),
	propStats: glib.NewBoxedParam("stats", "Statistics",
		"GstStructure reconnectbin-stats: restarts, restarts-error, restarts-eos, restarts-stall, restarts-start-failed, "+
			"last-error, since-last-buffer (ns), current-outage (ns), total-outage (ns), attempts, status, frames-out, "+
			"in-fallback, fallback-frames, fallback-time (ns), caps-changes, keyframe-waits (buffers dropped waiting for a keyframe after a rebuild), "+
			"order-drops (buffers dropped at a fallback/source handover so that nothing steps back), "+
			"instances-allocated (source instances still in memory, the current one included: a stopped instance is freed "+
			"a few seconds after its rebuild, so a count that keeps growing is a leak), "+
			"restarts-stall-video (stall restarts because the video stopped while the audio flowed), "+
			"silent-stream (\"video\" or \"audio\" while one of the current instance's streams is silent for stall-timeout "+
			"and the other flows, else empty; silent audio alone is no stall), "+
			"keyframe-interval-max (ns, the longest distance between keyframes of the video leaving the bin), "+
			"keyframe-interval-too-long (it exceeded kvssink's 10 s fragment limit; a WARNING was posted once), "+
			"fallback-withheld-frames and fallback-withheld-audio (fill video frames and audio buffers kvssink discarded "+
			"with fallback-upload=false), "+
			"live-source (\"main\" or \"backup\": the source feeding the output; \"none\" while neither does, "+
			"fallback frames or a gap), backup-status (the backup source: stopped, starting, running, or retrying while the main is down), "+
			"backup-restarts, switches-to-backup, switches-to-main.",
		gst.TypeStructure, ro),
	propFallbackURI: glib.NewStringParam("fallback-uri", "Backup source URI",
		"A second camera or URL (same forms as uri) that feeds the output while the main source is down: started when "+
			"the main fails, through the same output-caps normaliser and onto the same timeline, retried with its own backoff "+
			"(max-retries applies to the main only). The output goes back to the main once it has been live for "+
			"main-steady-time, and the backup is then released; while both are down, fallback applies. The output changes "+
			"hands at a keyframe of the source taking over. Only its video is used. A reconnectbin-live-source element message "+
			"(source: main, backup or none; previous) is posted on each change. At most one of fallback-uri and fallback-source. Default: none.",
		nil, rw),
	propFallbackSource: glib.NewStringParam("fallback-source", "Backup source description",
		"gst-launch-1.0 description of the backup source (same form as source); see fallback-uri. At most one of "+
			"fallback-uri and fallback-source. Default: none.",
		nil, rw),
	propMainSteadyTime: glib.NewUint64Param("main-steady-time", "Main steady time (ns)",
		"How long the main source must be live again before the output switches back to it from the backup source "+
			"(a main that flaps keeps the output on the backup). 0 switches back on its first keyframe.",
		0, math.MaxInt64, uint64(DefaultMainSteadyTime), rw),
}
