package kvssinkstandin

// GObject glue: a GstBin whose request pads (video_%u, audio_%u) are ghost
// pads onto capsfilter ! fakesink pairs. The capsfilter enforces the pad
// template caps; pad probes on the ghost pads run kvssink's checks (run.go)
// and drop what kvssink would drop; the fakesinks make GstBin post EOS once
// every pad got EOS, like kvssink does.

import (
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// reportInterval is how often a running stand-in rewrites a changed report.
const reportInterval = 250 * time.Millisecond

type requestPad struct {
	name   string
	ghost  *gst.GhostPad
	filter *gst.Element
	sink   *gst.Element
}

type standin struct {
	self *gst.Bin

	mu       sync.Mutex // guards settings, pads, nVideo, nAudio
	settings [numProps]any
	pads     map[string]*requestPad
	nVideo   int
	nAudio   int

	run atomic.Pointer[runState]
}

// New is called by the GObject type system for every new instance.
func (s *standin) New() glib.GoObjectSubclass {
	n := &standin{pads: map[string]*requestPad{}}
	for i, p := range props {
		n.settings[i] = p.def
		if p.initial != nil {
			n.settings[i] = p.initial()
		}
	}
	return n
}

// ClassInit installs metadata, pad templates, properties and signals.
func (s *standin) ClassInit(klass *glib.ObjectClass) {
	class := gst.ToElementClass(klass)
	class.SetMetadata(
		"KVS Sink (kvsrelay test stand-in)",
		"Sink/Video/Network",
		"TEST-ONLY stand-in for AWS kvssink: checks what kvssink would accept and writes a JSON report; uploads nothing",
		"kvsrelay developers <kvsrelay@users.noreply.github.com>",
	)
	class.AddPadTemplate(gst.NewPadTemplate("video_%u", gst.PadDirectionSink, gst.PadPresenceRequest, gst.NewCapsFromString(VideoCaps)))
	class.AddPadTemplate(gst.NewPadTemplate("audio_%u", gst.PadDirectionSink, gst.PadPresenceRequest, gst.NewCapsFromString(AudioCaps)))
	specs := make([]*glib.ParamSpec, numProps)
	for i, p := range props {
		specs[i] = p.spec
	}
	klass.InstallProperties(specs)
	installSignals(klass)
}

// Constructed marks the bin a sink for good, also before any pad is
// requested (GstBin would otherwise derive the flag from its children).
func (s *standin) Constructed(obj *glib.Object) {
	s.self = gst.ToGstBin(obj)
	s.self.SetSuppressedFlags(gst.ElementFlagSink | gst.ElementFlagSource)
	gstshim.SetObjectFlag(s.self.Object, gst.ElementFlagSink)
}

// SetProperty stores a property; only NULL->READY reads them, like kvssink.
func (s *standin) SetProperty(obj *glib.Object, id uint, value *glib.Value) {
	if id >= uint(numProps) {
		return
	}
	var v any
	switch props[id].kind {
	case kindStructure:
		str, _ := structureValueString(value)
		v = str
	case kindString:
		str, _ := value.GetString()
		v = str
	default:
		gv, err := value.GoValue()
		if err != nil {
			cat.LogWarning(fmt.Sprintf("property %s: %v", props[id].spec.Name(), err))
			return
		}
		v = gv
	}
	s.mu.Lock()
	s.settings[id] = v
	s.mu.Unlock()
}

// GetProperty reads a property.
func (s *standin) GetProperty(obj *glib.Object, id uint) *glib.Value {
	if id >= uint(numProps) {
		return nil
	}
	s.mu.Lock()
	v := s.settings[id]
	s.mu.Unlock()
	switch props[id].kind {
	case kindStructure:
		str, _ := v.(string)
		if str == "" {
			val, err := glib.ValueInit(gst.TypeStructure)
			if err != nil {
				return nil
			}
			return val
		}
		st := gst.NewStructureFromString(str)
		if st == nil {
			return nil
		}
		val, err := st.ToGValue()
		if err != nil {
			return nil
		}
		return val
	case kindEnum:
		val, err := glib.ValueInit(streamingType)
		if err != nil {
			return nil
		}
		n, _ := v.(int)
		val.SetEnum(n)
		return val
	case kindString:
		str, ok := v.(string)
		if !ok || (str == "" && id == propReport) {
			return nil // NULL
		}
		val, err := glib.GValue(str)
		if err != nil {
			return nil
		}
		return val
	}
	val, err := glib.GValue(v)
	if err != nil {
		return nil
	}
	return val
}

// RequestNewPad creates video_0 or audio_0: at most one of each, and the
// requested name is ignored (kvssink warns "Custom pad name not supported").
func (s *standin) RequestNewPad(self *gst.Element, templ *gst.PadTemplate, name string, caps *gst.Caps) *gst.Pad {
	s.mu.Lock()
	defer s.mu.Unlock()
	var padName string
	switch templ.Name() {
	case "video_%u":
		if s.nVideo == 1 {
			cat.LogError("Can not have more than one video stream.")
			return nil
		}
		padName = fmt.Sprintf("video_%d", s.nVideo)
	case "audio_%u":
		if s.nAudio == 1 {
			cat.LogError("Can not have more than one audio stream.")
			return nil
		}
		padName = fmt.Sprintf("audio_%d", s.nAudio)
	default:
		cat.LogWarning("This is not our template!")
		return nil
	}
	if name != "" && name != templ.Name() && name != padName {
		cat.LogWarning("Custom pad name not supported")
	}
	rp, err := s.buildPad(padName, templ)
	if err != nil {
		cat.LogError(fmt.Sprintf("request pad %s: %v", padName, err))
		return nil
	}
	if templ.Name() == "video_%u" {
		s.nVideo++
	} else {
		s.nAudio++
	}
	s.pads[padName] = rp
	return rp.ghost.Pad
}

func (s *standin) buildPad(padName string, templ *gst.PadTemplate) (*requestPad, error) {
	filter, err := gst.NewElementWithName("capsfilter", padName+"_caps")
	if err != nil {
		return nil, fmt.Errorf("make capsfilter: %w", err)
	}
	if err := filter.SetProperty("caps", templ.Caps()); err != nil {
		return nil, fmt.Errorf("set template caps: %w", err)
	}
	sink, err := gst.NewElementWithName("fakesink", padName+"_sink")
	if err != nil {
		return nil, fmt.Errorf("make fakesink: %w", err)
	}
	for k, v := range map[string]any{"sync": false, "async": false, "enable-last-sample": false} {
		if err := sink.SetProperty(k, v); err != nil {
			return nil, fmt.Errorf("set fakesink %s: %w", k, err)
		}
	}
	if err := s.self.AddMany(filter, sink); err != nil {
		return nil, fmt.Errorf("add children: %w", err)
	}
	if err := filter.Link(sink); err != nil {
		return nil, fmt.Errorf("link capsfilter to fakesink: %w", err)
	}
	ghost := gst.NewGhostPadFromTemplate(padName, filter.GetStaticPad("sink"), templ)
	if ghost == nil {
		return nil, errors.New("cannot create ghost pad")
	}
	ghost.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeBufferList, s.bufferProbe(padName))
	ghost.AddProbe(gst.PadProbeTypeEventDownstream|gst.PadProbeTypeEventFlush, s.eventProbe(padName))
	if !s.self.AddPad(ghost.Pad) {
		return nil, errors.New("cannot add ghost pad")
	}
	filter.SyncStateWithParent()
	sink.SyncStateWithParent()
	return &requestPad{name: padName, ghost: ghost, filter: filter, sink: sink}, nil
}

// ReleasePad undoes RequestNewPad.
func (s *standin) ReleasePad(self *gst.Element, pad *gst.Pad) {
	s.mu.Lock()
	rp := s.pads[pad.GetName()]
	delete(s.pads, pad.GetName())
	if rp != nil {
		if trackKind(rp.name) == "audio" {
			s.nAudio--
		} else {
			s.nVideo--
		}
	}
	s.mu.Unlock()
	if rp == nil {
		return
	}
	_ = rp.sink.SetState(gst.StateNull)
	_ = rp.filter.SetState(gst.StateNull)
	gstshim.ClearGhostTarget(rp.ghost)
	self.RemovePad(pad)
	_ = s.self.Remove(rp.filter)
	_ = s.self.Remove(rp.sink)
}

// ChangeState reads everything at NULL->READY (and fails it like kvssink
// would), writes the report on the way down.
func (s *standin) ChangeState(el *gst.Element, transition gst.StateChange) gst.StateChangeReturn {
	if transition == gst.StateChangeNullToReady {
		run, reportPath, failure := s.start()
		if failure != "" {
			if reportPath != "" {
				data, _ := run.encode()
				if err := writeReportFile(reportPath, data); err != nil {
					cat.LogError(err.Error())
				}
			}
			// GST_ELEMENT_ERROR(kvssink, LIBRARY, INIT, (NULL), ("%s", err_msg)):
			// the default text plus the reason as debug string.
			s.post(gst.MessageError, gst.DomainLibrary, gst.LibraryErrorInit, failure)
			return gst.StateChangeFailure
		}
		run.writer = startReportWriter(run, reportPath)
		s.run.Store(run)
	}

	ret := el.ParentChangeState(transition)

	switch transition {
	case gst.StateChangePausedToReady:
		if run := s.run.Load(); run != nil {
			run.writer.flush()
		}
	case gst.StateChangeReadyToNull:
		if run := s.run.Swap(nil); run != nil {
			run.writer.stop()
		}
	}
	return ret
}

// start builds the run state from the property snapshot and the
// environment. failure is the debug text of the ERROR to post.
func (s *standin) start() (run *runState, reportPath, failure string) {
	s.mu.Lock()
	set := s.settings
	pads := make([]*requestPad, 0, len(s.pads))
	for _, p := range s.pads {
		pads = append(pads, p)
	}
	s.mu.Unlock()
	str := func(id int) string { v, _ := set[id].(string); return v }
	num := func(id int) uint64 {
		switch v := set[id].(type) {
		case uint:
			return uint64(v)
		case uint64:
			return v
		}
		return 0
	}
	flag := func(id int) bool { v, _ := set[id].(bool); return v }

	reportPath = str(propReport)
	if reportPath == "" {
		reportPath = os.Getenv(EnvReport)
	}
	report := newReport()
	run = &runState{now: time.Now, streamName: str(propStreamName), tracks: map[string]*trackRun{}, report: report, dirty: true}
	report.StreamName = run.streamName
	fail := func(prefix, format string, a ...any) (*runState, string, string) {
		text := prefix + fmt.Sprintf(format, a...)
		report.addError(text)
		return run, reportPath, text
	}
	const initFailed = "Failed to init kvs producer. Error: "

	// The stand-in's own knobs.
	var offset time.Duration
	if v := os.Getenv(EnvClockOffset); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fail("kvssink stand-in: ", "$%s=%q is not a Go duration: %v", EnvClockOffset, v, err)
		}
		offset = d
		run.now = func() time.Time { return time.Now().Add(offset) }
	}
	if v := os.Getenv(EnvTrace); v != "" {
		f, err := os.OpenFile(v, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fail("kvssink stand-in: ", "$%s: %v", EnvTrace, err)
		}
		run.trace = f // written under run.mu; closed with the process
	}
	ackEnv, err := parseAckMode(os.Getenv(EnvAcks))
	if err != nil {
		return fail("kvssink stand-in: ", "$%s: %v", EnvAcks, err)
	}
	run.ackEnv, run.acksOn = ackEnv, flag(propFragmentAcks)
	run.lapseMode = LapseError
	switch v := os.Getenv(EnvLapse); v {
	case "", LapseError:
	case LapseStall:
		run.lapseMode = LapseStall
	default:
		return fail("kvssink stand-in: ", "$%s=%q: want %q or %q", EnvLapse, v, LapseError, LapseStall)
	}
	var staticExpires time.Time
	if v := os.Getenv(EnvStaticExpires); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fail("kvssink stand-in: ", "$%s=%q is not RFC 3339: %v", EnvStaticExpires, v, err)
		}
		staticExpires = t
	}

	report.Region, report.RegionSource = str(propAWSRegion), "property"
	if v, ok := os.LookupEnv("AWS_DEFAULT_REGION"); ok {
		report.Region, report.RegionSource = v, "AWS_DEFAULT_REGION"
	}
	if report.Region == "" {
		report.addWarning("region is empty")
	}

	// kvssink reads each pad's allowed caps at NULL->READY (init_track_data).
	hasVideo := false
	for _, p := range pads {
		if trackKind(p.name) == "video" {
			hasVideo = true
		}
	}
	for _, p := range pads {
		if !p.ghost.IsLinked() {
			return fail(initFailed, "pad %s has no peer: kvssink reads the allowed caps of every requested pad at NULL->READY", p.name)
		}
		allowed := p.ghost.GetAllowedCaps()
		if allowed == nil || allowed.IsEmpty() || allowed.GetSize() == 0 {
			return fail(initFailed, "Error, media type of pad %s not accepted by kvssink (no allowed caps)", p.name)
		}
		report.MediaTypes[p.name] = allowed.GetStructureAt(0).Name()
		kind := trackKind(p.name)
		cfg := trackConfig{
			fragments:             kind == "video" || !hasVideo,
			noKeyframes:           kind == "audio" && hasVideo,
			keyFrameFragmentation: flag(propKeyFrameFragmentation) && kind == "video",
			fragmentDuration:      num(propFragmentDuration) * uint64(time.Millisecond),
			timecodeScale:         num(propTimecodeScale) * uint64(time.Millisecond),
			disableClipping:       flag(propDisableBufferClipping),
		}
		run.tracks[p.name] = &trackRun{kind: kind, checker: newTrackChecker(cfg)}
		report.FramesAccepted[p.name] = 0
	}
	checkers := make([]*trackChecker, 0, len(run.tracks))
	for _, tr := range run.tracks {
		checkers = append(checkers, tr.checker)
	}
	shareStream(checkers...)

	now := run.now()
	choice, err := resolveCredentials(credentialSettings{
		iotCertificate: str(propIoTCertificate) != "",
		accessKey:      str(propAccessKey),
		secretKey:      str(propSecretKey),
		sessionToken:   str(propSessionToken),
		credentialPath: str(propCredentialPath),
	}, os.LookupEnv, now, ReadCredentialFile, fileOpens)
	report.CredentialSource = choice.source
	report.SessionTokenFromEnv = choice.tokenFromEnv
	if choice.source == SourceFile {
		report.CredentialPath = str(propCredentialPath)
		report.addRead(choice.fileRead)
	}
	if err != nil {
		// Credentials kvssink accepts at producer init but that fail the
		// stream creation (describe/create/get-token) at NULL->READY.
		if errors.Is(err, errEmptyStaticKeys) || errors.Is(err, errPlaceholderSecret) ||
			StatusOf(err) == StatusInvalidTokenExpiration {
			return fail("Failed to create stream. Error: ", "%v", err)
		}
		return fail(initFailed, "%v", err)
	}
	provider := &credentialProvider{source: choice.source, path: str(propCredentialPath), read: ReadCredentialFile,
		staticKey: choice.accessKeyID, staticExpires: staticExpires}
	if choice.fileInitial != nil {
		provider.cur = *choice.fileInitial
		if choice.fileInitial.TokenTruncated {
			report.addWarning("session token in the credential file is longer than 2048 characters: kvssink truncates it and every signed request fails")
		}
	}
	run.creds = provider
	report.Started = true
	return run, reportPath, ""
}

func fileOpens(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// bufferProbe runs each buffer through kvssink's put_frame checks and drops
// what kvssink would drop.
func (s *standin) bufferProbe(padName string) gst.PadProbeCallback {
	return func(pad *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		run := s.run.Load()
		if run == nil {
			return gst.PadProbeDrop
		}
		put := func(buf *gst.Buffer) bool {
			ok, acts := run.putBuffer(padName, buf.GetFlags(), uint64(buf.PresentationTimestamp()), uint64(buf.DecodingTimestamp()))
			s.perform(acts)
			return ok
		}
		if info.Type()&gst.PadProbeTypeBuffer != 0 {
			if buf := info.GetBuffer(); buf != nil && !put(buf) {
				return gst.PadProbeDrop
			}
			return gst.PadProbeOK
		}
		if list := info.GetBufferList(); list != nil {
			list.ForEach(func(buf *gst.Buffer, _ uint) bool { put(buf); return true })
		}
		return gst.PadProbeOK
	}
}

// eventProbe records caps, segments and EOS. Flushes get no special
// handling, as in kvssink: the producer does not wait for a keyframe after
// one, and timestamp bases are reset only at NULL->READY.
func (s *standin) eventProbe(padName string) gst.PadProbeCallback {
	return func(pad *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		if info.Type()&(gst.PadProbeTypeEventDownstream|gst.PadProbeTypeEventFlush) == 0 {
			return gst.PadProbeOK
		}
		run := s.run.Load()
		ev := info.GetEvent()
		if run == nil || ev == nil {
			return gst.PadProbeOK
		}
		switch ev.Type() {
		case gst.EventTypeCaps:
			caps := ev.ParseCaps()
			if caps == nil || caps.GetSize() == 0 {
				return gst.PadProbeOK
			}
			st := caps.GetStructureAt(0)
			width, _ := intField(st, "width")
			height, _ := intField(st, "height")
			run.capsEvent(padName, caps.String(), width, height)
		case gst.EventTypeSegment:
			seg := ev.ParseSegment()
			run.segmentEvent(padName, segment{
				rate: seg.GetRate(), start: seg.GetStart(), stop: seg.GetStop(),
				base: seg.GetBase(), offset: seg.GetOffset(), duration: seg.GetDuration(),
			}, seg.GetFormat() == gst.FormatTime)
		case gst.EventTypeEOS:
			data, seq, acts := run.eosEvent(padName)
			s.perform(acts)
			if data != nil {
				run.writer.write(data, seq)
			}
		}
		return gst.PadProbeOK
	}
}

func intField(st *gst.Structure, name string) (int, bool) {
	v, err := st.GetValue(name)
	if err != nil {
		return 0, false
	}
	n, ok := v.(int)
	return n, ok
}

// perform posts messages and emits signals outside every lock.
func (s *standin) perform(acts []action) {
	for _, a := range acts {
		switch a.kind {
		case actWarning:
			s.post(gst.MessageWarning, gst.DomainResource, gst.ResourceErrorWrite, a.text)
		case actError:
			s.post(gst.MessageError, gst.DomainStream, gst.StreamErrorFailed, a.text)
		case actStreamError:
			emitUint64Signal(s.self.Object, "stream-error", uint64(a.status))
		case actFragment:
			run := s.run.Load()
			if run == nil || !run.acksOn {
				continue
			}
			mode := s.ackMode(run)
			s.perform(fragmentActions(mode, a.hasPrev, a.prevTC, a.prevSeq, !a.ending, a.timecode, a.seq))
		case actFragmentAck:
			emitFragmentAck(s.self.Object, a.ackType, a.timecode, a.seq, int32(a.status))
		}
	}
}

// ackMode is the acks property when set (read at every fragment, so a
// test can change it while the stand-in runs), else $KVSSINK_STANDIN_ACKS
// as read at NULL->READY. A bad property value means no acknowledgements.
func (s *standin) ackMode(run *runState) ackMode {
	s.mu.Lock()
	v, _ := s.settings[propAcks].(string)
	s.mu.Unlock()
	if v == "" {
		return run.ackEnv
	}
	m, err := parseAckMode(v)
	if err != nil {
		cat.LogWarning(err.Error())
		return ackMode{kind: AcksOff}
	}
	return m
}

// post is GST_ELEMENT_ERROR/WARNING with a NULL text (GStreamer fills in the
// default message for the code) and debug as the detail, like kvssink.
func (s *standin) post(t gst.MessageType, domain gst.Domain, code gst.ErrorCode, debug string) {
	_, file, line, _ := runtime.Caller(1)
	s.self.Element.MessageFull(t, domain, code, "", debug, path.Base(file), "kvssinkstandin", line)
}
