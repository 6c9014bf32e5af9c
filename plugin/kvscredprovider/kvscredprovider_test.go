package kvscredprovider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/plugin/kvscredprovider"
	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
)

func TestMain(m *testing.M) {
	harness.InitGStreamer(kvssinkstandin.Register)
	os.Exit(m.Run())
}

// encoded is a live H.264 chain kvssink accepts.
const encoded = "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=15/1 ! " +
	"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! h264parse ! video/x-h264,stream-format=avc,alignment=au"

// fakeIMDS starts the rotating fake IMDS with a clean AWS environment
// pointing at it.
func fakeIMDS(t *testing.T, opts imdsfake.Options) *imdsfake.Server {
	t.Helper()
	imdsfake.ClearAWSEnv(t)
	for _, k := range []string{kvssinkstandin.EnvReport, kvssinkstandin.EnvLapse, kvssinkstandin.EnvClockOffset, kvssinkstandin.EnvStaticExpires} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	srv := imdsfake.Start(t, opts)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL())
	return srv
}

func element(t *testing.T, p *harness.Pipeline, name string) *gst.Element {
	t.Helper()
	el, err := p.GetElementByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func stringProp(t *testing.T, el *gst.Element, name string) string {
	t.Helper()
	v, err := el.GetProperty(name)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	s, _ := v.(string)
	return s
}

// readFile decodes the credential file; ok is false when it is missing or
// does not parse.
func readFile(path string) (credfile.Credentials, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return credfile.Credentials{}, false
	}
	c, err := credfile.Decode(data)
	return c, err == nil
}

// assertIssued fails unless the file holds exactly credentials the fake issued.
func assertIssued(t *testing.T, srv *imdsfake.Server, path string) credfile.Credentials {
	t.Helper()
	c, ok := readFile(path)
	if !ok {
		t.Fatalf("%s does not hold a valid credential file", path)
	}
	is, found := srv.Lookup(c.AccessKeyID)
	if !found || is.SecretAccessKey != c.SecretAccessKey || is.Token != c.SessionToken || !is.Expiration.Equal(c.Expires) {
		t.Fatalf("%s holds %v, which the fake IMDS did not issue", path, c)
	}
	return c
}

func errorsFrom(p *harness.Pipeline, source string, typ gst.MessageType) []string {
	var out []string
	for _, m := range p.Messages() {
		if m.Type() != typ || (source != "" && m.Source() != source) {
			continue
		}
		if typ == gst.MessageError {
			out = append(out, m.ParseError().Error())
		} else {
			out = append(out, m.ParseWarning().Error())
		}
	}
	return out
}

// faultReason matches the refresh-failed reason each IMDS fault causes.
var faultReason = map[imdsfake.Fault]*regexp.Regexp{
	imdsfake.FaultConnRefused: regexp.MustCompile(`connection reset|connection refused|EOF`),
	imdsfake.FaultServerError: regexp.MustCompile(`StatusCode: 500`),
	imdsfake.FaultMalformed:   regexp.MustCompile(`malformed IMDS answer`),
	imdsfake.FaultThrottle:    regexp.MustCompile(`StatusCode: 429`),
	imdsfake.FaultHang:        regexp.MustCompile(`deadline exceeded|[Tt]imeout`),
}

// refreshFailures returns the refresh-failed element messages so far.
func refreshFailures(p *harness.Pipeline) []*gst.Message {
	var out []*gst.Message
	for _, m := range p.Messages() {
		if harness.ElementMessage(kvscredprovider.MessageRefreshFailed)(m) {
			out = append(out, m)
		}
	}
	return out
}

// waitForFailures waits until the n-th refresh failure matching match has
// been posted; at the deadline it fails with the reasons posted since the
// before-th failure.
func waitForFailures(t *testing.T, p *harness.Pipeline, before, n int, fault imdsfake.Fault, match func(*gst.Message) bool) *gst.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		seen := 0
		for _, m := range refreshFailures(p) {
			if match(m) {
				if seen++; seen == n {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			var reasons []string
			if all := refreshFailures(p); len(all) > before {
				for _, m := range all[before:] {
					reasons = append(reasons, reason(m))
				}
			}
			t.Fatalf("waiting for refresh failures caused by %v: %d of %d after 30s; reasons since the switch: %q", fault, seen, n, reasons)
		}
		<-tick.C
	}
}

// reason is a refresh-failed message's reason field.
func reason(m *gst.Message) string {
	v, _ := m.GetStructure().GetValue("reason")
	s, _ := v.(string)
	return s
}

func fromCP(typ gst.MessageType) func(*gst.Message) bool {
	return func(m *gst.Message) bool { return m.Type() == typ && m.Source() == "cp" }
}

// Wherever kvscredprovider sits in the line, the kvssink's credential-path
// points at a file with credentials issued by IMDS before the pipeline is
// started, and kvssink starts from that file and streams.
func TestKvssinkHasCredentialsBeforeItStarts(t *testing.T) {
	for _, order := range []string{"provider first", "provider last"} {
		t.Run(order, func(t *testing.T) {
			srv := fakeIMDS(t, imdsfake.Options{})
			dir := t.TempDir()
			path := filepath.Join(dir, "creds", "credential")
			report := filepath.Join(dir, "report.json")
			provider := "kvscredprovider name=cp credential-path=" + path
			sink := encoded + " ! kvssink name=sink stream-name=t report=" + report
			desc := provider + " " + sink
			if order == "provider last" {
				desc = sink + " " + provider
			}
			p := harness.NewPipeline(t, desc)

			// Before any state change: file written, kvssink pointed at it.
			written := assertIssued(t, srv, path)
			if got := stringProp(t, element(t, p, "sink"), "credential-path"); got != path {
				t.Fatalf("kvssink credential-path = %q, want %q", got, path)
			}
			cp := element(t, p, "cp")
			if st := stringProp(t, cp, "status"); st != "valid" {
				t.Fatalf("status = %q before start, want valid", st)
			}
			if exp := stringProp(t, cp, "expiration"); exp != written.Expires.UTC().Format(time.RFC3339) {
				t.Fatalf("expiration = %q, want %s", exp, written.Expires.UTC().Format(time.RFC3339))
			}
			p.WaitFor(20*time.Second, 1, "kvscredprovider-refreshed", harness.ElementMessage(kvscredprovider.MessageRefreshed))

			p.Start()
			harness.WaitUntil(t, 30*time.Second, "kvssink to accept frames", func() bool {
				r, err := kvssinkstandin.ReadReport(report)
				return err == nil && r.TotalAccepted() > 10
			})
			r, _ := kvssinkstandin.ReadReport(report)
			if r.CredentialSource != kvssinkstandin.SourceFile || len(r.CredentialReads) == 0 || !r.CredentialReads[0].OK {
				t.Fatalf("kvssink did not start from the file: source %q, reads %+v", r.CredentialSource, r.CredentialReads)
			}
			if errs := errorsFrom(p, "", gst.MessageError); len(errs) > 0 {
				t.Fatalf("ERRORs on the bus: %v", errs)
			}
		})
	}
}

// Without credential-path the file goes to $XDG_RUNTIME_DIR/kvsrelay under
// a name unique to the process and element, and leaving the bin removes it.
func TestDefaultPathAndRemoval(t *testing.T) {
	srv := fakeIMDS(t, imdsfake.Options{})
	runtimeDir := t.TempDir()
	t.Setenv("RUNTIME_DIRECTORY", "")
	os.Unsetenv("RUNTIME_DIRECTORY")
	t.Setenv("XDG_RUNTIME_DIR", runtimeDir)
	p := harness.NewPipeline(t, "kvscredprovider name=cp "+encoded+" ! kvssink name=sink")
	want := filepath.Join(runtimeDir, "kvsrelay", fmt.Sprintf("credential-%d-cp", os.Getpid()))
	cp := element(t, p, "cp")
	if got := stringProp(t, element(t, p, "sink"), "credential-path"); got != want {
		t.Fatalf("kvssink credential-path = %q, want %q", got, want)
	}
	if got := stringProp(t, cp, "credential-path"); got != want {
		t.Fatalf("kvscredprovider credential-path reads %q, want the chosen file %q", got, want)
	}
	assertIssued(t, srv, want)
	st, err := os.Stat(want)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credential file mode: %v %v", st, err)
	}

	if err := p.Remove(cp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(want); !os.IsNotExist(err) {
		t.Fatalf("credential file still there after the element left the pipeline: %v", err)
	}
	if s := stringProp(t, cp, "status"); s != "stopped" {
		t.Fatalf("status after removal = %q, want stopped", s)
	}
}

// IMDS failing in every way while the credentials are still valid: the file
// keeps them, refresh-failed messages and one WARNING, no ERROR. Once they
// expire: one ERROR. When IMDS heals: new credentials, valid again. Nothing
// empty or expired is ever written.
func TestOutagesKeepFileUntilExpiry(t *testing.T) {
	clock := &jumpClock{}
	srv := fakeIMDS(t, imdsfake.Options{Lifetime: time.Hour, Now: clock.Now})
	path := filepath.Join(harness.PrivateDir(t), "credential")
	p := harness.NewPipeline(t, encoded+" ! kvssink name=sink")
	cp := addFastProvider(t, p, clock, path)
	first := assertIssued(t, srv, path)

	// Past the refresh point (expiry - 15 min) with IMDS broken. Broken
	// first: an IMDS that answers with the same credentials is asked again
	// only when it must have rotated (5 min before expiry).
	srv.SetFault(imdsfake.FaultConnRefused)
	clock.waitWaiting(t)
	clock.Advance(46 * time.Minute)
	for _, fault := range []imdsfake.Fault{imdsfake.FaultConnRefused, imdsfake.FaultServerError, imdsfake.FaultMalformed,
		imdsfake.FaultThrottle, imdsfake.FaultHang} {
		// Counted from the switch: each fault must itself cause failures,
		// told apart by their reason. One attempt still in flight at the
		// switch may report the previous fault, before the new ones.
		before := len(refreshFailures(p))
		srv.SetFault(fault)
		want := faultReason[fault]
		matches := func(m *gst.Message) bool {
			return harness.ElementMessage(kvscredprovider.MessageRefreshFailed)(m) && want.MatchString(reason(m))
		}
		n := 0
		for _, m := range refreshFailures(p)[:before] {
			if matches(m) {
				n++
			}
		}
		m := waitForFailures(t, p, before, n+2, fault, matches)
		sinceSwitch := refreshFailures(p)[before:]
		for i, f := range sinceSwitch {
			if matches(f) {
				break
			}
			if i > 0 {
				t.Fatalf("%v: %d failures with another reason after the switch (want at most the one in flight): %q",
					fault, i+1, reason(f))
			}
		}
		st := m.GetStructure()
		left, _ := st.GetValue("time-left")
		if l, _ := left.(uint64); time.Duration(l) <= 0 || time.Duration(l) > 15*time.Minute {
			t.Errorf("%v: time-left %v, want the 14 min or so the file still has", fault, time.Duration(l))
		}
		c, ok := readFile(path)
		if !ok || !c.SameAs(first) {
			t.Fatalf("%v: file changed or broke during the outage: %v (ok %v)", fault, c, ok)
		}
		if s := stringProp(t, cp, "status"); s != "degraded" {
			t.Errorf("%v: status %q, want degraded", fault, s)
		}
	}
	if errs := errorsFrom(p, "cp", gst.MessageError); len(errs) > 0 {
		t.Fatalf("ERROR while the credentials were still valid: %v", errs)
	}
	if warns := errorsFrom(p, "cp", gst.MessageWarning); len(warns) != 1 || !strings.Contains(warns[0], "Refreshing AWS credentials failed") {
		t.Fatalf("want one WARNING for the outage, got %d: %v", len(warns), warns)
	}

	// Past expiry, IMDS still broken: one ERROR, the old file untouched.
	srv.SetFault(imdsfake.FaultServerError)
	clock.Advance(15 * time.Minute)
	p.WaitFor(20*time.Second, 1, "the expiry ERROR", fromCP(gst.MessageError))
	if errs := errorsFrom(p, "cp", gst.MessageError); !strings.Contains(errs[0], "expired") {
		t.Fatalf("expiry ERROR says %q", errs[0])
	}
	if s := stringProp(t, cp, "status"); s != "expired" {
		t.Errorf("status %q after expiry, want expired", s)
	}
	if c, ok := readFile(path); !ok || !c.SameAs(first) {
		t.Fatalf("file after expiry: %v (ok %v), want the old credentials left alone", c, ok)
	}

	// IMDS heals: new credentials, written and announced.
	srv.SetFault(imdsfake.FaultNone)
	refreshed := harness.ElementMessage(kvscredprovider.MessageRefreshed)
	p.WaitFor(20*time.Second, 2, "credentials after IMDS healed", refreshed)
	second := assertIssued(t, srv, path)
	if second.SameAs(first) || !second.Expires.After(clock.Now().Add(credfile.MinRemaining)) {
		t.Fatalf("after healing the file holds %v", second)
	}
	harness.WaitUntil(t, 20*time.Second, "status valid", func() bool { return stringProp(t, cp, "status") == "valid" })
	if n := len(errorsFrom(p, "cp", gst.MessageError)); n != 1 {
		t.Fatalf("%d ERRORs, want exactly the one for the expiry", n)
	}
}

// A refresh-before below the minimum is refused with an error naming the
// property, at once and again at the state change.
func TestRefreshBeforeTooShort(t *testing.T) {
	fakeIMDS(t, imdsfake.Options{})
	path := filepath.Join(t.TempDir(), "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp refresh-before=60000000000 credential-path="+path+" fakesrc ! fakesink")
	if err := p.SetState(gst.StateReady); err == nil {
		t.Fatal("the pipeline reached READY with refresh-before=60s")
	}
	p.WaitFor(20*time.Second, 1, "kvscredprovider's ERROR", fromCP(gst.MessageError))
	errs := errorsFrom(p, "cp", gst.MessageError)
	if len(errs) == 0 || !strings.Contains(errs[0], "refresh-before") {
		t.Fatalf("errors %v, want one naming refresh-before", errs)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a credential file was written with bad settings: %v", err)
	}
}

// A role that cannot be an IAM role name is refused at the state change
// with an ERROR naming the property, before anything is fetched or written.
func TestBadRoleNamesTheProperty(t *testing.T) {
	fakeIMDS(t, imdsfake.Options{})
	path := filepath.Join(t.TempDir(), "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp role=a/b credential-path="+path+" fakesrc ! fakesink")
	if err := p.SetState(gst.StateReady); err == nil {
		t.Fatal("the pipeline reached READY with role=a/b")
	}
	p.WaitFor(20*time.Second, 1, "kvscredprovider's ERROR", fromCP(gst.MessageError))
	errs := errorsFrom(p, "cp", gst.MessageError)
	if len(errs) == 0 || !strings.Contains(errs[0], "property 'role'") {
		t.Fatalf("errors %v, want one naming property 'role'", errs)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a credential file was written with bad settings: %v", err)
	}
}

// A credential folder that cannot be written fails the start with an ERROR
// naming the folder, posted before anything else can fail.
func TestUnwritableFolder(t *testing.T) {
	fakeIMDS(t, imdsfake.Options{})
	notAFolder := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notAFolder, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+filepath.Join(notAFolder, "credential")+
		" "+encoded+" ! kvssink name=sink")
	if err := p.SetState(gst.StatePlaying); err == nil {
		t.Fatal("the pipeline started without a writable credential folder")
	}
	p.WaitFor(20*time.Second, 1, "kvscredprovider's ERROR", fromCP(gst.MessageError))
	msgs := p.Messages()
	var first *gst.Message
	for _, m := range msgs {
		if m.Type() == gst.MessageError {
			first = m
			break
		}
	}
	if first == nil || first.Source() != "cp" || !strings.Contains(first.ParseError().Error(), notAFolder) {
		t.Fatalf("first ERROR %q, want kvscredprovider's naming %s", harness.ErrorText(first), notAFolder)
	}
}

// Static keys on kvssink or in the environment silently win over the file:
// each gets a WARNING naming it.
func TestWarnsAboutCredentialsThatWinOverTheFile(t *testing.T) {
	fakeIMDS(t, imdsfake.Options{})
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY99")
	path := filepath.Join(harness.PrivateDir(t), "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+path+" "+encoded+
		" ! kvssink name=sink access-key=AKIASTATICKEY0000001 session-token=SECRETTOKENVALUE")
	p.WaitFor(20*time.Second, 3, "three WARNINGs", fromCP(gst.MessageWarning))
	warns := strings.Join(errorsFrom(p, "cp", gst.MessageWarning), "\n")
	for _, want := range []string{"access-key", "session-token", "AWS_ACCESS_KEY_ID"} {
		if !strings.Contains(warns, want) {
			t.Errorf("no WARNING mentions %s; warnings:\n%s", want, warns)
		}
	}
	if strings.Contains(warns, "secret-key") {
		t.Errorf("warned about secret-key, which was not set:\n%s", warns)
	}
	for _, secret := range []string{"AKIASTATICKEY0000001", "SECRETTOKENVALUE", "AKIAENVIRONMENTKEY99"} {
		if strings.Contains(warns, secret) {
			t.Fatalf("a warning shows the value %s", secret)
		}
	}
}

// Stopping the pipeline removes the file; starting it again brings kvssink
// up only after credentials were written again (those kept in memory, still
// valid for hours here), so it starts from the file.
func TestRestartedPipelineGetsFreshCredentials(t *testing.T) {
	srv := fakeIMDS(t, imdsfake.Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "credential")
	report := filepath.Join(dir, "report.json")
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+path+" "+encoded+" ! kvssink name=sink report="+report)
	cp := element(t, p, "cp")
	for run := 1; run <= 2; run++ {
		p.Start()
		harness.WaitUntil(t, 30*time.Second, fmt.Sprintf("run %d: kvssink to accept frames", run), func() bool {
			r, err := kvssinkstandin.ReadReport(report)
			return err == nil && r.Started && r.TotalAccepted() > 5
		})
		r, _ := kvssinkstandin.ReadReport(report)
		if r.CredentialSource != kvssinkstandin.SourceFile || !r.CredentialReads[0].OK {
			t.Fatalf("run %d: kvssink started with %q, reads %+v", run, r.CredentialSource, r.CredentialReads)
		}
		assertIssued(t, srv, path)
		if err := p.SetState(gst.StateNull); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("run %d: credential file still there in NULL: %v", run, err)
		}
		if s := stringProp(t, cp, "status"); s != "stopped" {
			t.Fatalf("run %d: status %q in NULL, want stopped", run, s)
		}
		if err := os.Remove(report); err != nil {
			t.Fatal(err)
		}
	}
	if errs := errorsFrom(p, "", gst.MessageError); len(errs) > 0 {
		t.Fatalf("ERRORs: %v", errs)
	}
}

// syncBus posts a marker on the pipeline's bus and waits until it has been
// collected: every message posted before it has been collected too.
func syncBus(t *testing.T, p *harness.Pipeline, name string) {
	t.Helper()
	st := gst.NewStructure(name)
	if !p.GetPipelineBus().Post(gst.NewApplicationMessage(p, st)) {
		t.Fatal("posting the marker failed")
	}
	p.WaitFor(10*time.Second, 1, "the bus marker "+name, func(m *gst.Message) bool {
		s := m.GetStructure()
		return m.Type() == gst.MessageApplication && s != nil && s.Name() == name
	})
}

// kvssink's own defaults for its static credential properties are
// placeholders ("access_key", "secret_key", "session_token" in the real
// element), not static credentials: a plain kvssink, or one with the
// placeholders written out, gets no WARNING.
func TestPlaceholdersAreNotStaticCredentials(t *testing.T) {
	for name, props := range map[string]string{
		"plain":        "",
		"placeholders": " access-key=access_key secret-key=secret_key session-token=session_token",
	} {
		t.Run(name, func(t *testing.T) {
			fakeIMDS(t, imdsfake.Options{})
			dir := harness.PrivateDir(t)
			report := filepath.Join(dir, "report.json")
			p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+filepath.Join(dir, "credential")+" "+
				encoded+" ! kvssink name=sink stream-name=t report="+report+props)
			p.Start()
			harness.WaitUntil(t, 30*time.Second, "kvssink to accept frames", func() bool {
				r, err := kvssinkstandin.ReadReport(report)
				return err == nil && r.TotalAccepted() > 5
			})
			syncBus(t, p, "placeholders-checked")
			if warns := errorsFrom(p, "cp", gst.MessageWarning); len(warns) != 0 {
				t.Fatalf("WARNINGs for kvssink's placeholders: %v", warns)
			}
			if r, _ := kvssinkstandin.ReadReport(report); r.CredentialSource != kvssinkstandin.SourceFile {
				t.Fatalf("kvssink used credentials from %q", r.CredentialSource)
			}
		})
	}
}

// kvscredprovider inside a bin of its own ("( kvscredprovider )" in a
// gst-launch line), one or two levels deep, still supplies the kvssink
// outside it before the pipeline starts.
func TestProviderInsideABin(t *testing.T) {
	for name, wrap := range map[string][2]string{"one bin": {"( ", " )"}, "nested bins": {"( ( ", " ) )"}} {
		t.Run(name, func(t *testing.T) {
			srv := fakeIMDS(t, imdsfake.Options{})
			dir := harness.PrivateDir(t)
			path := filepath.Join(dir, "credential")
			report := filepath.Join(dir, "report.json")
			p := harness.NewPipeline(t, encoded+" ! kvssink name=sink stream-name=t report="+report+" "+
				wrap[0]+"kvscredprovider name=cp credential-path="+path+wrap[1])
			assertIssued(t, srv, path)
			if got := stringProp(t, element(t, p, "sink"), "credential-path"); got != path {
				t.Fatalf("before the start, kvssink credential-path = %q, want %q", got, path)
			}
			p.Start()
			harness.WaitUntil(t, 30*time.Second, "kvssink to accept frames", func() bool {
				r, err := kvssinkstandin.ReadReport(report)
				return err == nil && r.TotalAccepted() > 5
			})
			r, _ := kvssinkstandin.ReadReport(report)
			if r.CredentialSource != kvssinkstandin.SourceFile || r.CredentialPath != path || !r.CredentialReads[0].OK {
				t.Fatalf("kvssink started from %q (%s), reads %+v", r.CredentialSource, r.CredentialPath, r.CredentialReads)
			}
			if errs := errorsFrom(p, "", gst.MessageError); len(errs) > 0 {
				t.Fatalf("ERRORs: %v", errs)
			}
		})
	}
}

// A kvssink added to the pipeline after it was built (by an application)
// is pointed at the file as it is added, before anything starts it.
func TestKvssinkAddedAfterThePipelineWasBuilt(t *testing.T) {
	srv := fakeIMDS(t, imdsfake.Options{})
	dir := harness.PrivateDir(t)
	path := filepath.Join(dir, "credential")
	report := filepath.Join(dir, "report.json")
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+path+" "+
		strings.TrimSuffix(encoded, "video/x-h264,stream-format=avc,alignment=au")+
		"capsfilter name=out caps=video/x-h264,stream-format=avc,alignment=au")
	assertIssued(t, srv, path)
	sink, err := gst.NewElementWithName("kvssink", "late-sink")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"stream-name": "t", "report": report} {
		if err := sink.SetProperty(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Add(sink); err != nil {
		t.Fatal(err)
	}
	if got := stringProp(t, sink, "credential-path"); got != path {
		t.Fatalf("kvssink added later has credential-path %q, want %q", got, path)
	}
	if err := element(t, p, "out").Link(sink); err != nil {
		t.Fatal(err)
	}
	p.Start()
	harness.WaitUntil(t, 30*time.Second, "kvssink to accept frames", func() bool {
		r, err := kvssinkstandin.ReadReport(report)
		return err == nil && r.TotalAccepted() > 5
	})
	if r, _ := kvssinkstandin.ReadReport(report); r.CredentialSource != kvssinkstandin.SourceFile || r.CredentialPath != path {
		t.Fatalf("kvssink started from %q (%s)", r.CredentialSource, r.CredentialPath)
	}
}

// A kvssink that is already running when kvscredprovider joins cannot be
// supplied any more (it read credential-path at its start): an ERROR names
// it and what to do.
func TestKvssinkStartedBeforeTheProviderIsAnError(t *testing.T) {
	fakeIMDS(t, imdsfake.Options{})
	dir := harness.PrivateDir(t)
	own := filepath.Join(dir, "own-credential")
	now := time.Now()
	if err := credfile.Write(own, credfile.Credentials{AccessKeyID: "ASIAOWNFILEKEY000001", SecretAccessKey: "own-secret",
		SessionToken: "own-token", Expires: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	p := harness.NewPipeline(t, encoded+" ! kvssink name=sink stream-name=t credential-path="+own+" report="+report)
	p.Start()
	harness.WaitUntil(t, 30*time.Second, "kvssink to accept frames", func() bool {
		r, err := kvssinkstandin.ReadReport(report)
		return err == nil && r.TotalAccepted() > 0
	})
	cp, err := gst.NewElementWithName(kvscredprovider.FactoryName, "cp")
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.SetProperty("credential-path", filepath.Join(dir, "credential")); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(cp); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(20*time.Second, 1, "kvscredprovider's ERROR", fromCP(gst.MessageError))
	errs := errorsFrom(p, "cp", gst.MessageError)
	if len(errs) != 1 || !strings.Contains(errs[0], "sink was already started") || !strings.Contains(errs[0], "credential-path") {
		t.Fatalf("ERRORs %v, want one naming sink as started before kvscredprovider", errs)
	}
}

// Static stability across a restart: the pipeline goes to NULL (the file
// is removed) and starts again while IMDS is down. The credentials kept in
// memory are still good for most of an hour, so they are written again and
// kvssink starts; the failing background refresh is announced with one
// WARNING, not an ERROR.
func TestRestartDuringOutageStartsOnKeptCredentials(t *testing.T) {
	srv := fakeIMDS(t, imdsfake.Options{Lifetime: time.Hour})
	dir := harness.PrivateDir(t)
	path := filepath.Join(dir, "credential")
	report := filepath.Join(dir, "report.json")
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+path+" "+encoded+" ! kvssink name=sink report="+report)
	first := assertIssued(t, srv, path)
	p.Start()
	harness.WaitUntil(t, 30*time.Second, "kvssink to accept frames", func() bool {
		r, err := kvssinkstandin.ReadReport(report)
		return err == nil && r.TotalAccepted() > 5
	})
	if err := p.SetState(gst.StateNull); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("credential file still there in NULL: %v", err)
	}
	if err := os.Remove(report); err != nil {
		t.Fatal(err)
	}

	srv.SetFault(imdsfake.FaultServerError)
	p.Start()
	harness.WaitUntil(t, 30*time.Second, "kvssink to accept frames after the restart", func() bool {
		r, err := kvssinkstandin.ReadReport(report)
		return err == nil && r.Started && r.TotalAccepted() > 5
	})
	r, _ := kvssinkstandin.ReadReport(report)
	if r.CredentialSource != kvssinkstandin.SourceFile || !r.CredentialReads[0].OK {
		t.Fatalf("after the restart kvssink started with %q, reads %+v", r.CredentialSource, r.CredentialReads)
	}
	if c, ok := readFile(path); !ok || !c.SameAs(first) {
		t.Fatalf("after the restart the file holds %v (ok %v), want the kept credentials", c, ok)
	}
	m := p.WaitFor(20*time.Second, 1, "the failed background refresh", harness.ElementMessage(kvscredprovider.MessageRefreshFailed))
	if !faultReason[imdsfake.FaultServerError].MatchString(reason(m)) {
		t.Fatalf("refresh failed because %q, want the 500", reason(m))
	}
	p.WaitFor(20*time.Second, 1, "the outage WARNING", fromCP(gst.MessageWarning))
	reused := func(m *gst.Message) bool {
		if !harness.ElementMessage(kvscredprovider.MessageRefreshed)(m) {
			return false
		}
		v, _ := m.GetStructure().GetValue("reused")
		b, _ := v.(bool)
		return b
	}
	p.WaitFor(10*time.Second, 1, "a refreshed message marked reused", reused)
	if errs := errorsFrom(p, "", gst.MessageError); len(errs) > 0 {
		t.Fatalf("ERRORs: %v", errs)
	}
	if s := stringProp(t, element(t, p, "cp"), "status"); s != "degraded" {
		t.Fatalf("status %q, want degraded", s)
	}
}

// A real outage that follows answers repeating the current credentials
// (IMDS rotating late) still gets its WARNING: those answers are not
// failures, so the first real failure is attempt 1.
func TestOutageAfterLateRotationIsAnnounced(t *testing.T) {
	clock := &jumpClock{}
	// IMDS keeps serving the same credentials until 1 min before expiry.
	srv := fakeIMDS(t, imdsfake.Options{Lifetime: time.Hour, RotateBefore: time.Minute, Now: clock.Now})
	p := harness.NewPipeline(t, encoded+" ! kvssink name=sink")
	addFastProvider(t, p, clock, filepath.Join(harness.PrivateDir(t), "credential"))
	role := imdsfake.PathRole("kvsrelay-test-role")
	asked := func(n int) {
		t.Helper()
		harness.WaitUntil(t, 20*time.Second, fmt.Sprintf("%d credential requests", n), func() bool { return srv.Requests(role) >= n })
	}
	asked(1)
	clock.waitWaiting(t)
	clock.Advance(46 * time.Minute) // refresh point: unchanged
	asked(2)
	clock.waitWaiting(t)
	clock.Advance(10 * time.Minute) // past the publish point: unchanged, retried with backoff
	asked(4)
	srv.SetFault(imdsfake.FaultServerError)
	m := p.WaitFor(20*time.Second, 1, "the first refresh failure", harness.ElementMessage(kvscredprovider.MessageRefreshFailed))
	if v, _ := m.GetStructure().GetValue("attempt"); v != 1 {
		t.Fatalf("first refresh failure has attempt %v, want 1", v)
	}
	w := p.WaitFor(20*time.Second, 1, "the outage WARNING", fromCP(gst.MessageWarning))
	if !strings.Contains(w.ParseWarning().Error(), "Refreshing AWS credentials failed") {
		t.Fatalf("WARNING %q", w.ParseWarning().Error())
	}
}

// The credential folder: one others can write to fails the start with an
// ERROR naming it and its mode; one they can only list gets a WARNING.
func TestCredentialFolderModes(t *testing.T) {
	for _, tt := range []struct {
		mode os.FileMode
		typ  gst.MessageType
	}{{0o775, gst.MessageError}, {0o755, gst.MessageWarning}} {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			fakeIMDS(t, imdsfake.Options{})
			dir := harness.PrivateDir(t)
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+filepath.Join(dir, "credential")+" "+encoded+" ! kvssink name=sink")
			if tt.typ == gst.MessageError {
				if err := p.SetState(gst.StatePlaying); err == nil {
					t.Fatal("the pipeline started with a credential folder others can write to")
				}
			}
			p.WaitFor(20*time.Second, 1, "kvscredprovider's message about the folder", fromCP(tt.typ))
			msgs := errorsFrom(p, "cp", tt.typ)
			want := fmt.Sprintf("credential folder %s has mode %04o", dir, tt.mode)
			if !strings.Contains(strings.Join(msgs, "\n"), want) {
				t.Fatalf("messages %v, want one containing %q", msgs, want)
			}
		})
	}
}

// addFastProvider adds a kvscredprovider named cp writing path to p, on
// clock and retrying after 100 ms, doubling to 500 ms. It is made and set
// up before it joins p: joining starts its first refresh.
func addFastProvider(t *testing.T, p *harness.Pipeline, clock *jumpClock, path string) *gst.Element {
	t.Helper()
	cp, err := gst.NewElementWithName(kvscredprovider.FactoryName, "cp")
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.SetProperty("credential-path", path); err != nil {
		t.Fatal(err)
	}
	kvscredprovider.SetKeeperOptions(cp, credrefresh.Options{
		Clock:        clock,
		RetryInitial: 100 * time.Millisecond,
		RetryMax:     500 * time.Millisecond,
	})
	if err := p.Add(cp); err != nil {
		t.Fatal(err)
	}
	return cp
}

// A kvssink inside a bin that joins the pipeline later (an application
// adding a whole upload branch at once) is found inside that bin.
func TestKvssinkInsideABinAddedLater(t *testing.T) {
	srv := fakeIMDS(t, imdsfake.Options{})
	dir := harness.PrivateDir(t)
	path := filepath.Join(dir, "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+path+" fakesrc num-buffers=1 ! fakesink")
	assertIssued(t, srv, path)
	branch := gst.NewBin("upload-branch")
	inner := gst.NewBin("inner")
	sink, err := gst.NewElementWithName("kvssink", "nested-sink")
	if err != nil {
		t.Fatal(err)
	}
	if err := inner.Add(sink); err != nil {
		t.Fatal(err)
	}
	if err := branch.Add(inner.Element); err != nil {
		t.Fatal(err)
	}
	if got := stringProp(t, sink, "credential-path"); got == path {
		t.Fatalf("kvssink has credential-path %q before its bin joined the pipeline", got)
	}
	if err := p.Add(branch.Element); err != nil {
		t.Fatal(err)
	}
	if got := stringProp(t, sink, "credential-path"); got != path {
		t.Fatalf("kvssink inside a bin added later has credential-path %q, want %q", got, path)
	}
}
