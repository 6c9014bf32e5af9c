package kvscredprovider

// GObject glue telling the element when it joins or leaves a bin, and when
// the bin holding it joins another one: overrides of set_bus and set_clock
// on kvscredprovider's class (installParentHooks, from ClassInit).
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
#include <gst/gst.h>

extern void goCredProviderAttached(GstElement *self);
extern void goCredProviderDetached(GstElement *self);

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

static void cp_install_hooks(gpointer klass) {
	GstElementClass *ec = GST_ELEMENT_CLASS(klass);
	GstElementClass *parent = GST_ELEMENT_CLASS(g_type_class_peek_parent(klass));
	cp_parent_set_bus = parent->set_bus;
	ec->set_bus = cp_set_bus;
	cp_parent_set_clock = parent->set_clock;
	ec->set_clock = cp_set_clock;
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"
)

// installParentHooks overrides set_bus and set_clock on the class being
// initialised (klass from ClassInit), so that each instance's attached and
// detached run when it joins or leaves a bin, or its bin joins another.
func installParentHooks(klass *glib.ObjectClass) {
	C.cp_install_hooks(C.gpointer(klass.Unsafe()))
}

// goCredProviderAttached runs in the thread that added the element to a
// bin, right after gst_bin_add released the bin's lock (from its
// element-added emission), before gst_bin_add returns. It runs again, the
// same way, when a bin holding the element is added to another bin (the
// element's top-level bin changed).
//
//export goCredProviderAttached
func goCredProviderAttached(self *C.GstElement) {
	if p := instance(gst.FromGstElementUnsafeNone(unsafe.Pointer(self))); p != nil {
		p.attached()
	}
}

// goCredProviderDetached runs inside gst_bin_remove (also when the bin is
// disposed), after the element's bus was cleared.
//
//export goCredProviderDetached
func goCredProviderDetached(self *C.GstElement) {
	if p := instance(gst.FromGstElementUnsafeNone(unsafe.Pointer(self))); p != nil {
		p.detached()
	}
}
