package gstshim

// GObject glue for the test-only kvssink stand-in (test/kvssinkstandin): the
// signals and the enum property the real kvssink declares, which go-glib
// v1.4.0 cannot create (its SignalNew only makes argument-less signals on
// G_TYPE_OBJECT, and it has no enum ParamSpec constructor).

/*
#cgo pkg-config: gstreamer-1.0
#include <stdlib.h>
#include <gst/gst.h>

static GType shim_kvs_streaming_type_gtype(void) {
	static gsize type_id = 0;
	static const GEnumValue values[] = {
		{0, "streaming type realtime", "realtime"},
		{1, "streaming type near realtime", "near-realtime"},
		{2, "streaming type offline", "offline"},
		{0, NULL, NULL},
	};
	if (g_once_init_enter(&type_id)) {
		GType t = g_enum_register_static("GstKvsSinkStreamingType", values);
		g_once_init_leave(&type_id, t);
	}
	return (GType)type_id;
}

static GParamSpec *shim_kvs_streaming_type_pspec(const gchar *name, const gchar *nick, const gchar *blurb, gint def) {
	return g_param_spec_enum(name, nick, blurb, shim_kvs_streaming_type_gtype(), def,
		(GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
}

static void shim_kvs_install_signals(gpointer klass) {
	GType t = G_TYPE_FROM_CLASS(klass);
	g_signal_new("stream-error", t, G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_UINT64);
	g_signal_new("fragment-ack", t, G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
	g_signal_new("stream-client-metric", t, G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
}

// Serialises a GstStructure GValue; NULL when the value holds no structure.
static gchar *shim_structure_value_string(gpointer v) {
	const GstStructure *s = gst_value_get_structure((const GValue *)v);
	return s == NULL ? NULL : gst_structure_to_string(s);
}

static void shim_kvs_emit_uint64(gpointer obj, const gchar *signal, guint64 v) {
	g_signal_emit_by_name(obj, signal, v);
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"
)

// KvsStreamingTypeGType is the GType of kvssink's streaming-type enum
// (GstKvsSinkStreamingType: 0 realtime, 1 near-realtime, 2 offline).
func KvsStreamingTypeGType() glib.Type {
	return glib.Type(C.shim_kvs_streaming_type_gtype())
}

// KvsStreamingTypeParam makes the streaming-type enum property spec.
func KvsStreamingTypeParam(name, nick, blurb string, def int) *glib.ParamSpec {
	cname, cnick, cblurb := C.CString(name), C.CString(nick), C.CString(blurb)
	// G_PARAM_STATIC_STRINGS: the strings must live for the process.
	return glib.ToParamSpec(unsafe.Pointer(C.shim_kvs_streaming_type_pspec(cname, cnick, cblurb, C.gint(def))))
}

// KvsInstallSignals declares kvssink's signals on the class being
// initialised: stream-error (guint64 status), fragment-ack and
// stream-client-metric (pointers, never emitted by the stand-in).
func KvsInstallSignals(klass *glib.ObjectClass) {
	C.shim_kvs_install_signals(C.gpointer(klass.Unsafe()))
}

// EmitUint64Signal emits a signal whose only argument is a guint64.
func EmitUint64Signal(obj *gst.Object, signal string, v uint64) {
	cs := C.CString(signal)
	defer C.free(unsafe.Pointer(cs))
	C.shim_kvs_emit_uint64(C.gpointer(obj.Unsafe()), cs, C.guint64(v))
}

// StructureValueString serialises a GValue holding a GstStructure (for
// example a boxed property being set); ok is false when it holds NULL.
// go-gst's GoValue dereferences a NULL structure and panics.
func StructureValueString(v *glib.Value) (s string, ok bool) {
	if v == nil {
		return "", false
	}
	cs := C.shim_structure_value_string(C.gpointer(v.Unsafe()))
	if cs == nil {
		return "", false
	}
	defer C.g_free(C.gpointer(cs))
	return C.GoString(cs), true
}
