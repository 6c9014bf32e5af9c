package gstshim

// GObject glue for the kvscredprovider element (plugin/kvscredprovider):
// its `source` enum property, and the hooks that tell it when it joins or
// leaves a bin and when elements are added anywhere in its pipeline.
//
// Why hooks at this level: GStreamer 1.22 does not emit notify::parent
// (gst_object_set_parent has the notification commented out), and go-gst
// v1.4.0 cannot chain up to the default set_bus. gst_bin_add sets the child's
// bus while holding the bin's object lock, so the set_bus override below
// only connects a one-shot "element-added" handler on the new parent; that
// signal is emitted by the same gst_bin_add call right after the lock is
// released, in the adding thread, which is where the element does its work.
//
// The element may also sit in a bin that joins a larger bin later (a
// gst-launch line with "( kvscredprovider )", or an application building a
// bin and adding it to its pipeline): then its top-level bin changes while
// nothing happens to the element itself, and its bus stays the same (a
// bin's children post on the bin's own child bus). gst_bin_add does
// propagate the bin's clock to the new child, and a bin passes that on to
// every element inside it, so the set_clock override below runs inside
// such an add too, with the adding bin's object lock held. It finds that
// bin (the first ancestor whose lock is taken) and connects the same kind
// of one-shot "element-added" handler there, which fires, outside the
// lock, for the ancestor being added.

/*
#cgo pkg-config: gstreamer-1.0
#include <stdlib.h>
#include <gst/gst.h>

extern void goCredProviderAttached(GstElement *self);
extern void goCredProviderDetached(GstElement *self);
extern void goCredProviderDeepAdded(guintptr id, GstElement *element);

static GType shim_cp_source_gtype(void) {
	static gsize type_id = 0;
	static const GEnumValue values[] = {
		{0, "EC2 instance role through IMDSv2", "imds"},
		{1, "AWS SDK default credential chain", "default"},
		{0, NULL, NULL},
	};
	if (g_once_init_enter(&type_id)) {
		GType t = g_enum_register_static("GstKvsCredProviderSource", values);
		g_once_init_leave(&type_id, t);
	}
	return (GType)type_id;
}

static GParamSpec *shim_cp_source_pspec(const gchar *name, const gchar *nick, const gchar *blurb, gint def) {
	return g_param_spec_enum(name, nick, blurb, shim_cp_source_gtype(), def,
		(GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
}

static void (*cp_parent_set_bus)(GstElement *, GstBus *) = NULL;
static gboolean (*cp_parent_set_clock)(GstElement *, GstClock *) = NULL;

static void cp_element_added(GstBin *bin, GstElement *element, gpointer self) {
	if (element != (GstElement *)self) return;
	g_signal_handlers_disconnect_by_func(bin, (gpointer)cp_element_added, self);
	goCredProviderAttached((GstElement *)self);
}

// Runs inside gst_bin_add/gst_bin_remove; for an add the parent bin's object
// lock is held, so nothing here may take it.
static void cp_set_bus(GstElement *e, GstBus *bus) {
	cp_parent_set_bus(e, bus);
	if (bus == NULL) {
		goCredProviderDetached(e);
		return;
	}
	GstObject *parent = gst_object_get_parent(GST_OBJECT(e));
	if (parent != NULL && GST_IS_BIN(parent)) {
		g_signal_handlers_disconnect_by_func(parent, (gpointer)cp_element_added, e);
		g_signal_connect(parent, "element-added", G_CALLBACK(cp_element_added), e);
	}
	if (parent != NULL) gst_object_unref(parent);
}

// "element-added" on a bin that is adding one of self's ancestors: self's
// top-level bin changed.
static void cp_ancestor_added(GstBin *bin, GstElement *element, gpointer self) {
	if (!gst_object_has_as_ancestor(GST_OBJECT(self), GST_OBJECT(element))) return;
	g_signal_handlers_disconnect_by_func(bin, (gpointer)cp_ancestor_added, self);
	goCredProviderAttached((GstElement *)self);
}

// Runs when a bin hands its clock to e: when e is added to a bin (set_bus
// handles that), when a bin holding e is added to another bin (handled
// here), and when a pipeline distributes its clock (nothing to do). Walks up
// from e's parent; an ancestor whose object lock is taken is the bin adding
// (gst_bin_add holds it while it propagates the clock), unless another
// thread holds it for a moment, in which case the handler simply never
// fires (g_signal_connect_object drops it with e) and the element's start
// check still finds the right top-level bin.
static gboolean cp_set_clock(GstElement *e, GstClock *clock) {
	gboolean res = cp_parent_set_clock != NULL ? cp_parent_set_clock(e, clock) : TRUE;
	GstObject *cur = gst_object_get_parent(GST_OBJECT(e));
	gboolean direct = TRUE;
	while (cur != NULL) {
		GMutex *lock = GST_OBJECT_GET_LOCK(cur);
		if (!g_mutex_trylock(lock)) {
			// The direct parent locked: e itself is being added (set_bus
			// connected its handler already).
			if (!direct && GST_IS_BIN(cur)) {
				g_signal_handlers_disconnect_by_func(cur, (gpointer)cp_ancestor_added, e);
				g_signal_connect_object(cur, "element-added", G_CALLBACK(cp_ancestor_added), e, 0);
			}
			gst_object_unref(cur);
			break;
		}
		GstObject *next = GST_OBJECT_PARENT(cur);
		if (next != NULL) gst_object_ref(next);
		g_mutex_unlock(lock);
		gst_object_unref(cur);
		cur = next;
		direct = FALSE;
	}
	return res;
}

static void shim_cp_install_hooks(gpointer klass) {
	GstElementClass *ec = GST_ELEMENT_CLASS(klass);
	GstElementClass *parent = GST_ELEMENT_CLASS(g_type_class_peek_parent(klass));
	cp_parent_set_bus = parent->set_bus;
	ec->set_bus = cp_set_bus;
	cp_parent_set_clock = parent->set_clock;
	ec->set_clock = cp_set_clock;
}

// The outermost bin holding e (a new reference), or NULL when e has no parent.
static GstBin *shim_cp_top_bin(gpointer e) {
	GstObject *cur = gst_object_ref(GST_OBJECT(e));
	GstObject *p;
	while ((p = gst_object_get_parent(cur)) != NULL) {
		gst_object_unref(cur);
		cur = p;
	}
	if (cur == GST_OBJECT(e) || !GST_IS_BIN(cur)) {
		gst_object_unref(cur);
		return NULL;
	}
	return GST_BIN(cur);
}

static gboolean shim_cp_is_bin(gpointer e) { return GST_IS_BIN(e); }

static void cp_deep_added(GstBin *bin, GstBin *sub, GstElement *element, gpointer id) {
	goCredProviderDeepAdded((guintptr)id, element);
}

// A deep-element-added subscription that does not keep the bin alive: the
// element lives inside that bin, so a strong reference would be a cycle and
// the pipeline (and with it the credential file) would never be freed.
typedef struct {
	GWeakRef bin;
	gulong handler;
} CpWatch;

static CpWatch *shim_cp_watch(gpointer bin, guintptr id) {
	CpWatch *w = g_new0(CpWatch, 1);
	g_weak_ref_init(&w->bin, bin);
	w->handler = g_signal_connect(bin, "deep-element-added", G_CALLBACK(cp_deep_added), (gpointer)id);
	return w;
}

static gboolean shim_cp_watches(CpWatch *w, gpointer bin) {
	GObject *b = g_weak_ref_get(&w->bin);
	gboolean same = b != NULL && b == bin;
	if (b != NULL) g_object_unref(b);
	return same;
}

static void shim_cp_unwatch(CpWatch *w) {
	GObject *b = g_weak_ref_get(&w->bin);
	if (b != NULL) {
		if (g_signal_handler_is_connected(b, w->handler)) g_signal_handler_disconnect(b, w->handler);
		g_object_unref(b);
	}
	g_weak_ref_clear(&w->bin);
	g_free(w);
}
*/
import "C"

import (
	"sync"
	"unsafe"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"
)

// CredProviderSourceGType is the GType of kvscredprovider's source enum
// (GstKvsCredProviderSource: 0 imds, 1 default).
func CredProviderSourceGType() glib.Type { return glib.Type(C.shim_cp_source_gtype()) }

// CredProviderSourceParam makes the `source` enum property spec.
func CredProviderSourceParam(name, nick, blurb string, def int) *glib.ParamSpec {
	// G_PARAM_STATIC_STRINGS: the strings must live for the process.
	cname, cnick, cblurb := C.CString(name), C.CString(nick), C.CString(blurb)
	return glib.ToParamSpec(unsafe.Pointer(C.shim_cp_source_pspec(cname, cnick, cblurb, C.gint(def))))
}

// ParentHooks receives the bin membership changes of one element class.
type ParentHooks struct {
	// Attached runs in the thread that added the element to a bin, right
	// after gst_bin_add released the bin's lock (from its element-added
	// emission), before gst_bin_add returns. It runs again, the same way,
	// when a bin holding the element is added to another bin (the
	// element's top-level bin changed).
	Attached func(self *gst.Element)
	// Detached runs inside gst_bin_remove (also when the bin is disposed),
	// after the element's bus was cleared.
	Detached func(self *gst.Element)
}

var parentHooks ParentHooks

// InstallParentHooks overrides set_bus and set_clock on the class being
// initialised (klass from ClassInit) so that hooks learn when an instance
// joins or leaves a bin, or its bin joins another.
// One element class in the process uses it (kvscredprovider).
func InstallParentHooks(klass *glib.ObjectClass, hooks ParentHooks) {
	parentHooks = hooks
	C.shim_cp_install_hooks(C.gpointer(klass.Unsafe()))
}

//export goCredProviderAttached
func goCredProviderAttached(self *C.GstElement) {
	if parentHooks.Attached != nil {
		parentHooks.Attached(gst.FromGstElementUnsafeNone(unsafe.Pointer(self)))
	}
}

//export goCredProviderDetached
func goCredProviderDetached(self *C.GstElement) {
	if parentHooks.Detached != nil {
		parentHooks.Detached(gst.FromGstElementUnsafeNone(unsafe.Pointer(self)))
	}
}

// TopLevelBin returns the outermost bin holding e, or nil when e is in none.
func TopLevelBin(e *gst.Element) *gst.Bin {
	b := C.shim_cp_top_bin(C.gpointer(e.Unsafe()))
	if b == nil {
		return nil
	}
	return gst.ToGstBin(gst.FromGstElementUnsafeFull(unsafe.Pointer(b)))
}

var (
	deepMu     sync.Mutex
	deepNextID uintptr
	deepFuncs  = map[uintptr]func(*gst.Element){}
)

//export goCredProviderDeepAdded
func goCredProviderDeepAdded(id C.guintptr, element *C.GstElement) {
	deepMu.Lock()
	fn := deepFuncs[uintptr(id)]
	deepMu.Unlock()
	if fn != nil {
		fn(gst.FromGstElementUnsafeNone(unsafe.Pointer(element)))
	}
}

// BinWatch is a deep-element-added subscription holding only a weak
// reference to its bin.
type BinWatch struct {
	w  *C.CpWatch
	id uintptr
}

// WatchDeepElementAdded calls fn (in the adding thread, outside the bin's
// lock) for every element added to bin or to any bin inside it.
func WatchDeepElementAdded(bin *gst.Bin, fn func(*gst.Element)) *BinWatch {
	deepMu.Lock()
	deepNextID++
	id := deepNextID
	deepFuncs[id] = fn
	deepMu.Unlock()
	return &BinWatch{w: C.shim_cp_watch(C.gpointer(bin.Unsafe()), C.guintptr(id)), id: id}
}

// Watches reports whether w watches bin (and bin still exists).
func (w *BinWatch) Watches(bin *gst.Bin) bool {
	return w != nil && bin != nil && C.shim_cp_watches(w.w, C.gpointer(bin.Unsafe())) != 0
}

// Close disconnects the handler (if the bin still exists) and releases w.
func (w *BinWatch) Close() {
	if w == nil {
		return
	}
	deepMu.Lock()
	delete(deepFuncs, w.id)
	deepMu.Unlock()
	C.shim_cp_unwatch(w.w)
}

// IsBin reports whether e is a GstBin (and so may hold other elements).
func IsBin(e *gst.Element) bool {
	return e != nil && C.shim_cp_is_bin(C.gpointer(e.Unsafe())) != 0
}
