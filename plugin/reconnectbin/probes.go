package reconnectbin

import (
	"fmt"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/failover"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
	"github.com/kvsrelay/kvsrelay/internal/timeline"
)

// instanceProbe watches one instance's output: buffers prove it is alive, its
// segment is kept for the output timeline, and its EOS becomes a rebuild
// instead of ending the stream.
func (b *reconnectBin) instanceProbe(c *instance, s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	if info.Type()&gst.PadProbeTypeBuffer != 0 {
		return b.instanceBuffer(c, s, info)
	}
	if info.Type()&gst.PadProbeTypeBufferList != 0 {
		return b.instanceBufferList(c, s, info)
	}
	if info.Type()&gst.PadProbeTypeEventDownstream == 0 {
		return gst.PadProbeOK
	}
	ev := info.GetEvent()
	switch ev.Type() {
	case gst.EventTypeSegment:
		seg := segmentOf(ev)
		c.mu.Lock()
		c.segments[s] = seg
		c.mu.Unlock()
	case gst.EventTypeCaps:
		if s == streamAudio {
			var f sampleFormat
			if rate, bpf, ok := gstshim.SampleFormat(ev.ParseCaps()); ok {
				f = sampleFormat{rate: rate, bytesPerFrame: bpf}
			}
			c.mu.Lock()
			c.samples[s] = f
			c.mu.Unlock()
			c.run.output.timeline.SetSampleRate(int(s), f.rate)
		}
	case gst.EventTypeEOS:
		if c.run.output.endRequested.Load() || !c.restartOnEOS {
			return gst.PadProbeOK
		}
		b.instanceFailed(c, supervisor.ReasonEOS, "end of stream")
		return gst.PadProbeDrop
	}
	return gst.PadProbeOK
}

// instanceBufferList splits a buffer list (RTP payloaders push them) into
// single pushes on the same pad, so every buffer passes instanceBuffer: a list
// would otherwise leave the bin with the source's own timestamps. The
// list's flow return is lost; the next push reports a flushing or
// unlinked peer anyway.
func (b *reconnectBin) instanceBufferList(c *instance, s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	list := info.GetBufferList()
	c.mu.Lock()
	ghost := c.pads[s]
	c.mu.Unlock()
	if list == nil || ghost == nil {
		return gst.PadProbeDrop
	}
	n := list.Length()
	bufs := make([]*gst.Buffer, 0, n)
	for i := uint(0); i < n; i++ {
		bufs = append(bufs, list.GetBufferAt(i))
	}
	for _, buf := range bufs {
		if ret := ghost.Push(buf); ret != gst.FlowOK {
			break
		}
	}
	return gst.PadProbeDrop
}

// instanceBuffer handles one buffer of a source instance on its way out of the
// bin, on that instance's streaming thread: keyframe gate, placement on the
// output timeline (taking the stream over from fallback fill), timestamps
// and flags rewritten. Fill buffers never pass here, only source buffers.
func (b *reconnectBin) instanceBuffer(c *instance, s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	run := c.run
	buf := info.GetBuffer()
	if buf == nil {
		return gst.PadProbeOK
	}
	// The stream is alive whatever becomes of this buffer below (a keyframe
	// wait, audio waiting for the video's placement).
	c.streams.Buffer(s.kind())
	if s == streamMain && !run.videoSeen.Load() {
		run.videoSeen.Store(true)
	}
	o := &run.output
	if o.endRequested.Load() || c.rejected.Load() {
		return gst.PadProbeDrop
	}
	// With a backup source, only the instance feeding the output goes on;
	// its placement below is done before the other may take over.
	placed, switched := b.holdSwitch(c, s, buf)
	if placed == nil {
		return gst.PadProbeDrop
	}
	defer placed()
	if s != streamMain && o.timeline.Filling(int(streamMain)) {
		// While the video is being filled the instance has not been placed
		// (or is being placed anew): its audio waits for the video to decide
		// where the instance goes, so both stay in sync. Fill silence covers
		// the audio meanwhile; the streaming thread is never held.
		return gst.PadProbeDrop
	}
	if !c.keyframeSeen[s].Load() && buf.HasFlags(gst.BufferFlagDeltaUnit) {
		o.keyframeWaits.Add(1)
		return gst.PadProbeDrop
	}
	if s == streamMain && o.timeline.Filling(int(streamMain)) {
		// Coming back from fallback fill (a rebuilt instance, or one that
		// kept running through a short gap): place the instance anew, after
		// the fill.
		o.timeline.StartInstance()
	}
	c.mu.Lock()
	seg, samples := c.segments[s], c.samples[s]
	c.mu.Unlock()
	pts, dts := runningTime(seg, buf.PresentationTimestamp()), runningTime(seg, buf.DecodingTimestamp())
	dur := timeline.None
	if d := buf.Duration(); d != gst.ClockTimeNone {
		dur = int64(d)
	} else if samples.rate > 0 {
		// RTP depayloaders give audio no duration: without it the
		// timeline cannot see one buffer overlap the last.
		dur = int64(buf.GetSize()) / int64(samples.bytesPerFrame) * int64(time.Second) / int64(samples.rate)
	}
	now := timeline.None
	if rt := gstshim.RunningTimeNow(b.self.Element); rt != gst.ClockTimeNone {
		now = int64(rt)
	}
	place := o.timeline.Place(int(s), pts, dts, dur, now)
	placed()
	outPTS, outDTS, ok := place.PTS, place.DTS, place.OK
	if place.Late {
		// It would overlap what already went out on this stream (audio that
		// arrived ahead of the video an instance was placed by), or start
		// before output running time 0 (BeforeStart), where it would leave
		// without a timestamp.
		return gst.PadProbeDrop
	}
	if place.TrimSamples > 0 && samples.rate > 0 {
		cut := place.TrimSamples * int64(time.Second) / int64(samples.rate)
		gstshim.TrimProbeBufferHead(info, int(place.TrimSamples)*samples.bytesPerFrame, gst.ClockTime(dur-cut))
	}
	c.keyframeSeen[s].Store(true)
	if place.TookOver && place.HadPrev && ok {
		switch {
		case s == streamAudio && outPTS-place.PrevEnd > int64(5*time.Millisecond):
			// The audio that would have joined the fill silence seamlessly
			// was dropped while the video was being placed: pad the hole.
			b.padAudio(place.PrevEnd, outPTS)
		case s == streamMain:
			// The filler may not have caught up to where the source goes.
			b.padVideoHole(run, place.PrevEnd, outPTS)
		}
	}
	if ok && outDTS == timeline.None && buf.HasFlags(gst.BufferFlagHeader) {
		// kvssink drops a HEADER buffer without a DTS, and RTP depayloaders
		// give none: the keyframe carrying SPS/PPS would be lost, and every
		// frame after it until the next keyframe. A keyframe decodes first,
		// so its DTS is its PTS.
		outDTS = outPTS
	}
	if ok {
		gstshim.SetProbeBufferTimestamps(info, clockTime(outPTS), clockTime(outDTS))
		if s == streamMain {
			b.endOutage(run, outPTS)
		}
	}
	gstshim.SetProbeBufferFlags(info, 0, gst.BufferFlagDiscont)
	if s == streamMain && ok {
		b.watchKeyframes(c, outPTS, !buf.HasFlags(gst.BufferFlagDeltaUnit))
	}
	if s == streamMain && run.fallback.enabled() {
		o.last.HoldProbeBuffer(info)
	}
	b.noteSourceBuffer(c)
	if c.role.src == failover.Backup {
		return b.pushBackupBuffer(c, info, switched)
	}
	return gst.PadProbeOK
}

// noteSourceBuffer tells instance c's supervisor it is alive, and announces
// the end of the main source's outage.
func (b *reconnectBin) noteSourceBuffer(c *instance) {
	run := c.run
	rec := c.role.sup.Buffer(c.gen)
	if rec == nil || c.role.src == failover.Backup {
		return
	}
	cat.LogInfo(fmt.Sprintf("source instance %d recovered after %v and %d attempts", c.gen, rec.Outage, rec.Attempts))
	b.postElementMessage("reconnectbin-recovered", map[string]any{
		"outage":   uint64(rec.Outage),
		"attempts": rec.Attempts,
	})
	st := run.sup.Stats()
	run.rep().recovered(statusLine(string(st.Status), st.Restarts, rec.Outage))
}

// watchKeyframes measures the keyframe interval of the video leaving the
// bin and warns once per run when it is longer than kvssink's fragment
// limit: kvssink would refuse every fragment, with no error naming the GOP.
func (b *reconnectBin) watchKeyframes(c *instance, pts int64, keyframe bool) {
	id := c.gen
	if c.role.src == failover.Backup {
		id |= 1 << 62 // the backup's generations count apart from the main's
	}
	long, first := c.run.gop.Frame(id, pts, keyframe)
	if !first {
		return
	}
	text := "reconnectbin: " + long.Text()
	cat.LogWarning(text)
	gstshim.PostError(b.self.Element, true, gstshim.StreamError, gst.StreamErrorFormat, text,
		fmt.Sprintf("keyframe-interval=%d limit=%d", uint64(long.Interval), uint64(long.Limit)))
}

// padAudio pushes silence over [from, to) on the audio pad, from the audio
// streaming thread, just before that thread's own buffer.
func (b *reconnectBin) padAudio(from, to int64) {
	pad := b.existingOutputPad(streamAudio)
	if pad == nil {
		return
	}
	if silence := gstshim.Silence(pad.GetCurrentCaps(), gst.ClockTime(from), gst.ClockTime(to-from)); silence != nil {
		b.push(streamAudio, pad, silence)
	}
}

// instanceFailed turns a failure of instance c into at most one rebuild.
// It runs on streaming threads and in HandleMessage: lock-free.
func (b *reconnectBin) instanceFailed(c *instance, reason supervisor.Reason, text string) {
	switch c.phase() {
	case phaseStarting:
		c.startErr.CompareAndSwap(nil, &text)
		if c.phase() == phaseStarting {
			return // the start's verdict will see it
		}
		// The start's verdict may have been given meanwhile, without it:
		// the supervisor takes one failure per instance, so report it too.
		if c.phase() != phaseRunning {
			return
		}
	case phaseRunning:
	default:
		return // not in the bin yet, or any more: not the bin's failure
	}
	run := c.run
	if b.run.Load() != run {
		return // its run has ended
	}
	if d, ok := c.role.sup.Fail(c.gen, reason, text); ok {
		c.role.decide(d)
	}
}

// segmentOf copies what running time needs out of a SEGMENT event (the
// parsed segment is valid only while the event is).
func segmentOf(ev *gst.Event) timeline.Segment {
	seg := ev.ParseSegment()
	return timeline.Segment{Time: seg.GetFormat() == gst.FormatTime, Start: seg.GetStart(),
		Offset: seg.GetOffset(), Base: seg.GetBase(), Rate: seg.GetRate()}
}

// runningTime converts a buffer timestamp with the instance's segment.
func runningTime(seg timeline.Segment, ts gst.ClockTime) int64 {
	if ts == gst.ClockTimeNone {
		return timeline.None
	}
	rt, ok := seg.RunningTime(uint64(ts))
	if !ok {
		return timeline.None
	}
	return rt
}

func clockTime(t int64) gst.ClockTime {
	if t < 0 {
		return gst.ClockTimeNone
	}
	return gst.ClockTime(t)
}
