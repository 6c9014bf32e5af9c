package kvscredprovider_test

import (
	"fmt"
	"os"
	"path/filepath"
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
	restore := kvscredprovider.SetKeeperOptionsForTest(func(o *credrefresh.Options) {
		o.Clock = clock
		o.RetryInitial = 100 * time.Millisecond
		o.RetryMax = 500 * time.Millisecond
	})
	defer restore()
	srv := fakeIMDS(t, imdsfake.Options{Lifetime: time.Hour, Now: clock.Now})
	path := filepath.Join(t.TempDir(), "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+path+" "+encoded+" ! kvssink name=sink")
	cp := element(t, p, "cp")
	first := assertIssued(t, srv, path)

	failures := harness.ElementMessage(kvscredprovider.MessageRefreshFailed)
	// Past the refresh point (expiry - 15 min) with IMDS broken. Broken
	// first: an IMDS that answers with the same credentials is asked again
	// only when it must have rotated (5 min before expiry).
	srv.SetFault(imdsfake.FaultConnRefused)
	clock.Advance(46 * time.Minute)
	seen := 0
	for _, fault := range []imdsfake.Fault{imdsfake.FaultConnRefused, imdsfake.FaultServerError, imdsfake.FaultMalformed,
		imdsfake.FaultThrottle, imdsfake.FaultHang} {
		srv.SetFault(fault)
		seen += 2
		m := p.WaitFor(20*time.Second, seen, fmt.Sprintf("refresh failures with %v", fault), failures)
		st := m.GetStructure()
		reason, _ := st.GetValue("reason")
		left, _ := st.GetValue("time-left")
		if r, _ := reason.(string); r == "" {
			t.Errorf("%v: refresh-failed without a reason", fault)
		}
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
	if warns := errorsFrom(p, "cp", gst.MessageWarning); len(warns) != 1 {
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
	path := filepath.Join(t.TempDir(), "credential")
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
// up only after fresh credentials were written, so it starts from the file.
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
