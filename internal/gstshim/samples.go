package gstshim

/*
#cgo pkg-config: gstreamer-1.0 gstreamer-audio-1.0
#include <gst/gst.h>
#include <gst/audio/audio.h>

// shim_sample_format: rate and bytes per sample frame of audio that can be
// cut at any sample (raw interleaved audio, A-law, mu-law); FALSE otherwise.
static gboolean shim_sample_format(GstCaps *caps, gint *rate, gint *bpf) {
	if (caps == NULL || gst_caps_get_size(caps) == 0) return FALSE;
	GstStructure *s = gst_caps_get_structure(caps, 0);
	if (gst_structure_has_name(s, "audio/x-raw")) {
		GstAudioInfo info;
		if (!gst_audio_info_from_caps(&info, caps)) return FALSE;
		if (GST_AUDIO_INFO_LAYOUT(&info) != GST_AUDIO_LAYOUT_INTERLEAVED) return FALSE;
		*rate = GST_AUDIO_INFO_RATE(&info);
		*bpf = GST_AUDIO_INFO_BPF(&info);
		return *rate > 0 && *bpf > 0;
	}
	if (gst_structure_has_name(s, "audio/x-alaw") || gst_structure_has_name(s, "audio/x-mulaw")) {
		gint channels = 0;
		if (!gst_structure_get_int(s, "rate", rate) || !gst_structure_get_int(s, "channels", &channels)) return FALSE;
		*bpf = channels;
		return *rate > 0 && *bpf > 0;
	}
	return FALSE;
}

static void shim_probe_trim_head(GstPadProbeInfo *info, gsize bytes, GstClockTime duration) {
	GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
	if (buf == NULL || bytes >= gst_buffer_get_size(buf)) return;
	buf = gst_buffer_make_writable(buf);
	gst_buffer_resize(buf, bytes, -1);
	GST_BUFFER_DURATION(buf) = duration;
	GST_PAD_PROBE_INFO_DATA(info) = buf;
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// SampleFormat returns the sample rate and bytes per sample frame of audio
// caps whose buffers can be cut at any sample: raw interleaved audio, A-law
// and mu-law. ok is false for anything else (encoded frames, planar audio).
func SampleFormat(caps *gst.Caps) (rate, bytesPerFrame int, ok bool) {
	if caps == nil {
		return 0, 0, false
	}
	var r, bpf C.gint
	if C.shim_sample_format((*C.GstCaps)(unsafe.Pointer(caps.Instance())), &r, &bpf) == 0 {
		return 0, 0, false
	}
	return int(r), int(bpf), true
}

// TrimProbeBufferHead cuts the first bytes off the probed buffer (made
// writable, replacing it in the probe info when it was shared) and sets its
// duration; a cut of the whole buffer or more leaves it untouched.
func TrimProbeBufferHead(info *gst.PadProbeInfo, bytes int, duration gst.ClockTime) {
	C.shim_probe_trim_head(probeInfoPtr(info), C.gsize(bytes), C.GstClockTime(duration))
}
