package kvscredprovider

import (
	"fmt"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// kvssinkFactory is the factory name of AWS's kvssink (and of the tests'
// stand-in).
const kvssinkFactory = "kvssink"

// Placeholders kvssink uses to tell "not set" from static keys.
const (
	kvssinkDefaultAccessKey = "access_key"
	kvssinkDefaultSecretKey = "secret_key"
)

// configureAll points every kvssink inside top (recursively) at the file.
// late: the kvssinks have started already (found at NULL->READY), so one
// that was not pointed at the file yet gets a warning.
func (p *credProvider) configureAll(top *gst.Bin, late bool) {
	if top == nil {
		return
	}
	elements, err := top.GetElementsRecursive()
	if err != nil {
		cat.LogWarning(fmt.Sprintf("listing the pipeline's elements: %v", err))
		return
	}
	for _, el := range elements {
		if isKvssink(el) {
			p.configureSink(el, late)
		}
	}
}

// elementAdded is the top-level bin's deep-element-added handler: a kvssink
// added after this element (or inside a bin added after it) is configured
// before anything can start it.
func (p *credProvider) elementAdded(el *gst.Element) {
	if isKvssink(el) {
		p.configureSink(el, false)
		return
	}
	if gstshim.IsBin(el) {
		p.configureAll(gst.ToGstBin(el), false)
	}
}

func isKvssink(el *gst.Element) bool {
	f := el.GetFactory()
	return f != nil && f.GetName() == kvssinkFactory
}

// configureSink sets the kvssink's credential-path and warns about settings
// that make kvssink ignore the file. Property values are compared, never
// logged: they may be secrets.
func (p *credProvider) configureSink(el *gst.Element, late bool) {
	sess := p.sess.Load()
	if sess == nil || sess.keeper.Expiration().IsZero() {
		p.holdSink(el)
	}
	if sess == nil {
		return
	}
	name := el.GetName()
	if cur, _ := el.GetProperty("credential-path"); cur != sess.path {
		if late && p.firstWarning(name+"/late") {
			text := fmt.Sprintf("%s had started before %s could set its credential-path (it sits in a bin added "+
				"to the pipeline later); it may be using other credentials. Put %s and kvssink in the same pipeline "+
				"before starting it", name, p.self.GetName(), FactoryName)
			cat.LogWarning(text)
			gstshim.PostError(p.self, true, gstshim.ResourceError, gst.ResourceErrorSettings, text, "")
		}
		if err := el.SetProperty("credential-path", sess.path); err != nil {
			cat.LogWarning(fmt.Sprintf("setting credential-path on %s: %v", name, err))
			return
		}
		cat.LogInfo(fmt.Sprintf("%s: credential-path set to %s", name, sess.path))
	}
	checks := []struct {
		prop    string
		ignored func(v any) bool // true when kvssink does not use the property
	}{
		{"access-key", func(v any) bool { s, _ := v.(string); return s == kvssinkDefaultAccessKey }},
		{"secret-key", func(v any) bool { s, _ := v.(string); return s == kvssinkDefaultSecretKey }},
		{"session-token", func(v any) bool { s, _ := v.(string); return s == "" }},
	}
	for _, c := range checks {
		v, err := el.GetProperty(c.prop)
		if err != nil || c.ignored(v) || !p.firstWarning(name+"/"+c.prop) {
			continue
		}
		text := fmt.Sprintf("%s has its %s property set: kvssink then uses static credentials instead of the "+
			"credential file written by %s, and never refreshes them; leave %s unset", name, c.prop, p.self.GetName(), c.prop)
		cat.LogWarning(text)
		gstshim.PostError(p.self, true, gstshim.ResourceError, gst.ResourceErrorSettings, text, "")
	}
}

// holdAll holds every kvssink inside top that is in NULL.
func (p *credProvider) holdAll(top *gst.Bin) {
	if top == nil {
		return
	}
	elements, err := top.GetElementsRecursive()
	if err != nil {
		return
	}
	for _, el := range elements {
		if isKvssink(el) {
			p.holdSink(el)
		}
	}
}

// holdSink keeps a kvssink out of the pipeline's state changes (locked
// state) while there are no credentials. A bin starts its sinks before this
// element, so without it kvssink's own error ("Could not find any AWS
// credentials!") would come first and gst-launch-1.0 would print only that;
// held, kvssink stays in NULL and this element's NULL->READY reports the real
// cause. Happens only when the first fetch failed: with credentials nothing
// is held. Held again after a stop (READY->NULL) until the next start.
func (p *credProvider) holdSink(el *gst.Element) {
	if el.GetCurrentState() != gst.StateNull {
		return
	}
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	for _, h := range p.held {
		if h.Unsafe() == el.Unsafe() {
			return
		}
	}
	if err := el.SetLockedState(true); err != nil {
		return
	}
	p.held = append(p.held, el)
	cat.LogInfo(fmt.Sprintf("%s: held in NULL until credentials exist", el.GetName()))
}

// releaseSinks gives held kvssinks back to their pipeline. toReady: the
// pipeline is in its NULL->READY step and has passed them, so they are
// brought to READY here (they read the fresh file now).
func (p *credProvider) releaseSinks(toReady bool) {
	p.heldMu.Lock()
	held := p.held
	p.held = nil
	p.heldMu.Unlock()
	for _, el := range held {
		_ = el.SetLockedState(false)
		if toReady {
			if err := el.SetState(gst.StateReady); err != nil {
				cat.LogWarning(fmt.Sprintf("starting %s: %v", el.GetName(), err))
			}
		}
		cat.LogInfo(fmt.Sprintf("%s: released", el.GetName()))
	}
}
