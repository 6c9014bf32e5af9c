package reconnectbin

import (
	"fmt"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
)

// checkCaps compares a source instance's caps with the first instance's and
// applies on-caps-change when they differ in what the sink depends on.
func (b *reconnectBin) checkCaps(run *runState, s stream, ev *gst.Event) gst.PadProbeReturn {
	caps := ev.ParseCaps()
	if caps == nil {
		return gst.PadProbeOK
	}
	id := capsIdentity(caps)
	o := &run.output
	o.capsMu.Lock()
	first := o.firstCaps[s]
	if first == "" {
		o.firstCaps[s] = id
	}
	o.capsMu.Unlock()
	if first == "" || first == id {
		return gst.PadProbeOK
	}
	c := run.current.Load()
	if o.endRequested.Load() || (c != nil && c.rejected.Load()) {
		// A dropped sticky caps event comes again with every buffer of the
		// rejected instance: it was reported once already.
		return gst.PadProbeDrop
	}
	o.capsChanges.Add(1)
	b.settingsMu.Lock()
	policy := b.settings.onCapsChange
	b.settingsMu.Unlock()
	text := fmt.Sprintf("the source came back with different caps: was %s, now %s", first, id)
	b.postElementMessage("reconnectbin-caps-changed", map[string]any{"pad": s.String(), "old": first, "new": id, "policy": policyNick(policy)})
	gstshim.PostError(b.self.Element, true, gstshim.StreamError, gst.StreamErrorFormat,
		"reconnectbin: "+text+" (on-caps-change="+policyNick(policy)+")", "")
	switch policy {
	case CapsChangePass:
		return gst.PadProbeOK
	case CapsChangeRetry:
		if c != nil {
			c.rejected.Store(true)
			b.instanceFailed(c, supervisor.ReasonError, text)
		}
		return gst.PadProbeDrop
	default:
		if c != nil {
			c.rejected.Store(true)
		}
		o.endRequested.Store(true)
		gstshim.PostError(b.self.Element, false, gstshim.StreamError, gst.StreamErrorFormat,
			"reconnectbin: "+text+"; kvssink keeps the first codec data, so the stream stops here "+
				"(set output-caps to re-encode at fixed caps, or on-caps-change=retry)", "")
		return gst.PadProbeDrop
	}
}

func policyNick(p int) string {
	switch p {
	case CapsChangeRetry:
		return "retry"
	case CapsChangePass:
		return "pass"
	default:
		return "error"
	}
}

// capsIdentity is what must not change under a sink that keeps its first
// configuration: for raw video the size, format and frame rate (an encoder
// would reconfigure and emit new codec data); for encoded media the size,
// stream format and codec data. Fields that vary harmlessly between runs of
// the same camera (level, colorimetry, a 0/1 frame rate) are left out.
func capsIdentity(caps *gst.Caps) string {
	if caps.GetSize() == 0 {
		return caps.String()
	}
	st := caps.GetStructureAt(0)
	fields := []string{"width", "height", "stream-format", "codec_data", "rate", "channels"}
	if st.Name() == "video/x-raw" {
		fields = []string{"width", "height", "format", "framerate", "pixel-aspect-ratio", "interlace-mode", "colorimetry", "chroma-site"}
	}
	id := st.Name()
	for _, field := range fields {
		if v := gstshim.StructureFieldString(st, field); v != "" {
			id += "," + field + "=" + v
		}
	}
	return id
}
