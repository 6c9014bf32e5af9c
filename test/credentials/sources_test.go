package credentials

// The AWS SDK's default chain (source=default) against local fakes of each
// source other than IMDS (test/credfakes): ECS task role, Greengrass token
// exchange, EKS Pod Identity, IRSA and credential_process. For each, the
// credential file carries exactly what the source issued, is refreshed
// before it expires, and survives the source's failures as it survives an
// IMDS outage: the last valid file stays, and new credentials follow as
// soon as the source heals.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/internal/credsource"
	"github.com/kvsrelay/kvsrelay/test/credfakes"
	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
)

// Rotation pace of these tests: 3-minute credentials that the fakes rotate
// once under 2m59s are left, refreshed 2m58s before expiry, i.e. one to two
// seconds after each write.
var chainIssuer = credfakes.IssuerOptions{Lifetime: 3 * time.Minute, RotateBefore: 2*time.Minute + 59*time.Second}

const chainRefreshBefore = 2*time.Minute + 58*time.Second

// issuerOf is what every fake offers to check a credential against.
type issuerOf interface {
	Lookup(accessKeyID string) (credfakes.Issued, bool)
	Issued() []credfakes.Issued
}

// outage is one failure of a source: begin breaks it, end heals it, and
// want says whether a refresh error is the one this failure should cause.
type outage struct {
	name       string
	begin, end func()
	want       func(error) bool
}

// chainSource is a started fake with the environment that selects it.
type chainSource struct {
	issuer  issuerOf
	env     []string // the variables set, for child processes
	outages []outage
}

func faultOutage(name string, set func(credfakes.Fault), f credfakes.Fault, want func(error) bool) outage {
	return outage{name: name, begin: func() { set(f) }, end: func() { set(credfakes.FaultNone) }, want: want}
}

func transient(err error) bool { return credsource.IsTransient(err) }
func permanent(err error) bool { return err != nil && !credsource.IsTransient(err) }
func refused(err error) bool   { return errors.Is(err, credfile.ErrRefused) }
func malformed(err error) bool {
	return errors.Is(err, credsource.ErrMalformedChain) && credsource.IsTransient(err)
}

const chainContainerToken = "kvsrelay-task-token-5f0c2b9e"

var chainSources = []struct {
	name  string
	start func(t *testing.T) chainSource
}{
	{"ECS task role", func(t *testing.T) chainSource {
		c := credfakes.StartContainer(t, credfakes.ContainerOptions{Flavor: credfakes.FlavorECS, Issuer: chainIssuer, Token: chainContainerToken})
		env, _ := credfakes.SetContainerEnv(t, c, credfakes.AuthToken, chainContainerToken)
		return chainSource{issuer: c, env: env, outages: []outage{
			faultOutage("endpoint down", c.SetFault, credfakes.FaultDown, transient),
			faultOutage("500", c.SetFault, credfakes.FaultServerError, transient),
			faultOutage("malformed answer", c.SetFault, credfakes.FaultMalformed, malformed),
			faultOutage("expired credentials", c.SetFault, credfakes.FaultExpired, refused),
			{name: "token no longer accepted", begin: func() { c.SetToken("rotated-on-the-agent") },
				end: func() { c.SetToken(chainContainerToken) }, want: permanent},
		}}
	}},
	{"Greengrass token exchange", func(t *testing.T) chainSource {
		c := credfakes.StartContainer(t, credfakes.ContainerOptions{Flavor: credfakes.FlavorGreengrass, Issuer: chainIssuer, Token: chainContainerToken})
		env, _ := credfakes.SetContainerEnv(t, c, credfakes.AuthToken, chainContainerToken)
		return chainSource{issuer: c, env: env, outages: []outage{
			faultOutage("endpoint down", c.SetFault, credfakes.FaultDown, transient),
			faultOutage("500", c.SetFault, credfakes.FaultServerError, transient),
		}}
	}},
	{"EKS Pod Identity", func(t *testing.T) chainSource {
		c := credfakes.StartContainer(t, credfakes.ContainerOptions{Flavor: credfakes.FlavorEKSPodIdentity, Issuer: chainIssuer, Token: "pod-token-1"})
		env, tokenFile := credfakes.SetContainerEnv(t, c, credfakes.AuthTokenFile, "pod-token-1")
		return chainSource{issuer: c, env: env, outages: []outage{
			faultOutage("agent down", c.SetFault, credfakes.FaultDown, transient),
			// The agent moved on to a new token before the kubelet
			// rewrote the file: refused until the file has it, which
			// proves the file is read again on every request.
			{name: "token file behind the agent", begin: func() { c.SetToken("pod-token-2") },
				end: func() { credfakes.WriteTokenFile(t, tokenFile, "pod-token-2") }, want: permanent},
		}}
	}},
	{"IRSA", func(t *testing.T) chainSource {
		s := credfakes.StartSTS(t, credfakes.STSOptions{RoleARN: credfakes.IRSARoleARN, Issuer: chainIssuer})
		env, tokenFile := credfakes.SetIRSAEnv(t, s, "web-identity-1")
		return chainSource{issuer: s, env: env, outages: []outage{
			faultOutage("STS down", s.SetFault, credfakes.FaultDown, transient),
			faultOutage("500", s.SetFault, credfakes.FaultServerError, transient),
			faultOutage("throttled", s.SetFault, credfakes.FaultThrottle, transient),
			faultOutage("malformed answer", s.SetFault, credfakes.FaultMalformed, malformed),
			// The web identity token in the file expired (the kubelet
			// stopped rotating it), then a fresh one arrives in the file.
			{name: "expired web identity", begin: func() { s.AcceptToken("web-identity-1", time.Now().Add(-time.Second)) },
				end: func() {
					s.AcceptToken("web-identity-2", time.Now().Add(time.Hour))
					credfakes.WriteTokenFile(t, tokenFile, "web-identity-2")
				}, want: transient},
		}}
	}},
	{"credential_process", func(t *testing.T) chainSource {
		p := credfakes.StartProcess(t, chainIssuer)
		env := credfakes.SetProcessEnv(t, p, "relay")
		return chainSource{issuer: p, env: env, outages: []outage{
			faultOutage("exits 1", p.SetFault, credfakes.FaultDown, transient),
			faultOutage("exits 2", p.SetFault, credfakes.FaultServerError, transient),
			faultOutage("output cut after the secret", p.SetFault, credfakes.FaultMalformed, malformed),
			faultOutage("expired credentials", p.SetFault, credfakes.FaultExpired, refused),
		}}
	}},
}

// trapIMDS points the chain's last resort at a fake IMDS that must never be
// asked: the source under test, not IMDS, must have served.
func trapIMDS(t *testing.T) {
	trap := imdsfake.Start(t, imdsfake.Options{})
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", trap.URL())
	t.Cleanup(func() {
		if n := trap.TotalRequests(); n != 0 {
			t.Errorf("the default chain asked IMDS %d times instead of the source under test", n)
		}
	})
}

// eventLog collects a Keeper's events from its goroutine.
type eventLog struct {
	mu     sync.Mutex
	events []credrefresh.Event
}

func (l *eventLog) add(e credrefresh.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) since(n int) []credrefresh.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]credrefresh.Event(nil), l.events[min(n, len(l.events)):]...)
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// assertFileIssued reads the credential file and checks it holds, in
// kvssink's format, credentials the fake issued, with their expiry.
func assertFileIssued(t *testing.T, iss issuerOf, path string) credfile.Credentials {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := credfile.Decode(data)
	if err != nil {
		t.Fatalf("credential file is not in kvssink's format: %v", err)
	}
	is, ok := iss.Lookup(c.AccessKeyID)
	if !ok {
		t.Fatalf("the file holds %v, which the fake never issued", c)
	}
	want := "CREDENTIALS " + is.AccessKeyID + " " + is.Expiration.UTC().Format("2006-01-02T15:04:05Z") + " " + is.SecretAccessKey + " " + is.Token + "\n"
	if string(data) != want {
		t.Fatalf("the file differs from the issued credentials in kvssink's format (file expires %s, issued until %s)", c.Expires, is.Expiration)
	}
	return c
}

func TestDefaultChainKeepsFileFresh(t *testing.T) {
	for _, src := range chainSources {
		t.Run(src.name, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			trapIMDS(t)
			cs := src.start(t)
			s, err := credsource.New(credsource.Options{Kind: credsource.KindDefault, HTTPTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "kvs", "credential")
			log := &eventLog{}
			k, err := credrefresh.New(s.Fetch,
				func(c credfile.Credentials, now time.Time) error { return credfile.Write(path, c, now) },
				credrefresh.Options{RefreshBefore: chainRefreshBefore, RetryInitial: 100 * time.Millisecond, RetryMax: 400 * time.Millisecond,
					Transient: credsource.IsTransient, OnEvent: log.add})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := k.Prime(ctx); err != nil {
				t.Fatalf("Prime: %v", err)
			}
			last := assertFileIssued(t, cs.issuer, path)
			running := make(chan error, 1)
			go func() { running <- k.Run(ctx) }()
			defer func() {
				cancel()
				<-running
			}()

			waitNewKey := func(what string) {
				t.Helper()
				waitFor(t, what, 30*time.Second, func() bool {
					c, ok := readCreds(path)
					return ok && c.AccessKeyID != last.AccessKeyID
				})
				last = assertFileIssued(t, cs.issuer, path)
			}
			waitNewKey("the file to rotate")

			for _, o := range cs.outages {
				mark := log.len()
				o.begin()
				var failures []credrefresh.Event
				waitFor(t, o.name+": two failed refreshes", 30*time.Second, func() bool {
					failures = failures[:0]
					for _, e := range log.since(mark) {
						if e.Kind == credrefresh.EventRefreshFailed {
							failures = append(failures, e)
						}
					}
					return len(failures) >= 2
				})
				for _, e := range failures {
					if !o.want(e.Err) {
						t.Errorf("%s: refresh failed with %v (transient %v), not the expected kind of error", o.name, e.Err, credsource.IsTransient(e.Err))
					}
				}
				// A refresh already under way when the fault began may
				// have landed; none may after the first failure.
				failed := false
				for _, e := range log.since(mark) {
					failed = failed || e.Kind == credrefresh.EventRefreshFailed
					if failed && e.Kind == credrefresh.EventRefreshed {
						t.Fatalf("%s: credentials written during the outage", o.name)
					}
				}
				// The file keeps the last valid credentials.
				last = assertFileIssued(t, cs.issuer, path)
				if credfile.MaskKeyID(last.AccessKeyID) != k.KeyID() || !last.Expires.After(time.Now()) {
					t.Fatalf("%s: the file holds %s until %s, not the keeper's last valid credentials %s", o.name,
						credfile.MaskKeyID(last.AccessKeyID), last.Expires, k.KeyID())
				}
				if st := k.Status(); st != credrefresh.StatusDegraded {
					t.Fatalf("%s: keeper status %s during the outage, want degraded", o.name, st)
				}
				o.end()
				waitNewKey(o.name + ": new credentials after the outage")
			}

			for _, e := range log.since(0) {
				if e.Err == nil {
					continue
				}
				for _, is := range cs.issuer.Issued() {
					if msg := e.Err.Error(); strings.Contains(msg, is.SecretAccessKey) || strings.Contains(msg, is.Token) {
						t.Fatalf("a refresh error quotes issued secrets: %.200s", msg)
					}
				}
			}
			t.Logf("%d credentials issued, %d events", len(cs.issuer.Issued()), log.len())
		})
	}
}

// kvscredprovider source=default in a gst-launch-1.0 line, for each source:
// kvssink (the stand-in, its clock 2m10s ahead so that it re-reads the file
// about 12 s after each credential was issued) signs with credentials from
// the provider's file only, rotates through at least two keys the fake
// issued, never past their expiry, and the fallback IMDS is never asked.
func TestLaunchDefaultChainSources(t *testing.T) {
	for _, src := range chainSources {
		t.Run(src.name, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			trap := imdsfake.Start(t, imdsfake.Options{})
			cs := src.start(t)
			dir := harness.PrivateDir(t)
			report := filepath.Join(dir, "report.json")
			args := []string{"kvscredprovider", "source=default", fmt.Sprintf("refresh-before=%d", int64(chainRefreshBefore)),
				"credential-path=" + filepath.Join(dir, "credential")}
			args = append(args, strings.Fields("videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=10/1 ! "+h264ToKvssink+" report="+report)...)
			env := append([]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + trap.URL(), kvssinkstandin.EnvClockOffset + "=" + kvssinkAhead}, cs.env...)
			l := harness.StartLaunch(t, harness.Env(t, env...), args...)

			waitAccepted(t, report, 0, "kvssink to accept frames")
			waitFor(t, "kvssink to use a second key", 45*time.Second, func() bool {
				r := readReport(report)
				return r != nil && len(r.AccessKeysUsed) >= 2
			})
			l.Interrupt()
			if code := l.Wait(30 * time.Second); code != 0 {
				t.Fatalf("gst-launch-1.0 exited %d", code)
			}
			expiries := map[string]time.Time{}
			for _, is := range cs.issuer.Issued() {
				expiries[kvssinkstandin.MaskKey(is.AccessKeyID)] = is.Expiration
			}
			keys := checkKeysUsed(t, expiries, readReport(report))
			if n := l.Count(harness.OfType("error")); n != 0 {
				t.Fatalf("%d ERRORs on the bus", n)
			}
			if n := trap.TotalRequests(); n != 0 {
				t.Fatalf("the provider asked IMDS %d times instead of the source under test", n)
			}
			t.Logf("%d keys used, %d issued", keys, len(cs.issuer.Issued()))
		})
	}
}

// The kvscredfile sidecar with -source default writes each source's
// credentials (one fetch, -once).
func TestCLIDefaultChainOnce(t *testing.T) {
	for _, src := range chainSources {
		t.Run(src.name, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			trapIMDS(t)
			cs := src.start(t)
			path := filepath.Join(t.TempDir(), "credential")
			p := startCLI(t, "-once", "-source", "default", "-credential-path", path)
			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, p.stderr.String())
			}
			assertFileIssued(t, cs.issuer, path)
		})
	}
}
