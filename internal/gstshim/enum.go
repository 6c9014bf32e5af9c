package gstshim

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>
#include <stdlib.h>

static GEnumValue *shim_enum_values_new(int n) { return g_new0(GEnumValue, n + 1); }
static void shim_enum_value_set(GEnumValue *v, int i, gint value, const char *name, const char *nick) {
	v[i].value = value;
	v[i].value_name = g_strdup(name);
	v[i].value_nick = g_strdup(nick);
}
static GType shim_enum_register(const char *name, GEnumValue *values) {
	GType t = g_type_from_name(name);
	if (t != 0) return t;
	return g_enum_register_static(g_strdup(name), values);
}
static GParamSpec *shim_enum_param(const char *name, const char *nick, const char *blurb, GType t, gint def, GParamFlags flags) {
	return g_param_spec_enum(name, nick, blurb, t, def, flags);
}
static gint shim_value_get_enum(GValue *v) { return G_VALUE_HOLDS_ENUM(v) ? g_value_get_enum(v) : 0; }
static gchar *shim_value_caps_string(GValue *v) {
	if (!GST_VALUE_HOLDS_CAPS(v)) return NULL;
	const GstCaps *caps = gst_value_get_caps(v);
	return caps == NULL ? NULL : gst_caps_to_string(caps);
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"
)

// EnumValue is one value of a GEnum type: what gst-inspect-1.0 lists.
type EnumValue struct {
	Value int
	Name  string // "Black frames"
	Nick  string // "black": what gst-launch-1.0 accepts
}

// RegisterEnum registers (once) a GEnum type for an enum property; go-glib
// v1.4.0 has no enum types or enum ParamSpecs of its own.
func RegisterEnum(typeName string, values []EnumValue) glib.Type {
	cvals := C.shim_enum_values_new(C.int(len(values)))
	for i, v := range values {
		name, nick := C.CString(v.Name), C.CString(v.Nick)
		C.shim_enum_value_set(cvals, C.int(i), C.gint(v.Value), name, nick)
		C.free(unsafe.Pointer(name))
		C.free(unsafe.Pointer(nick))
	}
	cname := C.CString(typeName)
	defer C.free(unsafe.Pointer(cname))
	return glib.Type(C.shim_enum_register(cname, cvals))
}

// EnumParam makes an enum property spec of type t.
func EnumParam(name, nick, blurb string, t glib.Type, def int, flags glib.ParameterFlags) *glib.ParamSpec {
	cname, cnick, cblurb := C.CString(name), C.CString(nick), C.CString(blurb)
	// GParamSpec keeps the strings it is given unless flagged static; these
	// are copied by g_param_spec_internal, so freeing ours is safe.
	defer C.free(unsafe.Pointer(cname))
	defer C.free(unsafe.Pointer(cnick))
	defer C.free(unsafe.Pointer(cblurb))
	p := C.shim_enum_param(cname, cnick, cblurb, C.GType(t), C.gint(def), C.GParamFlags(flags))
	return glib.ToParamSpec(unsafe.Pointer(p))
}

// EnumFromValue reads an enum GValue.
func EnumFromValue(v *glib.Value) int {
	if v == nil {
		return 0
	}
	return int(C.shim_value_get_enum((*C.GValue)(v.Native())))
}

// EnumToValue makes a GValue of enum type t holding value.
func EnumToValue(t glib.Type, value int) *glib.Value {
	v, err := glib.ValueInit(t)
	if err != nil {
		return nil
	}
	v.SetEnum(value)
	return v
}

// CapsStringFromValue returns the caps a GstCaps GValue holds, serialized,
// or "" when it holds none.
func CapsStringFromValue(v *glib.Value) string {
	if v == nil {
		return ""
	}
	s := C.shim_value_caps_string((*C.GValue)(v.Native()))
	if s == nil {
		return ""
	}
	defer C.g_free(C.gpointer(s))
	return C.GoString(s)
}

// StructureFraction reads a fraction field (a frame rate) of a structure.
func StructureFraction(st *gst.Structure, field string) (num, den int, ok bool) {
	cfield := C.CString(field)
	defer C.free(unsafe.Pointer(cfield))
	var n, d C.gint
	if C.gst_structure_get_fraction((*C.GstStructure)(unsafe.Pointer(st.Instance())), cfield, &n, &d) == 0 {
		return 0, 0, false
	}
	return int(n), int(d), true
}

// StructureFieldString serializes one field of a structure ("" when absent).
func StructureFieldString(st *gst.Structure, field string) string {
	cfield := C.CString(field)
	defer C.free(unsafe.Pointer(cfield))
	v := C.gst_structure_get_value((*C.GstStructure)(unsafe.Pointer(st.Instance())), cfield)
	if v == nil {
		return ""
	}
	s := C.gst_value_serialize(v)
	if s == nil {
		return ""
	}
	defer C.g_free(C.gpointer(s))
	return C.GoString(s)
}
