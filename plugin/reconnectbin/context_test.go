package reconnectbin_test

import (
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/test/gsttest"
	"github.com/kvsrelay/kvsrelay/test/harness"
)

const (
	soupSession  = "gst.soup.session"
	otherContext = "kvsrelay.test.shared"
)

// innerElement waits for the element named name inside the current source
// instance and returns it; after a rebuild, the new instance's one.
func innerElement(t *testing.T, p *harness.Pipeline, name string, not *gst.Element) *gst.Element {
	t.Helper()
	var el *gst.Element
	harness.WaitUntil(t, 30*time.Second, "the source instance's "+name, func() bool {
		e, err := p.GetElementByNameRecursive(name)
		if err != nil || e == nil || (not != nil && e.Unsafe() == not.Unsafe()) {
			return false
		}
		el = e
		return true
	})
	return el
}

// A soup session shared by a source instance (souphttpsrc's HAVE_CONTEXT)
// stays inside that instance: neither reconnectbin nor the pipeline keeps
// it, so the next instance does not run its requests on the old
// instance's session thread (issue #12: a session thread that GStreamer
// 1.22's hlsdemux deadlocked left every later instance without any HTTP
// request). Every other context still reaches the pipeline and the next
// instance as GstBin passes it.
func TestSoupSessionStaysInsideItsInstance(t *testing.T) {
	p := harness.NewPipeline(t, `reconnectbin name=rbctx retry-delay=0 max-retry-delay=0
		source="videotestsrc is-live=true name=inner" ! fakesink sync=false`)
	rb, err := p.GetElementByName("rbctx")
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	first := innerElement(t, p, "inner", nil)

	for _, ctxType := range []string{soupSession, otherContext} {
		if !first.PostMessage(gst.NewHaveContextMessage(first, gst.NewContext(ctxType, true))) {
			t.Fatalf("posting HAVE_CONTEXT %s from inside the source", ctxType)
		}
	}
	// Bins handle their children's messages synchronously: the contexts
	// are where they will be once PostMessage returns.
	if gsttest.HasContext(p.Element, soupSession) || gsttest.HasContext(rb, soupSession) {
		t.Errorf("the instance's %s context reached the bin or the pipeline (bin %v, pipeline %v)",
			soupSession, gsttest.HasContext(rb, soupSession), gsttest.HasContext(p.Element, soupSession))
	}
	if !gsttest.HasContext(p.Element, otherContext) || !gsttest.HasContext(rb, otherContext) {
		t.Errorf("another context type must still reach the bin and the pipeline (bin %v, pipeline %v)",
			gsttest.HasContext(rb, otherContext), gsttest.HasContext(p.Element, otherContext))
	}

	// Rebuild: the source instance fails.
	first.ErrorMessage(gst.DomainResource, gst.ResourceErrorRead, "test failure", "")
	p.WaitFor(30*time.Second, 1, "a recovery after the instance failed", harness.ElementMessage("reconnectbin-recovered"))
	second := innerElement(t, p, "inner", first)
	if gsttest.HasContext(second, soupSession) {
		t.Errorf("the new source instance got the old instance's %s context", soupSession)
	}
	if !gsttest.HasContext(second, otherContext) {
		t.Errorf("the new source instance must still get the bin's %s context", otherContext)
	}
}
