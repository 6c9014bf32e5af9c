package kvscredprovider

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/internal/credsource"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/gvalue"
	"github.com/kvsrelay/kvsrelay/internal/uploadhealth"
)

// settings is what the properties say. Guarded by credProvider.settingsMu.
type settings struct {
	source         credsource.Kind
	role           string
	profile        string
	credentialPath string // "" means: choose one (see the property blurb)
	refreshBefore  time.Duration
	ackTimeout     time.Duration // upload health; 0: off
}

func defaultSettings() settings {
	return settings{source: credsource.KindIMDS, refreshBefore: DefaultRefreshBefore, ackTimeout: DefaultAckTimeout}
}

// credProvider is the Go half of one kvscredprovider instance.
type credProvider struct {
	// self is set once in Constructed and never changes.
	self *gst.Element

	settingsMu sync.Mutex
	settings   settings
	// keeperOptions is what every refresh's credrefresh.Options start
	// from before the settings are applied: zero (the defaults) in
	// production; tests set a clock and short retry delays
	// (export_test.go).
	keeperOptions credrefresh.Options

	// stateMu serialises joining/leaving a bin and starting/stopping the
	// refresh, which may block for up to PrimeTimeout. Never taken from
	// GetProperty, streaming threads or while a GStreamer lock is held.
	stateMu sync.Mutex
	watch   *gstshim.BinWatch // deep-element-added on the top-level bin (weak)
	inBin   bool

	// sess is the running refresh (nil when none); read lock-free by
	// GetProperty and the kvssink callbacks.
	sess    atomic.Pointer[session]
	stopped atomic.Bool // a refresh ran or failed to start: status "stopped" rather than "idle"

	// heldMu guards held: kvssinks kept in NULL (locked state) because no
	// credentials existed when they were configured; see holdSink.
	heldMu sync.Mutex
	held   []*gst.Element

	// warnMu guards warned: warnings already posted, so each is posted once
	// per kvssink and property (or once for the environment).
	warnMu sync.Mutex
	warned map[string]bool

	// lastMu guards last: the credentials the refresh had written when it
	// was stopped at READY->NULL, kept in memory only (never logged: the
	// type prints masked) so that the next NULL->READY can start on them
	// when the source is down at that moment (credrefresh.Options.Seed).
	lastMu sync.Mutex
	last   lastCredentials

	metrics metrics // CloudWatch EMF streams of the kvssinks supplied

	// upload watches every kvssink's upload (upload.go); uploadOpts is
	// zero in production, tests set a clock and tick (export_test.go).
	upload     uploadWatch
	uploadOpts uploadOptions
}

// lastCredentials are credentials kept across a stop, with the settings
// that fetched them: they are reused only for the same source and role.
type lastCredentials struct {
	creds credfile.Credentials
	from  settings
}

// sameSource reports whether credentials fetched with a could stand for
// credentials fetched with b.
func sameSource(a, b settings) bool {
	return a.source == b.source && a.role == b.role && a.profile == b.profile
}

// New is called by the GObject type system for every new instance.
func (p *credProvider) New() glib.GoObjectSubclass {
	n := &credProvider{settings: defaultSettings(), warned: map[string]bool{}}
	n.upload.p = n
	return n
}

// ClassInit installs metadata, properties and the bin membership hooks.
func (p *credProvider) ClassInit(klass *glib.ObjectClass) {
	class := gst.ToElementClass(klass)
	class.SetMetadata(
		"KVS credential provider",
		"Generic",
		"Fetches AWS credentials (IMDSv2 or the AWS default chain) and keeps every kvssink in the pipeline "+
			"supplied with fresh ones through its credential-path file",
		"kvsrelay developers <kvsrelay@users.noreply.github.com>",
	)
	klass.InstallProperties(properties)
	installParentHooks(klass)
}

// instance finds the Go half of a kvscredprovider GObject.
func instance(e *gst.Element) *credProvider {
	p, _ := glib.FromObjectUnsafePrivate(e.Unsafe()).(*credProvider)
	return p
}

// Constructed keeps the element for posting messages.
func (p *credProvider) Constructed(obj *glib.Object) {
	p.self = gst.ToElement(obj)
}

// SetProperty stores a property. While the element is in a bin and in NULL
// with credentials already written, a changed setting restarts the refresh
// at once so that kvssink finds the new file at its start; while it runs,
// the change applies at the next start.
func (p *credProvider) SetProperty(obj *glib.Object, id uint, value *glib.Value) {
	p.settingsMu.Lock()
	s := &p.settings
	before := *s
	switch id {
	case propSource:
		if v, err := value.GoValue(); err == nil {
			if n, ok := v.(int); ok && n == sourceDefault {
				s.source = credsource.KindDefault
			} else {
				s.source = credsource.KindIMDS
			}
		}
	case propRole:
		s.role = gvalue.String(value)
	case propProfile:
		s.profile = gvalue.String(value)
	case propCredentialPath:
		s.credentialPath = gvalue.String(value)
	case propRefreshBefore:
		s.refreshBefore = gvalue.Duration(value)
	case propAckTimeout:
		s.ackTimeout = gvalue.Duration(value)
	}
	changed := *s != before
	p.settingsMu.Unlock()
	if id == propAckTimeout {
		// Not a credential setting: read at each NULL->READY, nothing to
		// restart.
		return
	}
	if !changed || p.sess.Load() == nil {
		return
	}
	if p.self.GetCurrentState() != gst.StateNull {
		cat.LogWarning(fmt.Sprintf("%s: property %s changed while running; it takes effect at the next start",
			p.self.GetName(), properties[id].Name()))
		return
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	p.restartLocked()
}

// GetProperty reads a property.
func (p *credProvider) GetProperty(obj *glib.Object, id uint) *glib.Value {
	p.settingsMu.Lock()
	s := p.settings
	p.settingsMu.Unlock()
	sess := p.sess.Load()
	var v any
	switch id {
	case propSource:
		if s.source == credsource.KindDefault {
			return gstshim.EnumToValue(sourceType, sourceDefault)
		}
		return gstshim.EnumToValue(sourceType, sourceIMDS)
	case propRole:
		v = s.role
	case propProfile:
		v = s.profile
	case propCredentialPath:
		v = s.credentialPath
		if sess != nil {
			v = sess.path
		}
	case propRefreshBefore:
		v = uint64(s.refreshBefore)
	case propAckTimeout:
		v = uint64(s.ackTimeout)
	case propUploadStatus:
		v = p.upload.status()
	case propExpiration:
		if sess == nil || sess.keeper == nil || sess.keeper.Expiration().IsZero() {
			return nil
		}
		v = sess.keeper.Expiration().UTC().Format(time.RFC3339)
	case propStatus:
		v = p.status()
	default:
		return nil
	}
	if str, ok := v.(string); ok && str == "" {
		return nil
	}
	val, err := glib.GValue(v)
	if err != nil {
		return nil
	}
	return val
}

func (p *credProvider) status() string {
	if sess := p.sess.Load(); sess != nil && sess.keeper != nil {
		return sess.keeper.Status().String()
	}
	if p.stopped.Load() {
		return "stopped"
	}
	return "idle"
}

// attached runs when the element joined a bin, or when a bin holding it
// joined another one, in the adding thread before gst_bin_add returns:
// watch the top-level bin, write credentials, point every kvssink at them.
func (p *credProvider) attached() {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	top := p.resolveTopLocked()
	p.registerMetrics(top)
	if p.sess.Load() == nil {
		// A WARNING only: the refresh keeps trying, and if there are still
		// no credentials at NULL->READY, that fails with an ERROR.
		if err := p.startLocked(); err != nil {
			p.postStartError(err, true)
		}
	}
	p.configureAll(top)
	p.warnEnvironment()
}

// resolveTopLocked finds the top-level bin and makes sure it is the one
// watched for kvssinks added later. The caller holds stateMu.
func (p *credProvider) resolveTopLocked() *gst.Bin {
	top := gstshim.TopLevelBin(p.self)
	if top != nil {
		cat.LogDebug(fmt.Sprintf("%s: in bin, top-level bin %s", p.self.GetName(), top.GetName()))
	}
	if p.watch != nil && !p.watch.Watches(top) {
		p.watch.Close()
		p.watch = nil
	}
	if p.watch == nil && top != nil {
		p.watch = gstshim.WatchDeepElementAdded(top, kvssinkFactory, p.kvssinkAdded)
	}
	p.inBin = top != nil
	return top
}

// detached runs when the element left its bin (also when the bin is
// freed): stop refreshing and remove the file.
func (p *credProvider) detached() {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.watch != nil {
		p.watch.Close()
		p.watch = nil
	}
	p.inBin = false
	p.stopLocked()
	p.upload.unhookAll()
	p.releaseSinks(false)
	p.forgetLast()
}

// startLocked starts a refresh with the current settings. It returns why
// the refresh could not start (no session) or why no credentials could be
// written within PrimeTimeout (session running, still trying); the caller
// posts it. The caller holds stateMu.
func (p *credProvider) startLocked() error {
	p.settingsMu.Lock()
	s, base := p.settings, p.keeperOptions
	p.settingsMu.Unlock()
	p.lastMu.Lock()
	var seed credfile.Credentials
	if sameSource(p.last.from, s) {
		seed = p.last.creds
	}
	p.last = lastCredentials{} // the new refresh holds them now
	p.lastMu.Unlock()
	sess, err := startSession(p, s, base, seed)
	if sess != nil {
		p.sess.Store(sess)
	} else {
		p.stopped.Store(true)
	}
	return err
}

// stopLocked stops the refresh, if any, and removes the file. The
// credentials it had written stay in memory for the next start (see
// lastCredentials). The caller holds stateMu.
func (p *credProvider) stopLocked() {
	if sess := p.sess.Swap(nil); sess != nil {
		p.stopped.Store(true)
		sess.stop()
		p.lastMu.Lock()
		p.last = lastCredentials{creds: sess.keeper.Credentials(), from: sess.settings}
		p.lastMu.Unlock()
		p.metrics.clearExpiry()
	}
}

// forgetLast drops the credentials kept in memory.
func (p *credProvider) forgetLast() {
	p.lastMu.Lock()
	p.last = lastCredentials{}
	p.lastMu.Unlock()
}

// restartLocked applies changed settings: a new refresh, and every kvssink
// pointed at its file. The caller holds stateMu.
func (p *credProvider) restartLocked() {
	p.stopLocked()
	if !p.inBin {
		return
	}
	if err := p.startLocked(); err != nil {
		p.postStartError(err, true)
	}
	p.configureAll(p.resolveTopLocked())
}

func (p *credProvider) postStartError(err error, warning bool) {
	cat.LogWarning(err.Error())
	var fe *fielderr.Error
	if errors.As(err, &fe) {
		gstshim.PostError(p.self, warning, gstshim.ResourceError, gst.ResourceErrorSettings, err.Error(), "")
		return
	}
	gstshim.PostError(p.self, warning, gstshim.ResourceError, gst.ResourceErrorNotAuthorized, err.Error(), "")
}

// ChangeState makes sure credentials exist at NULL->READY (posting an
// ERROR and failing otherwise) and stops the refresh at READY->NULL.
func (p *credProvider) ChangeState(el *gst.Element, transition gst.StateChange) gst.StateChangeReturn {
	if transition == gst.StateChangeNullToReady {
		p.settingsMu.Lock()
		ackTimeout := p.settings.ackTimeout
		p.settingsMu.Unlock()
		if err := uploadhealth.CheckAckTimeout(ackTimeout); err != nil {
			p.postStartError(settingError(p.self.GetName(), err), false)
			return gst.StateChangeFailure
		}
		if err := p.ensureCredentials(); err != nil {
			return gst.StateChangeFailure
		}
	}
	ret := el.ParentChangeState(transition)
	switch transition {
	case gst.StateChangeNullToReady:
		if ret != gst.StateChangeFailure {
			p.startUploadWatch()
		}
	case gst.StateChangeReadyToNull:
		p.upload.stopRun()
		p.stop()
	}
	return ret
}

// startUploadWatch starts watching the upload of every kvssink in the
// pipeline (they started before this element: a bin starts its sinks
// first, so their settings are final).
func (p *credProvider) startUploadWatch() {
	p.settingsMu.Lock()
	timeout, opts := p.settings.ackTimeout, p.uploadOpts
	p.settingsMu.Unlock()
	p.stateMu.Lock()
	top := gstshim.TopLevelBin(p.self)
	p.stateMu.Unlock()
	p.upload.startRun(top, timeout, opts)
}

// stop ends the refresh and removes the file when the element returns to
// NULL. The kvssinks (already in NULL: a bin stops its sinks first) are held
// there, so that a restart of the pipeline brings them up only after this
// element's NULL->READY has written fresh credentials.
func (p *credProvider) stop() {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	p.stopLocked()
	if p.inBin {
		p.holdAll(gstshim.TopLevelBin(p.self))
	}
}

// ensureCredentials is the NULL->READY check. It posts the ERROR itself.
// It also resolves the top-level bin again: kvssinks in a part of the
// pipeline this element could not see when it was attached (which the
// bin hooks should rule out) are found now, and any that started without
// this element's file get an ERROR (see configureSink).
func (p *credProvider) ensureCredentials() error {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	top := p.resolveTopLocked()
	p.registerMetrics(top)
	sess := p.sess.Load()
	if sess == nil {
		// Stopped at READY->NULL, never in a bin, or the start failed on bad settings: try (again)
		// now, which posts the ERROR if it fails.
		err := p.startLocked()
		if sess = p.sess.Load(); sess == nil {
			p.postStartError(err, false)
			return err
		}
	}
	p.configureAll(top)
	if sess.keeper.Expiration().IsZero() {
		why := "no attempt finished yet"
		if err := sess.keeper.LastError(); err != nil {
			why = err.Error()
		}
		gstshim.PostError(p.self, false, gstshim.ResourceError, gst.ResourceErrorNotAuthorized,
			fmt.Sprintf("No AWS credentials for kvssink yet (%s): %s", sess.describe, why),
			"kvssink cannot start without them; check the instance role / credential source")
		return errors.New("no credentials")
	}
	// Credentials exist: kvssinks held in NULL join the state change; the
	// pipeline has passed them already in this NULL->READY step.
	p.releaseSinks(true)
	return nil
}

// warnEnvironment warns once when AWS keys in the environment would make
// kvssink ignore the credential file.
func (p *credProvider) warnEnvironment() {
	var set []string
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if _, ok := os.LookupEnv(k); ok {
			set = append(set, k)
		}
	}
	if len(set) == 0 || !p.firstWarning("env") {
		return
	}
	text := fmt.Sprintf("%v set in the environment: kvssink uses the environment's keys (when both are set, even empty) "+
		"instead of the credential file written by %s, and never refreshes them; unset them", set, p.self.GetName())
	cat.LogWarning(text)
	gstshim.PostError(p.self, true, gstshim.ResourceError, gst.ResourceErrorSettings, text, "")
}

func (p *credProvider) firstWarning(key string) bool {
	p.warnMu.Lock()
	defer p.warnMu.Unlock()
	if p.warned[key] {
		return false
	}
	p.warned[key] = true
	return true
}

// postElementMessage posts an application-visible element message on the bus.
func (p *credProvider) postElementMessage(name string, fields map[string]any) {
	gstshim.PostElementMessage(p.self, name, fields)
}
