package kvssinkstandin

// kvssink's put_frame path for one track, as the contract describes it:
// collectpads clipping to the segment (gst_collect_pads_clip_running_time),
// the droppable-flags test, the DTS fill-in, the producer's wait for a key
// frame, and the MKV generator's timestamp checks. Pure: no GStreamer calls,
// only its flag values.

import (
	"fmt"
	"math"

	"github.com/go-gst/go-gst/gst"
)

// Drop reasons as counted in Report.FramesDropped.
const (
	DropCorrupted          = "corrupted"
	DropDecodeOnly         = "decode-only"
	DropDiscont            = "discont"       // flags exactly DISCONT (a keyframe carrying only DISCONT)
	DropDiscontDelta       = "discont-delta" // DISCONT together with DELTA_UNIT
	DropHeaderNoTimestamp  = "header-no-ts"
	DropNotKeyframe        = "not-keyframe" // before the track's first keyframe since NULL->READY
	DropBackwards          = "backwards"
	DropFragmentTooLong    = "fragment-too-long"
	DropCredentialsExpired = "credentials-expired"
	DropClipped            = "clipped" // outside the segment (collectpads clipping)
	DropNoPTS              = "no-pts"
	DropNoSegment          = "no-segment" // a buffer before any TIME segment
)

// Put-frame statuses kvssink posts as "put frame error occurred. Status: 0x%08x".
const (
	StatusBeforeClusterStart uint32 = 0x32000002 // timestamp before the current fragment's start
	StatusDTSBelowPrevious   uint32 = 0x30000005 // decoding timestamp below the previous frame's
	StatusFragmentTooLong    uint32 = 0x3200000c // more than 32767 timecode units inside one fragment
)

const clockNone = uint64(gst.ClockTimeNone)

// defaultFrameDuration is what kvssink adds to the previous DTS for a buffer
// without DTS (DEFAULT_FRAME_DURATION_MS).
const defaultFrameDuration = uint64(2_000_000)

// segment is the part of a TIME GstSegment that running time needs.
type segment struct {
	rate         float64
	start, stop  uint64
	base, offset uint64
	duration     uint64
}

// runningTimeFull mirrors gst_segment_to_running_time_full: sign 1 for a
// positive running time, -1 for a negative one, 0 when undefined.
func (s segment) runningTimeFull(pos uint64) (int, uint64) {
	if pos == clockNone {
		return 0, 0
	}
	var result uint64
	sign := 0
	if s.rate > 0 {
		start := s.start + s.offset
		if pos >= start {
			result, sign = pos-start, 1
		} else {
			result, sign = start-pos, -1
		}
	} else {
		stop := s.stop
		if stop == clockNone && s.duration != clockNone {
			stop = s.start + s.duration
		}
		if stop == clockNone {
			return 0, 0
		}
		stop -= s.offset
		if stop >= pos {
			result, sign = stop-pos, 1
		} else {
			result, sign = pos-stop, -1
		}
	}
	if abs := math.Abs(s.rate); abs != 1.0 && abs != 0 {
		result = uint64(float64(result) / abs)
	}
	switch {
	case sign == 1:
		return 1, result + s.base
	case s.base >= result:
		return 1, s.base - result
	default:
		return -1, result - s.base
	}
}

// runningTime mirrors gst_segment_to_running_time: clockNone outside the
// segment or when negative.
func (s segment) runningTime(pos uint64) uint64 {
	if pos == clockNone || pos < s.start || (s.stop != clockNone && pos > s.stop) {
		return clockNone
	}
	sign, rt := s.runningTimeFull(pos)
	if sign != 1 {
		return clockNone
	}
	return rt
}

// trackConfig is what the property snapshot says about fragmenting.
type trackConfig struct {
	// fragments: whether this track's keyframes start fragments (false for
	// the audio track of an audio+video stream, whose fragments follow video).
	fragments bool
	// noKeyframes: the audio track of an audio+video stream. kvssink flags
	// key frames only on video then (FRAME_FLAG_KEY_FRAME in
	// gst_kvs_sink_handle_buffer's AUDIO_VIDEO case), so its frames never
	// count as keyframes: they neither end the wait for the first keyframe
	// nor pass before it.
	noKeyframes           bool
	keyFrameFragmentation bool
	fragmentDuration      uint64 // ns
	timecodeScale         uint64 // ns per MKV timecode unit
	disableClipping       bool
}

// frame is one buffer after clipping and the DTS fill-in.
type frame struct {
	ptsRT    uint64 // running time of PTS
	dtsRT    uint64 // running time of DTS, or the filled-in value
	dtsValid bool   // the buffer carried a DTS with positive running time
	keyframe bool
}

// decode is the frame's decoding running time (its PTS when it has no DTS).
func (f frame) decode() uint64 {
	if f.dtsValid {
		return f.dtsRT
	}
	return f.ptsRT
}

// streamState is the put_frame state kvssink keeps per element, shared by
// its tracks: data->last_dts (the DTS fill-in), the producer's wait for the
// first keyframe (skipNonKeyFrames), the MKV generator's current cluster
// (lastClusterPts/Dts) and the content view's last item (every frame's DTS
// must be at or after the previous frame's, whatever its track).
type streamState struct {
	lastDTS uint64

	// waitKeyframe: no keyframe yet, or none since an end-of-fragment
	// marker (eofr). The state is made at each NULL->READY and flushes do
	// not reset it (kvssink gives them no special handling).
	waitKeyframe bool
	eofr         bool

	hasPrev bool
	prevDTS uint64

	hasCluster bool
	clusterPTS uint64
	clusterDTS uint64
}

// trackChecker holds one track's put_frame state and the stream's it shares
// with the element's other tracks (shareStream). Not safe for concurrent use.
type trackChecker struct {
	cfg    trackConfig
	seg    segment
	hasSeg bool
	stream *streamState
}

func newTrackChecker(cfg trackConfig) *trackChecker {
	if cfg.timecodeScale == 0 {
		cfg.timecodeScale = 1_000_000
	}
	return &trackChecker{cfg: cfg, stream: &streamState{waitKeyframe: true}}
}

// shareStream gives the checkers one stream state, as the tracks of one
// kvssink have.
func shareStream(checkers ...*trackChecker) {
	st := &streamState{waitKeyframe: true}
	for _, c := range checkers {
		c.stream = st
	}
}

// setSegment stores the segment from a SEGMENT event.
func (c *trackChecker) setSegment(s segment) { c.seg, c.hasSeg = s, true }

// clip is collectpads' clipping to the segment and conversion to running
// time (gst_collect_pads_clip_running_time), done as a buffer arrives.
func (c *trackChecker) clip(pts, dts uint64) (frame, string) {
	if !c.hasSeg {
		return frame{}, DropNoSegment
	}
	f := frame{ptsRT: pts, dtsRT: dts, dtsValid: dts != clockNone}
	if !c.cfg.disableClipping && (pts != clockNone || dts != clockNone) {
		if pts != clockNone {
			f.ptsRT = c.seg.runningTime(pts)
			if f.ptsRT == clockNone {
				return frame{}, DropClipped
			}
		}
		sign, rt := c.seg.runningTimeFull(dts)
		if sign > 0 {
			f.dtsRT, f.dtsValid = rt, true
		} else {
			f.dtsRT, f.dtsValid = clockNone, false
		}
	}
	return f, ""
}

// admit is the start of gst_kvs_sink_handle_buffer, run as collectpads
// hands the buffer over: the droppable-flags rule and the DTS fill-in.
func (c *trackChecker) admit(flags gst.BufferFlags, f frame) (frame, string) {
	switch {
	case flags&gst.BufferFlagCorrupted != 0:
		return frame{}, DropCorrupted
	case flags&gst.BufferFlagDecodeOnly != 0:
		return frame{}, DropDecodeOnly
	case flags == gst.BufferFlagDiscont:
		return frame{}, DropDiscont
	case flags&gst.BufferFlagDiscont != 0 && flags&gst.BufferFlagDeltaUnit != 0:
		return frame{}, DropDiscontDelta
	case flags&gst.BufferFlagHeader != 0 && (f.ptsRT == clockNone || f.dtsRT == clockNone):
		return frame{}, DropHeaderNoTimestamp
	}
	if f.dtsRT == clockNone {
		f.dtsRT = c.stream.lastDTS + defaultFrameDuration
	}
	c.stream.lastDTS = f.dtsRT
	if f.ptsRT == clockNone {
		return frame{}, DropNoPTS
	}
	f.keyframe = flags&gst.BufferFlagDeltaUnit == 0 && !c.cfg.noKeyframes
	return f, ""
}

// prepare is clip then admit, for a buffer handed over at once.
func (c *trackChecker) prepare(flags gst.BufferFlags, pts, dts uint64) (frame, string) {
	f, reason := c.clip(pts, dts)
	if reason != "" {
		return f, reason
	}
	return c.admit(flags, f)
}

// endOfFragment is kvssink's end-of-fragment marker (put at a pad's EOS):
// the first one makes the producer skip non-key frames until the next key
// frame (Stream.c putFrame, eofrFrame); a second one in a row is refused.
func (c *trackChecker) endOfFragment() {
	if c.stream.eofr {
		return
	}
	c.stream.eofr, c.stream.waitKeyframe = true, true
}

// put runs the producer's checks on a prepared frame: the keyframe wait,
// the MKV generator's cluster rules and the content view's DTS order. It
// returns the drop reason and the put-frame status to post as a warning (0
// for silent drops), or "" when accepted; newFragment reports that the
// frame started a fragment.
func (c *trackChecker) put(f frame) (reason string, status uint32, newFragment bool) {
	st := c.stream
	if st.waitKeyframe {
		if !f.keyframe {
			return DropNotKeyframe, 0, false
		}
		st.waitKeyframe, st.eofr = false, false
	}
	// mkvgenValidateFrame: no frame of any track before the current cluster.
	if st.hasCluster && (f.ptsRT < st.clusterPTS || f.dtsRT < st.clusterDTS) {
		return DropBackwards, StatusBeforeClusterStart, false
	}
	switch {
	case c.cfg.fragments && f.keyframe && (c.cfg.keyFrameFragmentation || !st.hasCluster || f.ptsRT-st.clusterPTS >= c.cfg.fragmentDuration):
		st.hasCluster, st.clusterPTS, st.clusterDTS, newFragment = true, f.ptsRT, f.dtsRT, true
	case st.hasCluster && (f.ptsRT-st.clusterPTS)/c.cfg.timecodeScale > math.MaxInt16:
		return DropFragmentTooLong, StatusFragmentTooLong, false
	}
	// contentViewAddItem: the stream's frames in DTS order.
	if st.hasPrev && f.dtsRT < st.prevDTS {
		return DropBackwards, StatusDTSBelowPrevious, newFragment
	}
	st.hasPrev, st.prevDTS = true, f.dtsRT
	return "", 0, newFragment
}

// putFrameWarning is the text kvssink posts (as the warning's debug string).
func putFrameWarning(status uint32) string {
	return fmt.Sprintf("put frame error occurred. Status: 0x%08x", status)
}
