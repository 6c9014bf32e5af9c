// Package kvssinkstandin is a TEST-ONLY stand-in for AWS's kvssink element
// (Kinesis Video Streams producer SDK C++ v3.6.x). kvssink cannot be built on
// the project's machines, so this element is the project's proof that what
// kvsrelay feeds kvssink would be accepted: it is as strict as
// /work/shared/kvssink-contract.md on properties, credentials (including the
// credential file format and its lazy re-reads), buffer flags, timestamps
// and caps, uploads nothing, and writes a JSON Report of what it saw.
//
// It is compiled into the test build of libgstkvsrelay.so (build tag
// kvsrelay_testelements) and registered statically by in-process Go tests
// with Register(nil). Never ship it.
//
// Environment read at NULL->READY (besides the AWS_* variables kvssink reads):
//
//	KVSSINK_STANDIN_REPORT         report path when the `report` property is unset
//	KVSSINK_STANDIN_LAPSE          error (default) | stall: what happens once credentials lapse
//	KVSSINK_STANDIN_STATIC_EXPIRES RFC 3339 time when static/env session credentials expire
//	KVSSINK_STANDIN_CLOCK_OFFSET   Go duration added to the wall clock (credential timing tests)
//	KVSSINK_STANDIN_ACKS           default of the `acks` property: the fragment
//	                               acknowledgements the stand-in emits (acks.go)
//	KVSSINK_STANDIN_TRACE          file to append one line per frame handed over to (pad,
//	                               running times, keyframe, accepted or why not), for
//	                               comparing the stand-in's decisions with the real element's
//
// Read when the plugin registers its elements:
//
//	KVSSINK_STANDIN_FACTORY        factory name instead of "kvssink", so that a
//	                               pipeline can hold the stand-in beside a real
//	                               kvssink (the calibration tests tee one
//	                               stream into both)
package kvssinkstandin

import (
	"os"
	"time"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// FactoryName is the real element's factory name.
const FactoryName = "kvssink"

// EnvFactory renames the stand-in's factory (see the package comment).
const EnvFactory = "KVSSINK_STANDIN_FACTORY"

// streamingTypeName is the GType name of the streaming-type enum: the real
// element's, unless the stand-in is renamed to sit beside the real element,
// which registers that name itself (a second registration would fail).
var streamingTypeName = func() string {
	if os.Getenv(EnvFactory) != "" {
		return "GstKvsSinkStandInStreamingType"
	}
	return "GstKvsSinkStreamingType"
}()

// Environment variables of the stand-in.
const (
	EnvReport        = "KVSSINK_STANDIN_REPORT"
	EnvLapse         = "KVSSINK_STANDIN_LAPSE"
	EnvStaticExpires = "KVSSINK_STANDIN_STATIC_EXPIRES"
	EnvClockOffset   = "KVSSINK_STANDIN_CLOCK_OFFSET"
	EnvTrace         = "KVSSINK_STANDIN_TRACE"
)

// Pad template caps, as the real element declares them (audiosink_templ and
// videosink_templ in gstkvssink.cpp). H.265 has no stream-format
// restriction there.
const (
	VideoCaps = "video/x-h264, stream-format=(string)avc, alignment=(string)au, width=(int)[ 16, 2147483647 ], height=(int)[ 16, 2147483647 ]; " +
		"video/x-h265, alignment=(string)au, width=(int)[ 16, 2147483647 ], height=(int)[ 16, 2147483647 ]"
	AudioCaps = "audio/mpeg, mpegversion=(int){ 2, 4 }, stream-format=(string)raw, channels=(int)[ 1, 2147483647 ], rate=(int)[ 1, 2147483647 ]; " +
		"audio/x-alaw, channels=(int){ 1, 2 }, rate=(int)[ 8000, 192000 ]; " +
		"audio/x-mulaw, channels=(int){ 1, 2 }, rate=(int)[ 8000, 192000 ]"
)

var cat = gst.NewDebugCategory("kvssinkstandin", gst.DebugColorNone, "kvssink stand-in (tests only)")

// Register registers the stand-in as "kvssink" (or $KVSSINK_STANDIN_FACTORY)
// with plugin, or statically when plugin is nil.
func Register(plugin *gst.Plugin) bool {
	name := FactoryName
	if v := os.Getenv(EnvFactory); v != "" {
		name = v
	}
	return gst.RegisterElement(plugin, name, gst.RankNone, &standin{}, gst.ExtendsBin)
}

const rw = glib.ParameterReadWrite

type propKind int

const (
	kindString propKind = iota
	kindUint
	kindUint64
	kindBool
	kindStructure // stored as its serialisation, "" for NULL
	kindEnum
)

type propDef struct {
	spec *glib.ParamSpec
	kind propKind
	def  any // the param spec's default
	// initial, when set, gives a new instance's value where the real element's
	// instance init differs from its param spec default.
	initial func() any
}

func strp(s string) *string { return &s }

const maxUint = uint(^uint32(0))

func str(name, nick, blurb, def string) propDef {
	return propDef{spec: glib.NewStringParam(name, nick, blurb, strp(def), rw), kind: kindString, def: def}
}
func uintp(name, nick, blurb string, def uint) propDef {
	return propDef{spec: glib.NewUintParam(name, nick, blurb, 0, maxUint, def, rw), kind: kindUint, def: def}
}
func boolp(name, nick, blurb string, def bool) propDef {
	return propDef{spec: glib.NewBoolParam(name, nick, blurb, def, rw), kind: kindBool, def: def}
}
func structp(name, nick, blurb string) propDef {
	return propDef{spec: glib.NewBoxedParam(name, nick, blurb, gst.TypeStructure, rw), kind: kindStructure, def: ""}
}
func (p propDef) startingAs(f func() any) propDef { p.initial = f; return p }

// Placeholders: kvssink uses access-key (with secret-key) only when it differs
// from "access_key", and session-token only when it differs from
// "session_token" (otherwise AWS_SESSION_TOKEN, if set).
const (
	defaultAccessKey    = "access_key"
	defaultSecretKey    = "secret_key"
	defaultSessionToken = "session_token"
)

// UserAgent is a new kvssink's user-agent value: the param spec default
// "AWS-SDK-KVS-CPP-CLIENT", plus "/" and the SDK version the instance init
// appends (3.6.0, the version the contract's observations were made with).
const (
	defaultUserAgent = "AWS-SDK-KVS-CPP-CLIENT"
	UserAgent        = defaultUserAgent + "/3.6.0"
)

// Property indexes: props[i] is what SetProperty/GetProperty receive as id.
// The order is the real element's.
const (
	propStreamName = iota
	propRetentionPeriod
	propStreamingType
	propContentType
	propMaxLatency
	propFragmentDuration
	propTimecodeScale
	propKeyFrameFragmentation
	propFrameTimecodes
	propAbsoluteFragmentTimes
	propFragmentAcks
	propRestartOnError
	propRecalculateMetrics
	propFramerate
	propAvgBandwidthBps
	propBufferDuration
	propReplayDuration
	propConnectionStaleness
	propCodecID
	propTrackName
	propAccessKey
	propSecretKey
	propSessionToken
	propAWSRegion
	propRotationPeriod
	propLogConfig
	propStorageSize
	propStopStreamTimeout
	propConnectionTimeout
	propCompletionTimeout
	propCredentialPath
	propIoTCertificate
	propStreamTags
	propFileStartTime
	propDisableBufferClipping
	propUseOriginalPTS
	propGetKVSMetrics
	propAllowCreateStream
	propUserAgent
	propReport
	propAcks
	numProps
)

// props mirrors the real element's properties (names, nicks, blurbs, types,
// param spec defaults and a new instance's values, read from
// src/gstreamer/gstkvssink.cpp of the producer SDK C++), plus the
// stand-in's `report`.
var props = [numProps]propDef{
	propStreamName:      str("stream-name", "Stream Name", "Name of the destination stream", "DEFAULT_STREAM"),
	propRetentionPeriod: uintp("retention-period", "Retention Period", "Length of time stream is preserved. Unit: hours", 2),
	propStreamingType:   {spec: gstshim.EnumParam("streaming-type", "Streaming Type", "Streaming type", streamingType, 0, glib.ParameterReadWrite), kind: kindEnum, def: 0},
	// The instance init never sets content-type: it reads NULL until
	// NULL->READY fills it in from the pads' media types.
	propContentType:           str("content-type", "Content Type", "content type", "video/h264").startingAs(func() any { return nil }),
	propMaxLatency:            uintp("max-latency", "Max Latency", "Max Latency. Unit: seconds", 60),
	propFragmentDuration:      uintp("fragment-duration", "Fragment Duration", "Fragment Duration. Unit: miliseconds", 2000),
	propTimecodeScale:         uintp("timecode-scale", "Timecode Scale", "Timecode Scale. Unit: milliseconds", 1),
	propKeyFrameFragmentation: boolp("key-frame-fragmentation", "Do key frame fragmentation", "If true, generate new fragment on each keyframe, otherwise generate new fragment on first keyframe after fragment-duration has passed.", true),
	propFrameTimecodes:        boolp("frame-timecodes", "Do frame timecodes", "Do frame timecodes", true),
	propAbsoluteFragmentTimes: boolp("absolute-fragment-times", "Use absolute fragment time", "Use absolute fragment time", true),
	propFragmentAcks:          boolp("fragment-acks", "Do fragment acks", "Do fragment acks", true),
	propRestartOnError:        boolp("restart-on-error", "Do restart on error", "Do restart on error", true),
	propRecalculateMetrics:    boolp("recalculate-metrics", "Do recalculate metrics", "Do recalculate metrics", true),
	propFramerate:             uintp("framerate", "Framerate", "Framerate", 25),
	propAvgBandwidthBps:       uintp("avg-bandwidth-bps", "Average bandwidth bps", "Average bandwidth bps", 4*1024*1024),
	propBufferDuration:        uintp("buffer-duration", "Buffer duration", "Buffer duration. Unit: seconds", 120),
	propReplayDuration:        uintp("replay-duration", "Replay duration", "Replay duration. Unit: seconds", 40),
	propConnectionStaleness:   uintp("connection-staleness", "Connection staleness", "Connection staleness. Unit: seconds", 60),
	propCodecID:               str("codec-id", "Codec ID", "Codec ID", "V_MPEG4/ISO/AVC"),
	propTrackName:             str("track-name", "Track name", "Track name", "kinesis_video"),
	propAccessKey:             str("access-key", "Access Key", "AWS Access Key", defaultAccessKey),
	propSecretKey:             str("secret-key", "Secret Key", "AWS Secret Key", defaultSecretKey),
	propSessionToken:          str("session-token", "Session token", "AWS Session token", defaultSessionToken),
	propAWSRegion:             str("aws-region", "AWS Region", "AWS Region", "us-west-2"),
	propRotationPeriod:        uintp("rotation-period", "Rotation Period", "Rotation Period. Unit: seconds", 3600),
	propLogConfig:             str("log-config", "Log Configuration", "Log Configuration Path", "../kvs_log_configuration"),
	propStorageSize:           uintp("storage-size", "Storage Size", "Storage Size. Unit: MB", 128),
	propStopStreamTimeout:     uintp("stop-stream-timeout", "Stop stream timeout", "Stop stream timeout: seconds", 120),
	propConnectionTimeout:     uintp("connection-timeout", "Service call connection timeout", "Service call connection timeout: seconds", 5),
	propCompletionTimeout:     uintp("completion-timeout", "Service call completion timeout", "Service call completion timeout: seconds. Should be more than connection timeout. If it isnt, SDK will override with defaults", 10),
	propCredentialPath:        str("credential-path", "Credential File Path", "Credential File Path", ".kvs/credential"),
	propIoTCertificate:        structp("iot-certificate", "Iot Certificate", "Use aws iot certificate to obtain credentials"),
	propStreamTags:            structp("stream-tags", "Stream Tags", "key-value pair that you can define and assign to each stream"),
	// The param spec says 0; the instance init sets the current time (seconds).
	propFileStartTime: propDef{spec: glib.NewUint64Param("file-start-time", "File Start Time", "Epoch time that the file starts in kinesis video stream. By default, current time is used. Unit: Seconds", 0, ^uint64(0), 0, rw),
		kind: kindUint64, def: uint64(0)}.startingAs(func() any { return uint64(time.Now().Unix()) }),
	propDisableBufferClipping: boolp("disable-buffer-clipping", "Disable Buffer Clipping", "Set to true only if your src/mux elements produce GST_CLOCK_TIME_NONE for segment start times.  It is non-standard behavior to set this to true, only use if there are known issues with your src/mux segment start/stop times.", false),
	propUseOriginalPTS:        boolp("use-original-pts", "Use Original PTS", "Set to true only if you want to use the original presentation time stamp on the buffer and that timestamp is expected to be a valid epoch value in nanoseconds. Most encoders will not have a valid PTS", false),
	propGetKVSMetrics:         boolp("get-kvs-metrics", "Get client and stream level metrics on every key frame", "Set to true if you want to read on the producer streamMetrics and clientMetrics object every key frame. Disabled by default", false),
	propAllowCreateStream:     boolp("allow-create-stream", "Allow creating stream if stream does not exist", "Set to true if allowing create stream call, false otherwise", true),
	propUserAgent:             str("user-agent", "Custom user agent name", "Name of the user agent", defaultUserAgent).startingAs(func() any { return UserAgent }),
	propReport: {spec: glib.NewStringParam("report", "Report path (stand-in only)",
		"Where the kvssink stand-in writes its JSON report (temp file + rename, at each change of state, "+
			"at EOS and about 4 times a second while running). Unset: $"+EnvReport+"; neither: no report.",
		nil, rw), kind: kindString, def: ""},
	propAcks: {spec: glib.NewStringParam("acks", "Acknowledgements (stand-in only)",
		"What the service the stand-in plays acknowledges (with fragment-acks=true): persist (BUFFERING, "+
			"RECEIVED, PERSISTED per fragment, like a healthy service), hold (BUFFERING only: fragments never "+
			"persisted), off, error:<ErrorId> (an ERROR acknowledgement per fragment) or stream-error:<status> "+
			"(the stream-error signal per fragment). Read at every fragment. Unset: $"+EnvAcks+", else persist.",
		nil, rw), kind: kindString, def: ""},
}
