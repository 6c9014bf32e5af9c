//go:build cgo

package main

// This file reads an element's documentation out of the GStreamer registry
// and the GObject type system, the same sources gst-inspect-1.0 reads. It
// never loads libgstkvsrelay.so: the elements are registered statically in
// this process (one Go runtime per process), see initGStreamer.

/*
#cgo pkg-config: gstreamer-1.0 gobject-2.0
#include <stdlib.h>
#include <gst/gst.h>

static GstElementClass *kv_element_class(gpointer klass) { return GST_ELEMENT_CLASS(klass); }
static GObjectClass *kv_object_class(gpointer klass) { return G_OBJECT_CLASS(klass); }
static GType kv_value_type(const GValue *v) { return G_VALUE_TYPE(v); }
static GType kv_fundamental(GType t) { return G_TYPE_FUNDAMENTAL(t); }
static GstPadTemplate *kv_pad_template(gpointer p) { return GST_PAD_TEMPLATE(p); }
static GType kv_strip_static_scope(GType t) { return t & ~G_SIGNAL_TYPE_STATIC_SCOPE; }
static GEnumValue *kv_enum_value_at(GEnumClass *c, guint i) { return &c->values[i]; }
static GFlagsValue *kv_flags_value_at(GFlagsClass *c, guint i) { return &c->values[i]; }

// kv_pspec_range formats the range of a numeric GParamSpec into two newly
// allocated strings. It returns FALSE for non-numeric specs. Doing this in C
// is simpler than mirroring every GParamSpec* struct in Go.
static gboolean kv_pspec_range(GParamSpec *p, gchar **min, gchar **max) {
	if (G_IS_PARAM_SPEC_CHAR(p)) {
		GParamSpecChar *s = G_PARAM_SPEC_CHAR(p);
		*min = g_strdup_printf("%d", s->minimum); *max = g_strdup_printf("%d", s->maximum);
	} else if (G_IS_PARAM_SPEC_UCHAR(p)) {
		GParamSpecUChar *s = G_PARAM_SPEC_UCHAR(p);
		*min = g_strdup_printf("%u", s->minimum); *max = g_strdup_printf("%u", s->maximum);
	} else if (G_IS_PARAM_SPEC_INT(p)) {
		GParamSpecInt *s = G_PARAM_SPEC_INT(p);
		*min = g_strdup_printf("%d", s->minimum); *max = g_strdup_printf("%d", s->maximum);
	} else if (G_IS_PARAM_SPEC_UINT(p)) {
		GParamSpecUInt *s = G_PARAM_SPEC_UINT(p);
		*min = g_strdup_printf("%u", s->minimum); *max = g_strdup_printf("%u", s->maximum);
	} else if (G_IS_PARAM_SPEC_LONG(p)) {
		GParamSpecLong *s = G_PARAM_SPEC_LONG(p);
		*min = g_strdup_printf("%ld", s->minimum); *max = g_strdup_printf("%ld", s->maximum);
	} else if (G_IS_PARAM_SPEC_ULONG(p)) {
		GParamSpecULong *s = G_PARAM_SPEC_ULONG(p);
		*min = g_strdup_printf("%lu", s->minimum); *max = g_strdup_printf("%lu", s->maximum);
	} else if (G_IS_PARAM_SPEC_INT64(p)) {
		GParamSpecInt64 *s = G_PARAM_SPEC_INT64(p);
		*min = g_strdup_printf("%" G_GINT64_FORMAT, s->minimum); *max = g_strdup_printf("%" G_GINT64_FORMAT, s->maximum);
	} else if (G_IS_PARAM_SPEC_UINT64(p)) {
		GParamSpecUInt64 *s = G_PARAM_SPEC_UINT64(p);
		*min = g_strdup_printf("%" G_GUINT64_FORMAT, s->minimum); *max = g_strdup_printf("%" G_GUINT64_FORMAT, s->maximum);
	} else if (G_IS_PARAM_SPEC_FLOAT(p)) {
		GParamSpecFloat *s = G_PARAM_SPEC_FLOAT(p);
		*min = g_strdup_printf("%.9g", (double)s->minimum); *max = g_strdup_printf("%.9g", (double)s->maximum);
	} else if (G_IS_PARAM_SPEC_DOUBLE(p)) {
		GParamSpecDouble *s = G_PARAM_SPEC_DOUBLE(p);
		*min = g_strdup_printf("%.17g", s->minimum); *max = g_strdup_printf("%.17g", s->maximum);
	} else if (GST_IS_PARAM_SPEC_FRACTION(p)) {
		GstParamSpecFraction *s = GST_PARAM_SPEC_FRACTION(p);
		*min = g_strdup_printf("%d/%d", s->min_num, s->min_den); *max = g_strdup_printf("%d/%d", s->max_num, s->max_den);
	} else {
		return FALSE;
	}
	return TRUE;
}
*/
import "C"

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unsafe"
)

// inspectElement collects the documentation of the registered element
// factory name. gst.Init must have run and the element must be registered.
func inspectElement(name string) (ElementDoc, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	factory := C.gst_element_factory_find(cname)
	if factory == nil {
		return ElementDoc{}, fmt.Errorf("element factory %q is not registered", name)
	}
	defer C.gst_object_unref(C.gpointer(factory))

	doc := ElementDoc{
		Name:        name,
		LongName:    factoryMeta(factory, C.GST_ELEMENT_METADATA_LONGNAME),
		Klass:       factoryMeta(factory, C.GST_ELEMENT_METADATA_KLASS),
		Description: factoryMeta(factory, C.GST_ELEMENT_METADATA_DESCRIPTION),
		Author:      factoryMeta(factory, C.GST_ELEMENT_METADATA_AUTHOR),
	}

	gtype := C.gst_element_factory_get_element_type(factory)
	if gtype == 0 {
		return ElementDoc{}, fmt.Errorf("element factory %q has no GType (not loaded)", name)
	}
	doc.TypeName = C.GoString(C.g_type_name(gtype))
	for t := C.g_type_parent(gtype); t != 0; t = C.g_type_parent(t) {
		doc.Ancestors = append(doc.Ancestors, C.GoString(C.g_type_name(t)))
	}

	klass := C.g_type_class_ref(gtype)
	defer C.g_type_class_unref(klass)

	doc.PadTemplates = padTemplates(C.kv_element_class(klass))
	doc.Properties = properties(C.kv_object_class(klass), gtype)
	doc.Signals = signals(gtype)
	return doc, nil
}

// typeProperties documents the properties of any registered GObject type
// by name, as properties does for an element.
func typeProperties(typeName string) ([]PropertyDoc, error) {
	cname := C.CString(typeName)
	defer C.free(unsafe.Pointer(cname))
	gtype := C.g_type_from_name(cname)
	if gtype == 0 || C.g_type_is_a(gtype, C.G_TYPE_OBJECT) == 0 {
		return nil, fmt.Errorf("%q is not a registered GObject type", typeName)
	}
	klass := C.g_type_class_ref(gtype)
	defer C.g_type_class_unref(klass)
	return properties(C.kv_object_class(klass), gtype), nil
}

func factoryMeta(f *C.GstElementFactory, key string) string {
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	v := C.gst_element_factory_get_metadata(f, ckey)
	if v == nil {
		return ""
	}
	return C.GoString(v)
}

func padTemplates(klass *C.GstElementClass) []PadTemplateDoc {
	var out []PadTemplateDoc
	for l := C.gst_element_class_get_pad_template_list(klass); l != nil; l = l.next {
		templ := C.kv_pad_template(l.data)
		doc := PadTemplateDoc{
			Name:      C.GoString(templ.name_template),
			Direction: padDirection(templ.direction),
			Presence:  padPresence(templ.presence),
		}
		caps := C.gst_pad_template_get_caps(templ)
		doc.Caps = capsLines(caps)
		C.gst_caps_unref(caps)
		out = append(out, doc)
	}
	return out
}

// capsLines gives one line per structure (with its features), like
// gst-inspect-1.0 lists them, or the single line ANY / EMPTY.
func capsLines(caps *C.GstCaps) []string {
	if C.gst_caps_is_any(caps) != 0 || C.gst_caps_is_empty(caps) != 0 {
		return []string{takeString(C.gst_caps_to_string(caps))}
	}
	n := C.gst_caps_get_size(caps)
	lines := make([]string, 0, int(n))
	for i := C.guint(0); i < n; i++ {
		one := C.gst_caps_copy_nth(caps, i)
		lines = append(lines, takeString(C.gst_caps_to_string(one)))
		C.gst_caps_unref(one)
	}
	return lines
}

func padDirection(d C.GstPadDirection) string {
	switch d {
	case C.GST_PAD_SRC:
		return "src"
	case C.GST_PAD_SINK:
		return "sink"
	}
	return "unknown"
}

func padPresence(p C.GstPadPresence) string {
	switch p {
	case C.GST_PAD_ALWAYS:
		return "always"
	case C.GST_PAD_SOMETIMES:
		return "sometimes"
	case C.GST_PAD_REQUEST:
		return "request"
	}
	return "unknown"
}

// properties lists every property of the class: the element's own first in
// installation order, then those inherited from each ancestor, nearest
// first. g_object_class_list_properties guarantees no order, so sort.
func properties(klass *C.GObjectClass, gtype C.GType) []PropertyDoc {
	var n C.guint
	specs := C.g_object_class_list_properties(klass, &n)
	if specs == nil {
		return nil
	}
	defer C.g_free(C.gpointer(specs))
	list := unsafe.Slice(specs, int(n))

	type entry struct {
		depth int // distance from the element's own type: 0 = own
		id    uint
		doc   PropertyDoc
	}
	entries := make([]entry, 0, len(list))
	for _, p := range list {
		depth := 0
		for t := gtype; t != 0 && t != p.owner_type; t = C.g_type_parent(t) {
			depth++
		}
		entries = append(entries, entry{depth: depth, id: uint(p.param_id), doc: property(p)})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].depth != entries[j].depth {
			return entries[i].depth < entries[j].depth
		}
		if entries[i].id != entries[j].id {
			return entries[i].id < entries[j].id
		}
		return entries[i].doc.Name < entries[j].doc.Name
	})
	out := make([]PropertyDoc, len(entries))
	for i, e := range entries {
		e.doc.Inherited = e.depth > 0
		out[i] = e.doc
	}
	return out
}

func property(p *C.GParamSpec) PropertyDoc {
	doc := PropertyDoc{
		Name:  C.GoString(C.g_param_spec_get_name(p)),
		Nick:  C.GoString(C.g_param_spec_get_nick(p)),
		Blurb: C.GoString(C.g_param_spec_get_blurb(p)),
		Type:  C.GoString(C.g_type_name(p.value_type)),
		Owner: C.GoString(C.g_type_name(p.owner_type)),
		Flags: paramFlags(p.flags),
	}
	var min, max *C.gchar
	if C.kv_pspec_range(p, &min, &max) != 0 {
		doc.Range = &Range{Min: takeString(min), Max: takeString(max)}
	}
	switch C.kv_fundamental(p.value_type) {
	case C.G_TYPE_ENUM:
		doc.ValuesKind = "enum"
		doc.Values = enumValues(p.value_type)
	case C.G_TYPE_FLAGS:
		doc.ValuesKind = "flags"
		doc.Values = flagsValues(p.value_type)
	}
	doc.Default = defaultValue(C.g_param_spec_get_default_value(p))
	return doc
}

// paramFlags names the flags a user cares about, in a fixed order.
func paramFlags(f C.GParamFlags) []string {
	var out []string
	readable := f&C.G_PARAM_READABLE != 0
	writable := f&C.G_PARAM_WRITABLE != 0
	switch {
	case readable && writable:
		out = append(out, "readable", "writable")
	case readable:
		out = append(out, "readable", "read-only")
	case writable:
		out = append(out, "writable", "write-only")
	}
	if f&C.G_PARAM_CONSTRUCT_ONLY != 0 {
		out = append(out, "construct-only")
	} else if f&C.G_PARAM_CONSTRUCT != 0 {
		out = append(out, "construct")
	}
	if f&C.GST_PARAM_CONTROLLABLE != 0 {
		out = append(out, "controllable")
	}
	switch {
	case f&C.GST_PARAM_MUTABLE_PLAYING != 0:
		out = append(out, "changeable in NULL, READY, PAUSED or PLAYING state")
	case f&C.GST_PARAM_MUTABLE_PAUSED != 0:
		out = append(out, "changeable only in NULL, READY or PAUSED state")
	case f&C.GST_PARAM_MUTABLE_READY != 0:
		out = append(out, "changeable only in NULL or READY state")
	}
	if f&C.G_PARAM_DEPRECATED != 0 {
		out = append(out, "deprecated")
	}
	return out
}

func enumValues(t C.GType) []EnumValue {
	klass := (*C.GEnumClass)(C.g_type_class_ref(t))
	defer C.g_type_class_unref(C.gpointer(klass))
	out := make([]EnumValue, 0, int(klass.n_values))
	for i := C.guint(0); i < klass.n_values; i++ {
		v := C.kv_enum_value_at(klass, i)
		out = append(out, EnumValue{
			Value: strconv.Itoa(int(v.value)),
			Nick:  C.GoString(v.value_nick),
			Name:  C.GoString(v.value_name),
		})
	}
	return out
}

func flagsValues(t C.GType) []EnumValue {
	klass := (*C.GFlagsClass)(C.g_type_class_ref(t))
	defer C.g_type_class_unref(C.gpointer(klass))
	out := make([]EnumValue, 0, int(klass.n_values))
	for i := C.guint(0); i < klass.n_values; i++ {
		v := C.kv_flags_value_at(klass, i)
		out = append(out, EnumValue{
			Value: fmt.Sprintf("0x%08x", uint(v.value)),
			Nick:  C.GoString(v.value_nick),
			Name:  C.GoString(v.value_name),
		})
	}
	return out
}

// defaultValue formats a property's default the way gst-inspect-1.0 shows
// it: strings quoted or null, enums as `value, "nick"`, flags as
// `0x..., "nick+nick"`. Object, boxed and pointer types have no default
// worth showing and give "".
func defaultValue(v *C.GValue) string {
	if v == nil {
		return ""
	}
	vt := C.kv_value_type(v)
	switch C.kv_fundamental(vt) {
	case C.G_TYPE_STRING:
		s := C.g_value_get_string(v)
		if s == nil {
			return "null"
		}
		return `"` + C.GoString(s) + `"`
	case C.G_TYPE_BOOLEAN:
		return strconv.FormatBool(C.g_value_get_boolean(v) != 0)
	case C.G_TYPE_CHAR:
		return strconv.Itoa(int(C.g_value_get_schar(v)))
	case C.G_TYPE_UCHAR:
		return strconv.Itoa(int(C.g_value_get_uchar(v)))
	case C.G_TYPE_INT:
		return strconv.FormatInt(int64(C.g_value_get_int(v)), 10)
	case C.G_TYPE_UINT:
		return strconv.FormatUint(uint64(C.g_value_get_uint(v)), 10)
	case C.G_TYPE_LONG:
		return strconv.FormatInt(int64(C.g_value_get_long(v)), 10)
	case C.G_TYPE_ULONG:
		return strconv.FormatUint(uint64(C.g_value_get_ulong(v)), 10)
	case C.G_TYPE_INT64:
		return strconv.FormatInt(int64(C.g_value_get_int64(v)), 10)
	case C.G_TYPE_UINT64:
		return strconv.FormatUint(uint64(C.g_value_get_uint64(v)), 10)
	case C.G_TYPE_FLOAT:
		return strconv.FormatFloat(float64(C.g_value_get_float(v)), 'g', -1, 32)
	case C.G_TYPE_DOUBLE:
		return strconv.FormatFloat(float64(C.g_value_get_double(v)), 'g', -1, 64)
	case C.G_TYPE_ENUM:
		return enumDefault(vt, C.g_value_get_enum(v))
	case C.G_TYPE_FLAGS:
		return flagsDefault(vt, C.g_value_get_flags(v))
	case C.G_TYPE_OBJECT, C.G_TYPE_BOXED, C.G_TYPE_POINTER, C.G_TYPE_PARAM, C.G_TYPE_INTERFACE:
		if C.g_value_peek_pointer(v) == nil {
			return ""
		}
	}
	// Anything else (fractions, GTypes, a non-NULL boxed default): GStreamer's
	// own serialisation, else GLib's debugging representation.
	if s := C.gst_value_serialize(v); s != nil {
		return takeString(s)
	}
	return takeString(C.g_strdup_value_contents(v))
}

func enumDefault(t C.GType, value C.gint) string {
	klass := (*C.GEnumClass)(C.g_type_class_ref(t))
	defer C.g_type_class_unref(C.gpointer(klass))
	nick := "(unknown)"
	if ev := C.g_enum_get_value(klass, value); ev != nil {
		nick = C.GoString(ev.value_nick)
	}
	return fmt.Sprintf("%d, %q", int(value), nick)
}

func flagsDefault(t C.GType, value C.guint) string {
	klass := (*C.GFlagsClass)(C.g_type_class_ref(t))
	defer C.g_type_class_unref(C.gpointer(klass))
	var nicks []string
	for i := C.guint(0); i < klass.n_values; i++ {
		fv := C.kv_flags_value_at(klass, i)
		if fv.value != 0 && value&fv.value == fv.value {
			nicks = append(nicks, C.GoString(fv.value_nick))
		}
	}
	joined := strings.Join(nicks, "+")
	if joined == "" {
		joined = "(none)"
	}
	return fmt.Sprintf("0x%08x, %q", uint(value), joined)
}

// signals lists the signals the element's own types define. Like
// gst-inspect-1.0 it leaves out those every bin or element has (GstBin,
// GstElement, GstObject, GObject); they are documented by GStreamer.
func signals(gtype C.GType) []SignalDoc {
	var out []SignalDoc
	for t := gtype; t != 0 && !isGStreamerBaseType(C.GoString(C.g_type_name(t))); t = C.g_type_parent(t) {
		var n C.guint
		ids := C.g_signal_list_ids(t, &n)
		if ids == nil {
			continue
		}
		for _, id := range unsafe.Slice(ids, int(n)) {
			var q C.GSignalQuery
			C.g_signal_query(id, &q)
			if q.signal_id == 0 {
				continue
			}
			doc := SignalDoc{
				Name:   C.GoString(q.signal_name),
				Owner:  C.GoString(C.g_type_name(t)),
				Return: signalTypeName(q.return_type),
				Action: q.signal_flags&C.G_SIGNAL_ACTION != 0,
			}
			for _, pt := range unsafe.Slice(q.param_types, int(q.n_params)) {
				doc.Params = append(doc.Params, signalTypeName(pt))
			}
			out = append(out, doc)
		}
		C.g_free(C.gpointer(ids))
	}
	return out
}

// isGStreamerBaseType reports whether a type is one of the base classes
// whose signals every element of that kind shares.
func isGStreamerBaseType(name string) bool {
	switch name {
	case "GstPipeline", "GstBin", "GstElement", "GstObject", "GInitiallyUnowned", "GObject":
		return true
	}
	return false
}

// signalTypeName writes a signal argument's C type: pointer types get a
// star, values (numbers, enums, flags, strings) do not.
func signalTypeName(t C.GType) string {
	t = C.kv_strip_static_scope(t)
	name := C.GoString(C.g_type_name(t))
	switch C.kv_fundamental(t) {
	case C.G_TYPE_OBJECT, C.G_TYPE_BOXED, C.G_TYPE_POINTER, C.G_TYPE_PARAM, C.G_TYPE_INTERFACE:
		return name + "*"
	}
	return name
}

// takeString copies a GLib-allocated string into Go and frees it.
func takeString(s *C.gchar) string {
	if s == nil {
		return ""
	}
	defer C.g_free(C.gpointer(s))
	return C.GoString(s)
}
