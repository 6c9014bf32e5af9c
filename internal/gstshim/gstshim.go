// Package gstshim holds the few GStreamer calls that go-gst v1.4.0 either
// lacks or gets wrong, each reached through cgo. It is generic GObject
// glue: no decisions, and nothing that belongs to one element (that glue
// lives in the element's own package, e.g. kvscredprovider's bin hooks)
// or only to tests (test/gsttest, the kvssink stand-in's own package).
// Enum types are made one way (RegisterEnum, EnumParam), and C handlers
// reach their Go functions through one registry (handles.go).
package gstshim

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>
#include <stdlib.h>

static gboolean shim_message_from_inside(gpointer msg, gpointer ancestor) {
	GstObject *src = GST_MESSAGE_SRC(GST_MESSAGE(msg));
	return src != NULL && gst_object_has_as_ancestor(src, GST_OBJECT(ancestor));
}
// The context type a NEED_CONTEXT or HAVE_CONTEXT message is about; NULL for
// other messages. Keeps no reference on the context.
static const gchar *shim_message_context_type(gpointer m) {
	GstMessage *msg = GST_MESSAGE(m);
	const gchar *type = NULL;
	if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_NEED_CONTEXT) {
		if (!gst_message_parse_context_type(msg, &type)) return NULL;
		return type;
	}
	if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_HAVE_CONTEXT) {
		GstContext *ctx = NULL;
		gst_message_parse_have_context(msg, &ctx);
		if (ctx == NULL) return NULL;
		// The type string belongs to the context, which the message keeps alive.
		type = gst_context_get_context_type(ctx);
		gst_context_unref(ctx);
	}
	return type;
}
static gboolean shim_clear_ghost_target(gpointer pad) {
	return gst_ghost_pad_set_target(GST_GHOST_PAD(pad), NULL);
}
extern void shimWeakNotify(gpointer data, GObject *where);
static void shim_weak_ref(gpointer obj, guintptr id) {
	g_object_weak_ref(G_OBJECT(obj), (GWeakNotify)shimWeakNotify, (gpointer)id);
}
static void shim_set_object_flag(gpointer obj, guint32 flag) {
	GST_OBJECT_FLAG_SET(GST_OBJECT(obj), flag);
}
// Replaces the probe's buffer with a writable one and updates its flags;
// returns the (possibly new) buffer.
static GstBuffer *shim_probe_set_buffer_flags(GstPadProbeInfo *info, guint set, guint unset) {
	GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
	if (buf == NULL) return NULL;
	if ((GST_BUFFER_FLAGS(buf) & unset) == 0 && (GST_BUFFER_FLAGS(buf) & set) == set) return buf;
	buf = gst_buffer_make_writable(buf);
	GST_BUFFER_FLAG_UNSET(buf, unset);
	GST_BUFFER_FLAG_SET(buf, set);
	GST_PAD_PROBE_INFO_DATA(info) = buf;
	return buf;
}
static void shim_probe_set_pts(GstPadProbeInfo *info, GstClockTime pts, GstClockTime dts) {
	GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
	if (buf == NULL) return;
	buf = gst_buffer_make_writable(buf);
	GST_BUFFER_PTS(buf) = pts;
	GST_BUFFER_DTS(buf) = dts;
	GST_PAD_PROBE_INFO_DATA(info) = buf;
}
static GstClockTime shim_running_time_now(GstElement *e) {
	GstClock *clock = gst_element_get_clock(e);
	if (clock == NULL) return GST_CLOCK_TIME_NONE;
	GstClockTime now = gst_clock_get_time(clock);
	gst_object_unref(clock);
	GstClockTime base = gst_element_get_base_time(e);
	if (!GST_CLOCK_TIME_IS_VALID(now) || !GST_CLOCK_TIME_IS_VALID(base) || now < base) return GST_CLOCK_TIME_NONE;
	return now - base;
}

static void shim_inherit_clock(GstElement *parent, GstElement *child) {
	GstClock *clock = gst_element_get_clock(parent);
	if (clock != NULL) {
		gst_element_set_clock(child, clock);
		gst_object_unref(clock);
	}
	gst_element_set_start_time(child, GST_CLOCK_TIME_NONE);
	gst_element_set_base_time(child, gst_element_get_base_time(parent));
}

static void shim_post_error(GstElement *e, gboolean warning, guint32 domain, gint code, const char *text, const char *debug, const char *file, const char *func, gint line) {
	GQuark q = domain == 0 ? GST_CORE_ERROR : domain == 1 ? GST_LIBRARY_ERROR : domain == 2 ? GST_RESOURCE_ERROR : GST_STREAM_ERROR;
	gst_element_message_full(e, warning ? GST_MESSAGE_WARNING : GST_MESSAGE_ERROR, q, code,
		g_strdup(text), debug[0] ? g_strdup(debug) : NULL, file, func, line);
}
*/
import "C"

import (
	"path/filepath"
	"runtime"
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// MessageFromInside reports whether msg was posted by ancestor or by an
// object inside it. go-gst only exposes a message source's name, which is
// not enough to tell which child instance of a bin posted it.
func MessageFromInside(msg *gst.Message, ancestor *gst.Object) bool {
	if msg == nil || ancestor == nil {
		return false
	}
	return C.shim_message_from_inside(C.gpointer(unsafe.Pointer(msg.Instance())), C.gpointer(ancestor.Unsafe())) != 0
}

// MessageContextType returns the context type ("gst.soup.session", ...) of a
// NEED_CONTEXT or HAVE_CONTEXT message, "" for any other message. Unlike
// go-gst's ParseHaveContext it keeps no reference on the context, whose
// lifetime would otherwise depend on Go's garbage collector.
func MessageContextType(msg *gst.Message) string {
	if msg == nil {
		return ""
	}
	t := C.shim_message_context_type(C.gpointer(unsafe.Pointer(msg.Instance())))
	if t == nil {
		return ""
	}
	return C.GoString(t)
}

// ClearGhostTarget unsets a ghost pad's target. GhostPad.SetTarget(nil)
// panics in go-gst v1.4.0, and a panic inside a plugin kills the host.
func ClearGhostTarget(pad *gst.GhostPad) bool {
	return C.shim_clear_ghost_target(C.gpointer(pad.Unsafe())) != 0
}

// SetObjectFlag sets a GstObject flag (for example GST_ELEMENT_FLAG_SOURCE on
// a bin whose suppressed flags keep it set while it has no children).
func SetObjectFlag(obj *gst.Object, flag gst.ElementFlags) {
	C.shim_set_object_flag(C.gpointer(obj.Unsafe()), C.guint32(flag))
}

// probeInfoPtr reaches the GstPadProbeInfo behind go-gst's wrapper, whose only
// field is that pointer; go-gst v1.4.0 offers no way to replace a probe's data.
func probeInfoPtr(info *gst.PadProbeInfo) *C.GstPadProbeInfo {
	return *(**C.GstPadProbeInfo)(unsafe.Pointer(info))
}

// SetProbeBufferFlags makes the probed buffer writable (replacing it in the
// probe info when it was shared) and sets and clears the given flags.
func SetProbeBufferFlags(info *gst.PadProbeInfo, set, unset gst.BufferFlags) {
	C.shim_probe_set_buffer_flags(probeInfoPtr(info), C.guint(set), C.guint(unset))
}

// SetProbeBufferTimestamps rewrites the probed buffer's PTS and DTS.
func SetProbeBufferTimestamps(info *gst.PadProbeInfo, pts, dts gst.ClockTime) {
	C.shim_probe_set_pts(probeInfoPtr(info), C.GstClockTime(pts), C.GstClockTime(dts))
}

// RunningTimeNow is the element's current running time on its clock, or
// gst.ClockTimeNone when it has no clock or base time yet.
func RunningTimeNow(e *gst.Element) gst.ClockTime {
	return gst.ClockTime(C.shim_running_time_now((*C.GstElement)(e.Unsafe())))
}

// InheritClock gives a child in locked state (which its parent's state
// changes skip) the parent's clock and base time, so that live sources inside
// it timestamp on the pipeline's timeline.
func InheritClock(parent, child *gst.Element) {
	C.shim_inherit_clock((*C.GstElement)(parent.Unsafe()), (*C.GstElement)(child.Unsafe()))
}

// ErrorDomain selects GStreamer's error domain for PostError.
type ErrorDomain uint32

// Error domains.
const (
	CoreError ErrorDomain = iota
	LibraryError
	ResourceError
	StreamError
)

// PostError posts an ERROR (or, with warning, a WARNING) from e whose text is
// text. go-gst v1.4.0's Element.ErrorMessage puts the debug string where the
// text belongs, so applications and gst-launch-1.0 would print the wrong line.
func PostError(e *gst.Element, warning bool, domain ErrorDomain, code gst.ErrorCode, text, debug string) {
	ctext, cdebug := C.CString(text), C.CString(debug)
	defer C.free(unsafe.Pointer(ctext))
	defer C.free(unsafe.Pointer(cdebug))
	_, file, line, _ := runtime.Caller(1)
	cfile, cfunc := C.CString(filepath.Base(file)), C.CString("kvsrelay")
	defer C.free(unsafe.Pointer(cfile))
	defer C.free(unsafe.Pointer(cfunc))
	w := C.gboolean(0)
	if warning {
		w = 1
	}
	C.shim_post_error((*C.GstElement)(e.Unsafe()), w, C.guint32(domain), C.gint(code), ctext, cdebug, cfile, cfunc, C.gint(line))
}

// PostElementMessage posts an element message named name with fields on
// e's bus: how kvsrelay's elements tell applications what they do.
func PostElementMessage(e *gst.Element, name string, fields map[string]any) {
	st := gst.NewStructure(name)
	for k, v := range fields {
		_ = st.SetValue(k, v)
	}
	e.PostMessage(gst.NewElementMessage(e, st))
}

// OnFinalize calls fn once obj is finalized (a GObject weak reference), on
// the thread that drops the last reference: fn must be quick and must not
// call back into obj. reconnectbin counts its allocated source instances
// with it; tests use it to prove that removed instances are freed.
func OnFinalize(obj *gst.Object, fn func()) {
	C.shim_weak_ref(C.gpointer(obj.Unsafe()), C.guintptr(newHandle(fn)))
}

//export shimWeakNotify
func shimWeakNotify(data C.gpointer, _ *C.GObject) {
	id := uintptr(data)
	fn, _ := handleValue(id).(func())
	deleteHandle(id)
	if fn != nil {
		fn()
	}
}
