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
