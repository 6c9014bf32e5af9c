package kvssinkstandin

// GObject glue for the stand-in: the signals and the enum property the real
// kvssink declares, which go-glib v1.4.0 cannot create (its SignalNew only
// makes argument-less signals on G_TYPE_OBJECT, and it has no enum
// ParamSpec constructor). Test-only, like the rest of this package: it was
// in internal/gstshim, and so in the shipped plugin, before.

/*
#cgo pkg-config: gstreamer-1.0
#include <stdlib.h>
#include <string.h>
#include <gst/gst.h>

static void standin_install_signals(gpointer klass) {
	GType t = G_TYPE_FROM_CLASS(klass);
	g_signal_new("stream-error", t, G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_UINT64);
	g_signal_new("fragment-ack", t, G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
	g_signal_new("stream-client-metric", t, G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
}

// Serialises a GstStructure GValue; NULL when the value holds no structure.
static gchar *standin_structure_value_string(gpointer v) {
	const GstStructure *s = gst_value_get_structure((const GValue *)v);
	return s == NULL ? NULL : gst_structure_to_string(s);
}

static void standin_emit_uint64(gpointer obj, const gchar *signal, guint64 v) {
	g_signal_emit_by_name(obj, signal, v);
}

// PIC's FragmentAck, as kvssink's fragment-ack passes it (a pointer valid
// for the emission only): UINT32 version, FRAGMENT_ACK_TYPE ackType,
// UINT64 timestamp, CHAR sequenceNumber[128 + 1], SERVICE_CALL_RESULT result.
typedef struct {
	guint32 version;
	gint32 ack_type;
	guint64 timestamp;
	gchar sequence_number[128 + 1];
	gint32 result;
} StandinFragmentAck;

static void standin_emit_ack(gpointer obj, gint32 type, guint64 timestamp, const gchar *seq, gint32 result) {
	StandinFragmentAck ack;
	memset(&ack, 0, sizeof ack);
	ack.ack_type = type;
	ack.timestamp = timestamp;
	g_strlcpy(ack.sequence_number, seq, sizeof ack.sequence_number);
	ack.result = result;
	g_signal_emit_by_name(obj, "fragment-ack", &ack);
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// streamingType is the GType of kvssink's streaming-type enum (0 realtime,
// 1 near-realtime, 2 offline), registered as streamingTypeName.
var streamingType = gstshim.RegisterEnum(streamingTypeName, []gstshim.EnumValue{
	{Value: 0, Name: "streaming type realtime", Nick: "realtime"},
	{Value: 1, Name: "streaming type near realtime", Nick: "near-realtime"},
	{Value: 2, Name: "streaming type offline", Nick: "offline"},
})

// installSignals declares kvssink's signals on the class being
// initialised: stream-error (guint64 status), fragment-ack and
// stream-client-metric (pointers; the stand-in emits fragment-ack, see
// acks.go, never stream-client-metric).
func installSignals(klass *glib.ObjectClass) {
	C.standin_install_signals(C.gpointer(klass.Unsafe()))
}

// emitUint64Signal emits a signal whose only argument is a guint64.
func emitUint64Signal(obj *gst.Object, signal string, v uint64) {
	cs := C.CString(signal)
	defer C.free(unsafe.Pointer(cs))
	C.standin_emit_uint64(C.gpointer(obj.Unsafe()), cs, C.guint64(v))
}

// emitFragmentAck emits fragment-ack with a FragmentAck of PIC's layout.
func emitFragmentAck(obj *gst.Object, ackType int32, timecode uint64, seq string, result int32) {
	cs := C.CString(seq)
	defer C.free(unsafe.Pointer(cs))
	C.standin_emit_ack(C.gpointer(obj.Unsafe()), C.gint32(ackType), C.guint64(timecode), cs, C.gint32(result))
}

// structureValueString serialises a GValue holding a GstStructure (for
// example a boxed property being set); ok is false when it holds NULL.
// go-gst's GoValue dereferences a NULL structure and panics.
func structureValueString(v *glib.Value) (s string, ok bool) {
	if v == nil {
		return "", false
	}
	cs := C.standin_structure_value_string(C.gpointer(v.Unsafe()))
	if cs == nil {
		return "", false
	}
	defer C.g_free(C.gpointer(cs))
	return C.GoString(cs), true
}
