package gstshim

/*
#cgo pkg-config: gstreamer-1.0 gstreamer-audio-1.0
#include <gst/gst.h>
#include <gst/audio/audio.h>

static GstBuffer *shim_silence(GstCaps *caps, GstClockTime pts, GstClockTime dur) {
	GstAudioInfo info;
	if (caps == NULL || !gst_audio_info_from_caps(&info, caps)) return NULL;
	guint64 frames = gst_util_uint64_scale_int(dur, GST_AUDIO_INFO_RATE(&info), GST_SECOND);
	if (frames == 0) return NULL;
	gsize size = frames * GST_AUDIO_INFO_BPF(&info);
	GstBuffer *buf = gst_buffer_new_allocate(NULL, size, NULL);
	if (buf == NULL) return NULL;
	GstMapInfo map;
	if (gst_buffer_map(buf, &map, GST_MAP_WRITE)) {
		gst_audio_format_info_fill_silence(info.finfo, map.data, map.size);
		gst_buffer_unmap(buf, &map);
	}
	if (GST_AUDIO_INFO_LAYOUT(&info) == GST_AUDIO_LAYOUT_NON_INTERLEAVED)
		gst_buffer_add_audio_meta(buf, &info, frames, NULL);
	GST_BUFFER_PTS(buf) = pts;
	GST_BUFFER_DTS(buf) = pts;
	GST_BUFFER_DURATION(buf) = dur;
	return buf;
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// Silence returns a buffer of silence in the raw audio format caps describe
// (planar layouts get their audio meta), dur long, stamped at pts; nil when
// caps are not raw audio.
func Silence(caps *gst.Caps, pts, dur gst.ClockTime) *gst.Buffer {
	if caps == nil {
		return nil
	}
	b := C.shim_silence((*C.GstCaps)(unsafe.Pointer(caps.Instance())), C.GstClockTime(pts), C.GstClockTime(dur))
	if b == nil {
		return nil
	}
	return gst.FromGstBufferUnsafeFull(unsafe.Pointer(b))
}
