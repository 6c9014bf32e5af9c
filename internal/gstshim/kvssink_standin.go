package gstshim

// GObject glue for the test-only kvssink stand-in (test/kvssinkstandin): the
// signals and the enum property the real kvssink declares, which go-glib
// v1.4.0 cannot create (its SignalNew only makes argument-less signals on
// G_TYPE_OBJECT, and it has no enum ParamSpec constructor).

/*
#cgo pkg-config: gstreamer-1.0
#include <stdlib.h>
#include <gst/gst.h>

// type_name: the real element's "GstKvsSinkStreamingType", or another name
// when the stand-in lives in one process with the real element (which
// registers that name itself). The first call's name is kept.
static GType shim_kvs_streaming_type_gtype(const gchar *type_name) {
	static gsize type_id = 0;
	static const GEnumValue values[] = {
		{0, "streaming type realtime", "realtime"},
		{1, "streaming type near realtime", "near-realtime"},
		{2, "streaming type offline", "offline"},
		{0, NULL, NULL},
	};
	if (g_once_init_enter(&type_id)) {
		GType t = g_enum_register_static(g_intern_string(type_name), values);
		g_once_init_leave(&type_id, t);
	}
	return (GType)type_id;
}

static GParamSpec *shim_kvs_streaming_type_pspec(const gchar *type_name, const gchar *name, const gchar *nick, const gchar *blurb, gint def) {
	return g_param_spec_enum(name, nick, blurb, shim_kvs_streaming_type_gtype(type_name), def,
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

static GParamSpec **shim_list_properties(gpointer obj, guint *n) {
	return g_object_class_list_properties(G_OBJECT_GET_CLASS(obj), n);
}

static GParamSpec *shim_pspec_at(GParamSpec **specs, guint i) { return specs[i]; }

static gboolean shim_pspec_owned_by(GParamSpec *p, gpointer obj) {
	return p->owner_type == G_OBJECT_TYPE(obj);
}

static const gchar *shim_pspec_type_name(GParamSpec *p) { return g_type_name(G_PARAM_SPEC_VALUE_TYPE(p)); }

static gchar *shim_pspec_default(GParamSpec *p) {
	const GValue *v = g_param_spec_get_default_value(p);
	// A NULL GstStructure makes its string transform print CRITICALs.
	if (G_VALUE_HOLDS_BOXED(v) && g_value_get_boxed(v) == NULL)
		return g_strdup("NULL");
	return g_strdup_value_contents(v);
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"
)

// KvsStreamingTypeGType is the GType of kvssink's streaming-type enum
// (0 realtime, 1 near-realtime, 2 offline), registered as typeName
// ("GstKvsSinkStreamingType" like the real element, unless the stand-in
// shares the process with it) by the first call.
func KvsStreamingTypeGType(typeName string) glib.Type {
	ctype := C.CString(typeName)
	defer C.free(unsafe.Pointer(ctype))
	return glib.Type(C.shim_kvs_streaming_type_gtype(ctype))
}

// KvsStreamingTypeParam makes the streaming-type enum property spec, the
// enum registered as typeName (see KvsStreamingTypeGType).
func KvsStreamingTypeParam(typeName, name, nick, blurb string, def int) *glib.ParamSpec {
	ctype := C.CString(typeName)
	defer C.free(unsafe.Pointer(ctype))
	cname, cnick, cblurb := C.CString(name), C.CString(nick), C.CString(blurb)
	// G_PARAM_STATIC_STRINGS: the strings must live for the process.
	return glib.ToParamSpec(unsafe.Pointer(C.shim_kvs_streaming_type_pspec(ctype, cname, cnick, cblurb, C.gint(def))))
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

// ParamInfo describes one property as gst-inspect-1.0 would: its name, nick,
// blurb, value type name and param spec default (g_strdup_value_contents:
// strings quoted, NULL as NULL, enums by value name).
type ParamInfo struct {
	Name, Nick, Blurb, Type, Default string
}

// OwnProperties lists the properties obj's own class installs (not those it
// inherits), for checking a stand-in against the real element's list.
func OwnProperties(obj *glib.Object) []ParamInfo {
	var n C.guint
	specs := C.shim_list_properties(C.gpointer(obj.Unsafe()), &n)
	if specs == nil {
		return nil
	}
	defer C.g_free(C.gpointer(specs))
	var out []ParamInfo
	for i := C.guint(0); i < n; i++ {
		p := C.shim_pspec_at(specs, i)
		if C.shim_pspec_owned_by(p, C.gpointer(obj.Unsafe())) == 0 {
			continue
		}
		def := C.shim_pspec_default(p)
		out = append(out, ParamInfo{
			Name:    C.GoString(C.g_param_spec_get_name(p)),
			Nick:    C.GoString(C.g_param_spec_get_nick(p)),
			Blurb:   C.GoString(C.g_param_spec_get_blurb(p)),
			Type:    C.GoString(C.shim_pspec_type_name(p)),
			Default: C.GoString(def),
		})
		C.g_free(C.gpointer(def))
	}
	return out
}
