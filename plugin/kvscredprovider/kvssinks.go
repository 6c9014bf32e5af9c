package kvscredprovider

import (
	"fmt"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// kvssinkFactory is the factory name of AWS's kvssink (and of the tests'
// stand-in).
const kvssinkFactory = "kvssink"

// Placeholders kvssink uses as the defaults of its static credential
// properties: a property still holding its placeholder (or empty) is not
// used by kvssink (gstkvssink.cpp: the access-key property counts only when
// changed from "access_key"; AWS_SESSION_TOKEN is read only while
// session-token still equals "session_token").
const (
	kvssinkDefaultAccessKey    = "access_key"
	kvssinkDefaultSecretKey    = "secret_key"
	kvssinkDefaultSessionToken = "session_token"
)

// staticCredentialProps are kvssink's properties that, when set, make it use
// static credentials instead of the file, with the placeholder each has
// while unset.
var staticCredentialProps = []struct{ prop, placeholder string }{
	{"access-key", kvssinkDefaultAccessKey},
	{"secret-key", kvssinkDefaultSecretKey},
	{"session-token", kvssinkDefaultSessionToken},
}

// staticPropertySet reports whether a static credential property holds a
// real value: neither empty nor kvssink's placeholder.
func staticPropertySet(v any, placeholder string) bool {
	s, _ := v.(string)
	return s != "" && s != placeholder
}

// configureAll points every kvssink inside top (recursively) at the file.
func (p *credProvider) configureAll(top *gst.Bin) {
	if top == nil {
		return
	}
	for _, el := range gstshim.ElementsMadeBy(top, kvssinkFactory) {
		p.configureSink(el)
	}
}

// registerMetrics records into the metrics streams of every kvssink inside
// top from now on, before any credentials exist (so failures of the first
// fetch count too).
func (p *credProvider) registerMetrics(top *gst.Bin) {
	if top == nil {
		return
	}
	p.metrics.start()
	for _, el := range gstshim.ElementsMadeBy(top, kvssinkFactory) {
		p.metrics.addSink(el, time.Time{})
	}
}

// kvssinkAdded is the top-level bin's deep-element-added handler, called for
// each kvssink only: one added after this element (or inside a bin added
// after it) is configured before anything can start it.
func (p *credProvider) kvssinkAdded(el *gst.Element) {
	p.configureSink(el)
}

// configureSink sets the kvssink's credential-path and warns about settings
// that make kvssink ignore the file. Property values are compared, never
// logged: they may be secrets.
//
// A kvssink that has already left NULL without this element's file gets an
// ERROR, not a warning: kvssink reads credential-path only at NULL->READY, so
// nothing this element does reaches it any more. It is using other
// credentials (static keys, the environment, some other file) that nobody
// refreshes, or none, and the failure would come much later and far from its
// cause: at its first token renewal (within 40 minutes) as an upload that
// silently stops or an ERROR, then a 120 s hang at EOS (see the kvssink
// contract). Failing now names the cause while it is easy to fix.
func (p *credProvider) configureSink(el *gst.Element) {
	p.upload.hook(el)
	sess := p.sess.Load()
	if sess == nil || sess.keeper.Expiration().IsZero() {
		p.holdSink(el)
	}
	if sess == nil {
		return
	}
	name := el.GetName()
	p.metrics.addSink(el, sess.keeper.Expiration())
	if cur, _ := el.GetProperty("credential-path"); cur != sess.path {
		if state := el.GetCurrentState(); state != gst.StateNull && p.firstWarning(name+"/late") {
			text := fmt.Sprintf("%s was already started (state %s) when %s could give it its credential file: kvssink "+
				"reads credential-path only when it starts, so it is not using the credentials %s keeps fresh, and its "+
				"upload will fail when the credentials it has expire. Put %s in the pipeline before kvssink is started "+
				"(in the same gst-launch line, or added before the pipeline's state is set), or give that kvssink "+
				"credential-path=%s", name, state, p.self.GetName(), p.self.GetName(), FactoryName, sess.path)
			cat.LogError(text)
			gstshim.PostError(p.self, false, gstshim.ResourceError, gst.ResourceErrorSettings, text,
				"kvssink started before kvscredprovider could configure it")
		}
		if err := el.SetProperty("credential-path", sess.path); err != nil {
			cat.LogWarning(fmt.Sprintf("setting credential-path on %s: %v", name, err))
			return
		}
		cat.LogInfo(fmt.Sprintf("%s: credential-path set to %s", name, sess.path))
	}
	for _, c := range staticCredentialProps {
		v, err := el.GetProperty(c.prop)
		if err != nil || !staticPropertySet(v, c.placeholder) || !p.firstWarning(name+"/"+c.prop) {
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
	for _, el := range gstshim.ElementsMadeBy(top, kvssinkFactory) {
		p.holdSink(el)
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
