package reconnectbin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-gst/go-gst/gst"
)

// The audio pad's format. Silence has to go out before any source has run
// (a muxer or kvssink with an audio pad waits for audio before it writes
// anything), and the source's audio arriving later must not change the
// caps the audio encoder downstream was configured with. So one raw audio
// format holds for the whole run: output-audio-caps, else, with fallback on,
// one negotiated with downstream the first time it is needed; the source's
// raw audio is converted and resampled to it.

// preferredAudio is what negotiation settles on where downstream accepts it
// (audioconvert ! audioresample accept anything, AAC and Opus encoders take
// it).
const preferredAudio = "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2"

// audioFormat is the run's audio format (serialized fixed caps), decided once
// per run: output-audio-caps, else negotiated with downstream when fallback
// is on, else "" (the source's audio passes as it is, and no silence is
// made before the source had audio).
func (b *reconnectBin) audioFormat(run *runState) string {
	run.audioMu.Lock()
	defer run.audioMu.Unlock()
	if run.audioDecided {
		return run.audioCaps
	}
	b.settingsMu.Lock()
	s := b.settings
	b.settingsMu.Unlock()
	format := ""
	switch {
	case s.outputAudioCaps != "":
		format, _ = parseOutputAudioCaps(s.outputAudioCaps) // validated at NULL->READY
	case s.fallback != FallbackNone:
		pad := b.existingOutputPad(streamAudio)
		if pad == nil {
			return "" // not requested (yet): nothing to decide
		}
		var err error
		if format, err = negotiateAudio(pad); err != nil {
			cat.LogInfo(fmt.Sprintf("no silence on the audio pad: %v", err))
		} else {
			cat.LogInfo("audio pad format negotiated with downstream: " + format)
		}
	}
	run.audioCaps, run.audioDecided = format, true
	return format
}

// negotiateAudio fixes a raw audio format that pad's peer accepts,
// preferring preferredAudio.
func negotiateAudio(pad *gst.GhostPad) (string, error) {
	if pad.GetPeer() == nil {
		return "", errors.New("the audio pad is not linked")
	}
	peer := pad.PeerQueryCaps(gst.NewCapsFromString("audio/x-raw"))
	if peer == nil || peer.IsEmpty() || peer.IsAny() {
		if peer != nil && peer.IsAny() {
			peer = gst.NewCapsFromString(preferredAudio)
		} else {
			return "", errors.New("downstream takes no raw audio (encoded audio passed through)")
		}
	}
	caps := gst.NewCapsFromString(preferredAudio).Intersect(peer)
	if caps.IsEmpty() {
		caps = peer
	}
	fixed := caps.Fixate()
	format, err := parseOutputAudioCaps(fixed.String())
	if err != nil {
		return "", fmt.Errorf("downstream's raw audio %s: %w", fixed, err)
	}
	return format, nil
}

// isRawAudio reports whether pad carries raw audio (its negotiated caps, else
// those it can produce): what the audio converters can take.
func isRawAudio(pad *gst.Pad) bool {
	caps := pad.GetCurrentCaps()
	if caps == nil {
		caps = pad.QueryCaps(nil)
	}
	if caps == nil || caps.IsAny() || caps.IsEmpty() {
		return false
	}
	for i := 0; i < caps.GetSize(); i++ {
		if name := caps.GetStructureAt(i).Name(); !strings.HasPrefix(name, "audio/x-raw") {
			return false
		}
	}
	return true
}

// normalizeAudio converts and resamples pad to caps inside bin and returns
// the new output pad: every source instance's audio leaves the bin in the
// format the fallback silence has.
func normalizeAudio(bin *gst.Bin, pad *gst.Pad, caps string) (*gst.Pad, error) {
	convert, err1 := gst.NewElement("audioconvert")
	resample, err2 := gst.NewElement("audioresample")
	filter, err3 := gst.NewElementWithProperties("capsfilter", map[string]interface{}{"caps": gst.NewCapsFromString(caps)})
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("making the audio converters: %w", err)
	}
	chain := []*gst.Element{convert, resample, filter}
	if err := bin.AddMany(chain...); err != nil {
		return nil, fmt.Errorf("adding the audio converters: %w", err)
	}
	if err := gst.ElementLinkMany(chain...); err != nil {
		return nil, fmt.Errorf("linking the audio converters: %w", err)
	}
	if ret := pad.Link(convert.GetStaticPad("sink")); ret != gst.PadLinkOK {
		return nil, fmt.Errorf("linking the source's audio to the audio converters: %s", ret)
	}
	for _, el := range chain {
		el.SyncStateWithParent()
	}
	return filter.GetStaticPad("src"), nil
}
