// Package withhold decides which buffers on their way into kvssink are
// fallback fill that must not be uploaded (reconnectbin's
// fallback-upload=false): the fill keeps the encoders and kvssink's
// collectpads fed through an outage, but KVS stores (and bills) only what the
// camera sent.
//
// reconnectbin marks each outage in band, with serialized events that pass
// through the encoders in order with the frames: a start before the first
// fill buffer, an end (carrying the running time where the source's video
// took over) just before the source's first buffer after it. A gate sits in
// front of each kvssink pad and sees the encoded buffers and the marks.
//
// Video (position first, then time): from the start mark every buffer is
// withheld; after the end mark, every buffer until a keyframe at or after
// the takeover time. The time check keeps a fill frame out that a race put
// between the end mark and the source's first frame (the filler and the
// source push from different threads); reconnectbin asks the encoder for a
// keyframe at exactly the takeover time, so nothing the camera sent is
// lost.
//
// Audio (time): an audio encoder holds marks until its next output and
// re-chunks samples, so the start mark carries the running time of the first
// fill sample; after it, buffers at or after that time are withheld until
// the takeover time (the video's, read from the episode once it is known:
// reconnectbin sets it before any source buffer leaves after the outage), the
// same span as the video. Earlier buffers pass (samples from before the
// outage, held by the encoder's lookahead).
//
// Times are running times in nanoseconds; None is unknown.
package withhold

// None is an unknown time.
const None int64 = -1

// Verdict is a gate's decision on one buffer.
type Verdict struct {
	// Withhold: keep the buffer out of the upload.
	Withhold bool
	// Resumed: this buffer is the first one let through after an outage;
	// Withheld counts what was held back in that outage (on this gate).
	Resumed  bool
	Withheld uint64
	Episode  uint64
	// From is where an audio gate started withholding (the running time
	// of the first fill sample it was told of); None for video, whose
	// gate goes by the marks' positions.
	From int64
}

type videoState int

const (
	videoPassing videoState = iota
	videoWithholding
	videoAwaitingKeyframe
)

// Video is the gate on one video stream. Not safe for concurrent use: one
// pad's buffers and serialized events come in order, from one thread at a
// time.
type Video struct {
	state    videoState
	episode  uint64
	resumeAt int64
	withheld uint64
}

// Start is an outage's start mark: withhold from here on. An outage that
// starts before the last one resumed continues its count.
func (v *Video) Start(episode uint64) {
	if v.state == videoPassing {
		v.withheld = 0
	}
	v.state, v.episode, v.resumeAt = videoWithholding, episode, None
}

// End is the end mark of the episode started last: let the stream resume
// at its first keyframe at or after resumeAt (the takeover's running time;
// None: the first keyframe). An end of any other episode, or one without
// its start, changes nothing.
func (v *Video) End(episode uint64, resumeAt int64) {
	if v.state != videoWithholding || v.episode != episode {
		return
	}
	v.state, v.resumeAt = videoAwaitingKeyframe, resumeAt
}

// Withholding reports whether an outage is open on this gate.
func (v *Video) Withholding() bool { return v.state != videoPassing }

// Buffer decides on one buffer: keyframe is a buffer without DELTA_UNIT,
// pts its running time (None when it has none).
func (v *Video) Buffer(keyframe bool, pts int64) Verdict {
	switch v.state {
	case videoWithholding:
		v.withheld++
		return Verdict{Withhold: true, Episode: v.episode}
	case videoAwaitingKeyframe:
		if !keyframe || (v.resumeAt != None && (pts == None || pts < v.resumeAt)) {
			v.withheld++
			return Verdict{Withhold: true, Episode: v.episode}
		}
		v.state = videoPassing
		return Verdict{Resumed: true, Withheld: v.withheld, Episode: v.episode, From: None}
	}
	return Verdict{}
}

// Audio is the gate on one audio stream. Not safe for concurrent use.
type Audio struct {
	active   bool
	episode  uint64
	from     int64
	withheld uint64
}

// Start is an outage's start mark: from is the running time of the first
// fill sample after it.
func (a *Audio) Start(episode uint64, from int64) {
	if !a.active {
		a.withheld = 0
		a.from = from
	}
	// An outage that starts before the last one resumed keeps its start.
	a.active, a.episode = true, episode
}

// Episode is the outage open on this gate, if any.
func (a *Audio) Episode() (uint64, bool) { return a.episode, a.active }

// Buffer decides on one buffer at running time pts; resumeAt is the open
// episode's takeover time (None while the outage lasts).
func (a *Audio) Buffer(pts, resumeAt int64) Verdict {
	if !a.active {
		return Verdict{}
	}
	if pts != None && pts < a.from {
		return Verdict{} // from before the outage
	}
	if resumeAt == None || pts == None || pts < resumeAt {
		a.withheld++
		return Verdict{Withhold: true, Episode: a.episode}
	}
	a.active = false
	return Verdict{Resumed: true, Withheld: a.withheld, Episode: a.episode, From: a.from}
}
