// Package gsttest holds the GObject calls that tests need and go-gst v1.4.0
// lacks: listing the properties a class installs itself. Knowing when an
// object is freed is gstshim.OnFinalize, which reconnectbin's stats use.
// It is never compiled into the plugin.
package gsttest

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>
#include <stdlib.h>

static GParamSpec **gsttest_list_properties(gpointer obj, guint *n) {
	return g_object_class_list_properties(G_OBJECT_GET_CLASS(obj), n);
}

static GParamSpec *gsttest_pspec_at(GParamSpec **specs, guint i) { return specs[i]; }

static gboolean gsttest_pspec_owned_by(GParamSpec *p, gpointer obj) {
	return p->owner_type == G_OBJECT_TYPE(obj);
}

static const gchar *gsttest_pspec_type_name(GParamSpec *p) { return g_type_name(G_PARAM_SPEC_VALUE_TYPE(p)); }

static gchar *gsttest_pspec_default(GParamSpec *p) {
	const GValue *v = g_param_spec_get_default_value(p);
	// A NULL GstStructure makes its string transform print CRITICALs.
	if (G_VALUE_HOLDS_BOXED(v) && g_value_get_boxed(v) == NULL)
		return g_strdup("NULL");
	return g_strdup_value_contents(v);
}

static gboolean gsttest_has_context(gpointer el, const gchar *type) {
	GstContext *ctx = gst_element_get_context(GST_ELEMENT(el), type);
	if (ctx == NULL) return FALSE;
	gst_context_unref(ctx);
	return TRUE;
}
// gsttest_structure_field copies field i of st
// of a structure as text: strings as they are, booleans as true/false, anything
// else as g_strdup_value_contents writes it. Returns NULL past the last
// field; *field gets the field's name (static, a quark's string).
static gchar *gsttest_structure_field(const GstStructure *st, guint i, const gchar **field) {
	if (st == NULL || i >= (guint)gst_structure_n_fields(st)) return NULL;
	*field = gst_structure_nth_field_name(st, i);
	const GValue *v = gst_structure_get_value(st, *field);
	if (G_VALUE_HOLDS_STRING(v)) return g_strdup(g_value_get_string(v) ? g_value_get_string(v) : "");
	if (G_VALUE_HOLDS_BOOLEAN(v)) return g_strdup(g_value_get_boolean(v) ? "true" : "false");
	return g_strdup_value_contents(v);
}

static GstStructure *gsttest_get_structure(gpointer obj, const gchar *name) {
	GstStructure *st = NULL;
	g_object_get(G_OBJECT(obj), name, &st, NULL);
	return st;
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"
)

// HasContext reports whether el keeps a context of type ctxType
// (gst_element_get_context): for a bin, one it stored from a child's
// HAVE_CONTEXT and hands to children added later.
func HasContext(el *gst.Element, ctxType string) bool {
	ct := C.CString(ctxType)
	defer C.free(unsafe.Pointer(ct))
	return C.gsttest_has_context(C.gpointer(el.Unsafe()), ct) != 0
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
	specs := C.gsttest_list_properties(C.gpointer(obj.Unsafe()), &n)
	if specs == nil {
		return nil
	}
	defer C.g_free(C.gpointer(specs))
	var out []ParamInfo
	for i := C.guint(0); i < n; i++ {
		p := C.gsttest_pspec_at(specs, i)
		if C.gsttest_pspec_owned_by(p, C.gpointer(obj.Unsafe())) == 0 {
			continue
		}
		def := C.gsttest_pspec_default(p)
		out = append(out, ParamInfo{
			Name:    C.GoString(C.g_param_spec_get_name(p)),
			Nick:    C.GoString(C.g_param_spec_get_nick(p)),
			Blurb:   C.GoString(C.g_param_spec_get_blurb(p)),
			Type:    C.GoString(C.gsttest_pspec_type_name(p)),
			Default: C.GoString(def),
		})
		C.g_free(C.gpointer(def))
	}
	return out
}

// StructureProperty reads el's GstStructure property name into text
// fields, copying them before the structure is freed. go-gst's
// GetProperty hands out a structure that its GValue frees once collected:
// reading it while something runs runtime.GC (reconnectbin does after each
// rebuild) reads freed memory. nil when the property is NULL.
func StructureProperty(el *gst.Element, name string) map[string]string {
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	st := C.gsttest_get_structure(C.gpointer(el.Unsafe()), cName)
	if st == nil {
		return nil
	}
	defer C.gst_structure_free(st)
	out := map[string]string{}
	for i := C.guint(0); ; i++ {
		var field *C.gchar
		text := C.gsttest_structure_field(st, i, &field)
		if text == nil {
			return out
		}
		out[C.GoString(field)] = C.GoString(text)
		C.g_free(C.gpointer(text))
	}
}
