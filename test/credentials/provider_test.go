package credentials

// kvscredprovider in gst-launch-1.0 lines, the way operators run it, with the
// freshly built test plugin (kvssink is the stand-in) and the rotating fake
// IMDS.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// h264ToKvssink is the encoder chain in front of kvssink used by every test.
const h264ToKvssink = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! h264parse ! " +
	"video/x-h264,stream-format=avc,alignment=au ! kvssink stream-name=t"

// Fast rotation: the fake issues 3-minute credentials and rotates them once
// they have less than 2m57s left; the provider refreshes 2m56s before expiry,
// i.e. about 4 s after each write. kvssink re-reads the file only when
// now+38s passes the expiry it cached, so its clock runs 2m10s ahead: it
// re-reads about 12 s after each credential was issued and would refuse one
// 20 s after issue (under 30 s left by its clock). Every re-read must find
// a newer credential.
const (
	fastLifetime      = 3 * time.Minute
	fastRotateBefore  = 2*time.Minute + 57*time.Second
	fastRefreshBefore = 2*time.Minute + 56*time.Second
	kvssinkAhead      = "2m10s"
)

func fastIMDS(t *testing.T) *imdsfake.Server {
	imdsfake.ClearAWSEnv(t)
	return imdsfake.Start(t, imdsfake.Options{Lifetime: fastLifetime, RotateBefore: fastRotateBefore})
}

func providerEnv(t *testing.T, srv *imdsfake.Server, extra ...string) []string {
	return harness.Env(t, append([]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + srv.URL()}, extra...)...)
}

func fromProvider(typ string) func(harness.Message) bool {
	return func(m harness.Message) bool { return m.Type == typ && strings.HasPrefix(m.Source, "kvscredprovider") }
}

func readReport(path string) *kvssinkstandin.Report {
	r, err := kvssinkstandin.ReadReport(path)
	if err != nil {
		return nil
	}
	return r
}

// waitAccepted waits until kvssink has accepted more than n frames and
// returns how many it has.
func waitAccepted(t *testing.T, report string, n uint64, what string) uint64 {
	t.Helper()
	var got uint64
	waitFor(t, what, 30*time.Second, func() bool {
		if r := readReport(report); r != nil {
			got = r.TotalAccepted()
		}
		return got > n
	})
	return got
}

// checkCredentialUse asserts what kvssink did with credentials: all from
// the file, every read fine, every key issued by the fake and never used
// past its expiry, no lapse. It returns the number of keys used.
func checkCredentialUse(t *testing.T, srv *imdsfake.Server, r *kvssinkstandin.Report) int {
	t.Helper()
	expiries := map[string]time.Time{}
	for _, is := range srv.Issued() {
		expiries[kvssinkstandin.MaskKey(is.AccessKeyID)] = is.Expiration
	}
	return checkKeysUsed(t, expiries, r)
}

// checkKeysUsed is checkCredentialUse for any fake: expiries maps the
// masked access key ids the fake issued to their expiry.
func checkKeysUsed(t *testing.T, expiries map[string]time.Time, r *kvssinkstandin.Report) int {
	t.Helper()
	if r.CredentialSource != kvssinkstandin.SourceFile {
		t.Fatalf("kvssink used credentials from %q, want the file", r.CredentialSource)
	}
	for _, rd := range r.CredentialReads {
		if !rd.OK {
			t.Errorf("kvssink failed to read the credential file at %s: %s", rd.Time, rd.Error)
		}
	}
	for _, use := range r.AccessKeysUsed {
		exp, ok := expiries[use.Key]
		if !ok {
			t.Errorf("kvssink signed %d frames with key %s, which the fake never issued", use.Frames, use.Key)
			continue
		}
		if !use.LastUsed.Before(exp) {
			t.Errorf("key %s used until %s, past its expiry %s", use.Key, use.LastUsed, exp)
		}
	}
	if r.FramesWithExpiredCredentials != 0 || len(r.StreamErrors) != 0 || len(r.Errors) != 0 {
		t.Errorf("credential trouble: %d frames with expired credentials, stream errors %+v, errors %v",
			r.FramesWithExpiredCredentials, r.StreamErrors, r.Errors)
	}
	return len(r.AccessKeysUsed)
}

// Before and after kvssink in the line: kvssink starts from the provider's
// file, and the file is gone once gst-launch-1.0 has exited.
func TestLaunchProviderBeforeAndAfterKvssink(t *testing.T) {
	for _, order := range []string{"before", "after"} {
		t.Run(order, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			srv := imdsfake.Start(t, imdsfake.Options{})
			dir := t.TempDir()
			runtimeDir := filepath.Join(dir, "runtime")
			report := filepath.Join(dir, "report.json")
			provider := []string{"kvscredprovider"}
			sink := strings.Fields("videotestsrc is-live=true ! video/x-raw,width=160,height=120 ! " + h264ToKvssink + " report=" + report)
			args := append(append([]string{}, provider...), sink...)
			if order == "after" {
				args = append(append([]string{}, sink...), provider...)
			}
			// No credential-path: the default folder is $XDG_RUNTIME_DIR/kvsrelay.
			l := harness.StartLaunch(t, providerEnv(t, srv, "XDG_RUNTIME_DIR="+runtimeDir, "RUNTIME_DIRECTORY="), args...)
			waitAccepted(t, report, 10, "kvssink to accept frames")
			r := readReport(report)
			if !strings.HasPrefix(r.CredentialPath, filepath.Join(runtimeDir, "kvsrelay", "credential-")) {
				t.Fatalf("kvssink read %q, want a file in %s/kvsrelay", r.CredentialPath, runtimeDir)
			}
			if c, ok := readCreds(r.CredentialPath); !ok {
				t.Fatal("no valid credential file while running")
			} else if _, issued := srv.Lookup(c.AccessKeyID); !issued {
				t.Fatalf("file holds %v, not issued by the fake", c)
			}
			l.WaitFor(10*time.Second, 1, "kvscredprovider-refreshed", harness.Element("kvscredprovider-refreshed"))
			l.Interrupt()
			if code := l.Wait(30 * time.Second); code != 0 {
				t.Fatalf("gst-launch-1.0 exited %d", code)
			}
			checkCredentialUse(t, srv, readReport(report))
			if _, err := os.Stat(r.CredentialPath); !os.IsNotExist(err) {
				t.Fatalf("credential file left behind after exit: %v", err)
			}
			if n := l.Count(harness.OfType("error")); n != 0 {
				t.Fatalf("%d ERRORs", n)
			}
		})
	}
}

// Credentials rotating every few seconds while x264 streams into kvssink:
// each of kvssink's re-reads finds a fresh file and no frame goes out with
// expired credentials.
func TestLaunchRotationWhileStreaming(t *testing.T) {
	srv := fastIMDS(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	args := []string{"kvscredprovider", fmt.Sprintf("refresh-before=%d", int64(fastRefreshBefore)),
		"credential-path=" + filepath.Join(dir, "credential")}
	args = append(args, strings.Fields("videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=15/1 ! "+h264ToKvssink+" report="+report)...)
	l := harness.StartLaunch(t, providerEnv(t, srv, kvssinkstandin.EnvClockOffset+"="+kvssinkAhead), args...)

	waitAccepted(t, report, 0, "kvssink to accept frames")
	// Three keys used means two re-reads that each found new credentials.
	waitFor(t, "kvssink to rotate through three keys", 45*time.Second, func() bool {
		r := readReport(report)
		return r != nil && len(r.AccessKeysUsed) >= 3
	})
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d", code)
	}
	r := readReport(report)
	keys := checkCredentialUse(t, srv, r)
	if n := l.Count(harness.OfType("error")); n != 0 {
		t.Fatalf("%d ERRORs on the bus", n)
	}
	if n := l.Count(harness.Element("kvscredprovider-refreshed")); n < keys {
		t.Errorf("%d refreshed messages for %d keys used", n, keys)
	}
	t.Logf("%d keys used, %d issued, %d frames accepted, %d file reads", keys, len(srv.Issued()), r.TotalAccepted(), len(r.CredentialReads))
}

// The provider's ERROR comes first when it cannot supply credentials, not
// kvssink's "Could not find any AWS credentials!".
func TestLaunchStartFailuresNameTheCause(t *testing.T) {
	notAFolder := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notAFolder, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		fault imdsfake.Fault
		path  string
		want  string
	}{
		{"unwritable folder", imdsfake.FaultNone, filepath.Join(notAFolder, "credential"), notAFolder},
		{"IMDSv1-only server", imdsfake.FaultIMDSv1Only, "", "IMDSv2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			srv := imdsfake.Start(t, imdsfake.Options{})
			srv.SetFault(tt.fault)
			path := tt.path
			if path == "" {
				path = filepath.Join(t.TempDir(), "credential")
			}
			args := append([]string{"kvscredprovider", "credential-path=" + path},
				strings.Fields("videotestsrc is-live=true ! "+h264ToKvssink)...)
			l := harness.StartLaunch(t, providerEnv(t, srv), args...)
			if code := l.Wait(45 * time.Second); code == 0 {
				t.Fatal("gst-launch-1.0 succeeded without credentials")
			}
			errs := []harness.Message{}
			for _, m := range l.Messages() {
				if m.Type == "error" {
					errs = append(errs, m)
				}
			}
			if len(errs) == 0 || !strings.HasPrefix(errs[0].Source, "kvscredprovider") || !strings.Contains(errs[0].Text, tt.want) {
				t.Fatalf("first ERROR %+v, want kvscredprovider's mentioning %q; stderr:\n%s", errs, tt.want, l.Stderr())
			}
		})
	}
}

// AWS_ACCESS_KEY_ID in the environment silently wins over the file: the
// provider says so on the bus.
func TestLaunchWarnsAboutEnvironmentKeys(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	report := filepath.Join(t.TempDir(), "report.json")
	args := append([]string{"kvscredprovider", "credential-path=" + filepath.Join(harness.PrivateDir(t), "credential")},
		strings.Fields("videotestsrc is-live=true ! "+h264ToKvssink+" report="+report)...)
	l := harness.StartLaunch(t, providerEnv(t, srv, "AWS_ACCESS_KEY_ID=AKIAFROMTHEENVIRONMENT"), args...)
	w := l.WaitFor(20*time.Second, 1, "kvscredprovider's WARNING", fromProvider("warning"))
	if !strings.Contains(w.Text, "AWS_ACCESS_KEY_ID") || strings.Contains(w.Text, "AKIAFROMTHEENVIRONMENT") {
		t.Fatalf("warning %q should name AWS_ACCESS_KEY_ID without its value", w.Text)
	}
	l.Interrupt()
	l.Wait(30 * time.Second)
}

// With every debug category at level 9, neither the secret key nor the
// session token the fake issued appears in gst-launch-1.0's output (logs and
// every bus message, printed by -m).
func TestLaunchNeverPrintsSecrets(t *testing.T) {
	srv := fastIMDS(t)
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	args := []string{"-m", "kvscredprovider", fmt.Sprintf("refresh-before=%d", int64(fastRefreshBefore)),
		"credential-path=" + filepath.Join(dir, "credential")}
	args = append(args, strings.Fields("videotestsrc is-live=true num-buffers=90 ! video/x-raw,width=160,height=120,framerate=15/1 ! "+h264ToKvssink)...)
	cmd := exec.Command("gst-launch-1.0", args...)
	cmd.Env = providerEnv(t, srv, "GST_DEBUG=*:9")
	cmd.Stdout, cmd.Stderr = out, out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gst-launch-1.0: %v", err)
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("gst-launch-1.0 did not finish")
	}
	issued := srv.Issued()
	if len(issued) < 2 {
		t.Fatalf("only %d credentials issued: the run did not cover a refresh", len(issued))
	}
	if _, err := out.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	lines, masked := 0, 0
	for sc.Scan() {
		line := sc.Text()
		lines++
		for _, is := range issued {
			if strings.Contains(line, is.SecretAccessKey) || strings.Contains(line, is.Token) || strings.Contains(line, is.AccessKeyID) {
				t.Fatalf("output line %d shows a credential of %s: %.300s", lines, is.IssuedAt, line)
			}
			if strings.Contains(line, "****"+is.AccessKeyID[len(is.AccessKeyID)-4:]) {
				masked++
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if masked == 0 {
		t.Fatalf("the %d lines of output never mention a masked key: the check saw nothing", lines)
	}
	t.Logf("%d lines scanned, %d mention a masked key", lines, masked)
}

// reconnectbin and kvscredprovider together: the source server dies and
// comes back twice while credentials rotate; every recovery is followed by
// frames kvssink accepts, timestamps never go backwards and no frame is sent
// with expired credentials.
func TestLaunchSourceFaultsAndRotationsInterleaved(t *testing.T) {
	srv := fastIMDS(t)
	ts := servers.NewTSServer(t, servers.TSOptions{})
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	args := []string{"kvscredprovider", fmt.Sprintf("refresh-before=%d", int64(fastRefreshBefore)),
		"credential-path=" + filepath.Join(dir, "credential"),
		"reconnectbin",
		fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse ! avdec_h264", ts.Port()),
		"stall-timeout=2000000000"}
	args = append(args, strings.Fields("! videoconvert ! videoscale ! video/x-raw,width=160,height=120 ! "+h264ToKvssink+" report="+report)...)
	l := harness.StartLaunch(t, providerEnv(t, srv, kvssinkstandin.EnvClockOffset+"="+kvssinkAhead), args...)

	accepted := waitAccepted(t, report, 0, "kvssink to accept frames")
	for i := 1; i <= 2; i++ {
		if err := ts.Kill(); err != nil {
			t.Fatal(err)
		}
		l.WaitFor(20*time.Second, i, "a restart after the server died", harness.Element("reconnectbin-restart"))
		if err := ts.Restart(); err != nil {
			t.Fatal(err)
		}
		l.WaitFor(30*time.Second, i, "recovery", harness.Element("reconnectbin-recovered"))
		accepted = waitAccepted(t, report, accepted+15, fmt.Sprintf("frames accepted after recovery %d", i))
	}
	waitFor(t, "kvssink to use at least two keys", 30*time.Second, func() bool {
		r := readReport(report)
		return r != nil && len(r.AccessKeysUsed) >= 2
	})
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d", code)
	}
	r := readReport(report)
	keys := checkCredentialUse(t, srv, r)
	if r.RunningTimeViolations != 0 {
		t.Errorf("%d frames went backwards in running time", r.RunningTimeViolations)
	}
	if n := l.Count(harness.OfType("error")); n != 0 {
		t.Errorf("%d ERRORs on the bus", n)
	}
	t.Logf("%d keys used, %d frames accepted, largest gap %v", keys, r.TotalAccepted(), time.Duration(r.MaxGapNs))
}

// kvscredprovider in a bin of its own, after kvssink in the line: kvssink
// still starts from its file.
func TestLaunchProviderInsideABin(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	dir := harness.PrivateDir(t)
	path := filepath.Join(dir, "credential")
	report := filepath.Join(dir, "report.json")
	args := strings.Fields("videotestsrc is-live=true ! video/x-raw,width=160,height=120 ! " + h264ToKvssink + " report=" + report)
	args = append(args, "(", "kvscredprovider", "credential-path="+path, ")")
	l := harness.StartLaunch(t, providerEnv(t, srv), args...)
	waitAccepted(t, report, 10, "kvssink to accept frames")
	r := readReport(report)
	if r.CredentialPath != path || r.CredentialSource != kvssinkstandin.SourceFile || !r.CredentialReads[0].OK {
		t.Fatalf("kvssink started from %q (%s), reads %+v; want the provider's file %s", r.CredentialSource, r.CredentialPath, r.CredentialReads, path)
	}
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d", code)
	}
	checkCredentialUse(t, srv, readReport(report))
	if n := l.Count(harness.OfType("error")); n != 0 {
		t.Fatalf("%d ERRORs", n)
	}
}

// CloudWatch EMF lines from a gst-launch run: the kvssink's stream gets
// CredentialSecondsToExpiry (the 3-minute credentials of the fast fake) and
// counts the refresh failures while IMDS answers 500.
func TestLaunchCredentialMetrics(t *testing.T) {
	srv := fastIMDS(t)
	dir := harness.PrivateDir(t)
	metrics := filepath.Join(dir, "metrics.emf")
	args := []string{"kvscredprovider", fmt.Sprintf("refresh-before=%d", int64(fastRefreshBefore)),
		"credential-path=" + filepath.Join(dir, "credential")}
	args = append(args, strings.Fields("videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=5/1 ! "+
		strings.Replace(h264ToKvssink, "stream-name=t", "stream-name=cam-metrics", 1))...)
	l := harness.StartLaunch(t, providerEnv(t, srv, "KVSRELAY_METRICS="+metrics, "KVSRELAY_METRICS_INTERVAL=200ms"), args...)

	l.WaitFor(20*time.Second, 1, "the first credentials", harness.Element("kvscredprovider-refreshed"))
	waitFor(t, "a CredentialSecondsToExpiry line", 20*time.Second, func() bool {
		_, left := credentialMetrics(readEMF(t, metrics), "cam-metrics")
		return left > 0
	})
	if _, left := credentialMetrics(readEMF(t, metrics), "cam-metrics"); left > fastLifetime.Seconds() {
		t.Fatalf("CredentialSecondsToExpiry %v, more than the %v the credentials live", left, fastLifetime)
	}
	srv.SetFault(imdsfake.FaultServerError)
	l.WaitFor(30*time.Second, 2, "two refresh failures", harness.Element("kvscredprovider-refresh-failed"))
	waitFor(t, "CredentialRefreshFailures to count them", 20*time.Second, func() bool {
		failures, _ := credentialMetrics(readEMF(t, metrics), "cam-metrics")
		return failures >= 2
	})
	srv.SetFault(imdsfake.FaultNone)
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d", code)
	}
	lines := readEMF(t, metrics)
	failures, left := credentialMetrics(lines, "cam-metrics")
	posted := l.Count(harness.Element("kvscredprovider-refresh-failed"))
	if int(failures) > posted {
		t.Errorf("CredentialRefreshFailures adds up to %v, more than the %d refresh-failed messages", failures, posted)
	}
	if left <= 0 || left > fastLifetime.Seconds() {
		t.Errorf("last CredentialSecondsToExpiry %v", left)
	}
	for _, ln := range lines {
		if ln.StreamName != "cam-metrics" {
			t.Errorf("a line for stream %q: the only kvssink is cam-metrics", ln.StreamName)
		}
	}
	t.Logf("%d lines, %v failures counted of %d posted, %v s left at the end", len(lines), failures, posted, left)
}

// The secret scan of TestLaunchNeverPrintsSecrets on an outage: IMDS
// answers with real credentials that carry a past expiration (refused with
// the secrets in hand), then heals. Every debug category at level 9, and the
// bus messages (-m): the secret key, token and access key id never appear.
func TestLaunchNeverPrintsSecretsDuringAnOutage(t *testing.T) {
	srv := fastIMDS(t)
	dir := harness.PrivateDir(t)
	path := filepath.Join(dir, "credential")
	out, err := os.Create(filepath.Join(t.TempDir(), "output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	args := []string{"-m", "kvscredprovider", fmt.Sprintf("refresh-before=%d", int64(fastRefreshBefore)), "credential-path=" + path}
	args = append(args, strings.Fields("videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=5/1 ! "+h264ToKvssink)...)
	cmd := exec.Command("gst-launch-1.0", args...)
	cmd.Env = providerEnv(t, srv, "GST_DEBUG=*:9")
	cmd.Stdout, cmd.Stderr = out, out
	exited := make(chan struct{})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	var first credfile.Credentials
	waitFor(t, "the first credential file", 30*time.Second, func() bool {
		var ok bool
		first, ok = readCreds(path)
		return ok
	})
	role := imdsfake.PathRole("kvsrelay-test-role")
	asked := srv.Requests(role)
	srv.SetFault(imdsfake.FaultExpired)
	waitFor(t, "two refused answers", 30*time.Second, func() bool { return srv.Requests(role) >= asked+2 })
	srv.SetFault(imdsfake.FaultNone)
	waitFor(t, "new credentials after the outage", 30*time.Second, func() bool {
		c, ok := readCreds(path)
		return ok && c.AccessKeyID != first.AccessKeyID
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("gst-launch-1.0 did not exit after SIGINT")
	}

	issued := srv.Issued()
	if _, err := out.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	lines, failed, warned := 0, 0, 0
	for sc.Scan() {
		line := sc.Text()
		lines++
		for _, is := range issued {
			if strings.Contains(line, is.SecretAccessKey) || strings.Contains(line, is.Token) || strings.Contains(line, is.AccessKeyID) {
				t.Fatalf("output line %d shows a credential of %s: %.300s", lines, is.IssuedAt, line)
			}
		}
		// -m prints structures with spaces escaped ("already\ expired").
		if strings.Contains(line, "kvscredprovider-refresh-failed") && strings.Contains(line, `already\ expired`) {
			failed++
		}
		if strings.Contains(line, "Refreshing AWS credentials failed") {
			warned++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if failed == 0 || warned == 0 {
		t.Fatalf("the %d lines of output hold %d refresh-failed messages for the refused answers and %d outage WARNING lines: "+
			"the outage path was not exercised", lines, failed, warned)
	}
	t.Logf("%d lines scanned, %d refresh-failed messages, %d WARNING lines", lines, failed, warned)
}
