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
package kvssinkstandin

import (
	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// FactoryName is the real element's factory name.
const FactoryName = "kvssink"

// Environment variables of the stand-in.
const (
	EnvReport        = "KVSSINK_STANDIN_REPORT"
	EnvLapse         = "KVSSINK_STANDIN_LAPSE"
	EnvStaticExpires = "KVSSINK_STANDIN_STATIC_EXPIRES"
	EnvClockOffset   = "KVSSINK_STANDIN_CLOCK_OFFSET"
)

// Pad template caps (the contract's subset of the real templates).
const (
	VideoCaps = "video/x-h264, stream-format=(string)avc, alignment=(string)au; " +
		"video/x-h265, stream-format=(string)hvc1, alignment=(string)au"
	AudioCaps = "audio/mpeg, mpegversion=(int){2,4}, stream-format=(string)raw; audio/x-alaw; audio/x-mulaw"
)

var cat = gst.NewDebugCategory("kvssinkstandin", gst.DebugColorNone, "kvssink stand-in (tests only)")

// Register registers the stand-in as "kvssink" with plugin, or statically
// when plugin is nil.
func Register(plugin *gst.Plugin) bool {
	return gst.RegisterElement(plugin, FactoryName, gst.RankNone, &standin{}, gst.ExtendsBin)
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
	def  any
}

func strp(s string) *string { return &s }

const maxUint = uint(^uint32(0))

func str(name, blurb, def string) propDef {
	return propDef{glib.NewStringParam(name, name, blurb, strp(def), rw), kindString, def}
}
func uintp(name, blurb string, def uint) propDef {
	return propDef{glib.NewUintParam(name, name, blurb, 0, maxUint, def, rw), kindUint, def}
}
func boolp(name, blurb string, def bool) propDef {
	return propDef{glib.NewBoolParam(name, name, blurb, def, rw), kindBool, def}
}
func structp(name, blurb string) propDef {
	return propDef{glib.NewBoxedParam(name, name, blurb, gst.TypeStructure, rw), kindStructure, ""}
}

// Property indexes: props[i] is what SetProperty/GetProperty receive as id.
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
	propCredentialPath
	propIoTCertificate
	propStreamTags
	propFileStartTime
	propDisableBufferClipping
	propUseOriginalPTS
	propGetKVSMetrics
	propReport
	numProps
)

// props mirrors the real element's properties (names, types, defaults),
// plus the stand-in's `report`.
var props = [numProps]propDef{
	propStreamName:            str("stream-name", "Name of the destination stream", "DEFAULT_STREAM"),
	propRetentionPeriod:       uintp("retention-period", "Length of time stream is preserved. Unit: hours", 2),
	propStreamingType:         {gstshim.KvsStreamingTypeParam("streaming-type", "Streaming Type", "Streaming type", 0), kindEnum, 0},
	propContentType:           str("content-type", "content type", "video/h264"),
	propMaxLatency:            uintp("max-latency", "Max Latency. Unit: seconds", 60),
	propFragmentDuration:      uintp("fragment-duration", "Fragment Duration. Unit: miliseconds", 2000),
	propTimecodeScale:         uintp("timecode-scale", "Timecode Scale. Unit: milliseconds", 1),
	propKeyFrameFragmentation: boolp("key-frame-fragmentation", "If true, generate new fragment on each keyframe, otherwise generate new fragment on first keyframe after fragment-duration has passed.", true),
	propFrameTimecodes:        boolp("frame-timecodes", "Do frame timecodes", true),
	propAbsoluteFragmentTimes: boolp("absolute-fragment-times", "Use absolute fragment time", true),
	propFragmentAcks:          boolp("fragment-acks", "Do fragment acks", true),
	propRestartOnError:        boolp("restart-on-error", "Do restart on error", true),
	propRecalculateMetrics:    boolp("recalculate-metrics", "Do recalculate metrics", true),
	propFramerate:             uintp("framerate", "Framerate", 25),
	propAvgBandwidthBps:       uintp("avg-bandwidth-bps", "Average bandwidth bps", 4*1024*1024),
	propBufferDuration:        uintp("buffer-duration", "Buffer duration. Unit: seconds", 120),
	propReplayDuration:        uintp("replay-duration", "Replay duration. Unit: seconds", 40),
	propConnectionStaleness:   uintp("connection-staleness", "Connection staleness. Unit: seconds", 60),
	propCodecID:               str("codec-id", "Codec ID", "V_MPEG4/ISO/AVC"),
	propTrackName:             str("track-name", "Track name", "kinesis_video"),
	propAccessKey:             str("access-key", "AWS Access Key", defaultAccessKey),
	propSecretKey:             str("secret-key", "AWS Secret Key", "secret_key"),
	propSessionToken:          str("session-token", "AWS Session token", ""),
	propAWSRegion:             str("aws-region", "AWS Region", "us-west-2"),
	propRotationPeriod:        uintp("rotation-period", "Rotation Period. Unit: seconds", 3600),
	propLogConfig:             str("log-config", "Log Configuration Path", "../kvs_log_configuration"),
	propStorageSize:           uintp("storage-size", "Storage Size. Unit: MB", 128),
	propStopStreamTimeout:     uintp("stop-stream-timeout", "Stop stream timeout: once triggered, the stream stops. Unit: seconds", 120),
	propCredentialPath:        str("credential-path", "Credential File Path", ".kvs/credential"),
	propIoTCertificate:        structp("iot-certificate", "Use aws iot certificate to obtain credentials"),
	propStreamTags:            structp("stream-tags", "key-value pair that you can define and assign to each stream"),
	propFileStartTime:         {glib.NewUint64Param("file-start-time", "File Start Time", "Epoch time that the file starts in kinesis video stream. By default, current time is used. Unit: Seconds", 0, ^uint64(0), 0, rw), kindUint64, uint64(0)},
	propDisableBufferClipping: boolp("disable-buffer-clipping", "Set to true only if your src/mux elements produce GST_CLOCK_TIME_NONE for segment start times. It is non-standard behavior to set this to true, only use if there are known issues with your src/mux segment start/stop times.", false),
	propUseOriginalPTS:        boolp("use-original-pts", "Set to true only if you want to use the original presentation time stamp on the buffer and that timestamp is expected to be a valid epoch value in nanoseconds. Most encoders will not have a valid PTS", false),
	propGetKVSMetrics:         boolp("get-kvs-metrics", "Set to true if you would like to get the metrics from KVS", false),
	propReport: {glib.NewStringParam("report", "Report path (stand-in only)",
		"Where the kvssink stand-in writes its JSON report (temp file + rename, at each change of state, "+
			"at EOS and about 4 times a second while running). Unset: $"+EnvReport+"; neither: no report.",
		nil, rw), kindString, ""},
}
