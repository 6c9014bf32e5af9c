package credentials

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
	cliDir  string
)

// buildCLI compiles cmd/kvscredfile once per test binary.
func buildCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		cliDir, cliErr = os.MkdirTemp("", "kvscredfile-bin-*")
		if cliErr != nil {
			return
		}
		cliPath = filepath.Join(cliDir, "kvscredfile")
		out, err := exec.Command("go", "build", "-o", cliPath, "github.com/kvsrelay/kvsrelay/cmd/kvscredfile").CombinedOutput()
		if err != nil {
			cliErr = err
			t.Logf("go build output:\n%s", out)
		}
	})
	if cliErr != nil {
		t.Fatalf("building kvscredfile: %v", cliErr)
	}
	return cliPath
}

func init() {
	// Remove the built CLI when the test binary ends (TestMain handles
	// the emulator's folder; this keeps the two independent).
	cleanupCLI = func() {
		if cliDir != "" {
			_ = os.RemoveAll(cliDir)
		}
	}
}

type cliProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
	err    error
}

func startCLI(t *testing.T, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{cmd: exec.Command(buildCLI(t), args...), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	p.cmd.Env = os.Environ() // ClearAWSEnv has already cleaned it
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *cliProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("kvscredfile did not exit within %s; stderr:\n%s", timeout, p.stderr.String())
		return -1
	}
}

func readCreds(path string) (credfile.Credentials, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return credfile.Credentials{}, false
	}
	c, err := credfile.Decode(data)
	return c, err == nil
}

// TestCLIKeepsFileFresh runs kvscredfile against the rotating fake IMDS:
// credentials live 3 min and IMDS rotates them 3 s after issue; with
// -refresh-before 2m56s the CLI refreshes ~4 s after each write.
func TestCLIKeepsFileFresh(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{Lifetime: 3 * time.Minute, RotateBefore: 2*time.Minute + 57*time.Second})
	dir := filepath.Join(t.TempDir(), "run", "kvsrelay")
	path := filepath.Join(dir, "credential")
	p := startCLI(t, "-source", "imds", "-imds-endpoint", srv.URL(), "-credential-path", path, "-refresh-before", "2m56s")

	var first credfile.Credentials
	waitFor(t, "the first credential file", 30*time.Second, func() bool {
		var ok bool
		first, ok = readCreds(path)
		return ok
	})
	if is, ok := srv.Lookup(first.AccessKeyID); !ok || !is.Expiration.Equal(first.Expires) || is.SecretAccessKey != first.SecretAccessKey || is.Token != first.SessionToken {
		t.Fatalf("file holds %v, which the fake IMDS did not issue", first)
	}
	var second credfile.Credentials
	waitFor(t, "the file to rotate", 60*time.Second, func() bool {
		c, ok := readCreds(path)
		second = c
		return ok && c.AccessKeyID != first.AccessKeyID
	})
	if _, ok := srv.Lookup(second.AccessKeyID); !ok {
		t.Fatalf("rotated file holds %v, not issued by the fake", second)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: mode %v (%v), want %o", p, st.Mode().Perm(), err, want)
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("credential file still there after SIGTERM: %v", err)
	}
	log := p.stderr.String()
	for _, is := range srv.Issued() {
		if strings.Contains(log, is.SecretAccessKey) || strings.Contains(log, is.Token) || strings.Contains(log, is.AccessKeyID) {
			t.Fatalf("log leaks credentials:\n%s", log)
		}
	}
	if !strings.Contains(log, credfile.MaskKeyID(second.AccessKeyID)) {
		t.Fatalf("log does not mention the masked key %s:\n%s", credfile.MaskKeyID(second.AccessKeyID), log)
	}
}

func TestCLIOnce(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL())
	path := filepath.Join(t.TempDir(), "credential")
	p := startCLI(t, "-once", "-credential-path", path)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, p.stderr.String())
	}
	c, ok := readCreds(path)
	if !ok {
		t.Fatal("no valid credential file after -once")
	}
	if _, issued := srv.Lookup(c.AccessKeyID); !issued {
		t.Fatalf("file holds %v, not issued by the fake", c)
	}
}

func TestCLIFailures(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	srv.SetFault(imdsfake.FaultIMDSv1Only)
	healthy := imdsfake.Start(t, imdsfake.Options{})
	notAFolder := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notAFolder, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown source", []string{"-source", "static"}, 2, "-source"},
		{"unparsable duration", []string{"-refresh-before", "soon"}, 2, "-refresh-before"},
		{"refresh-before too short", []string{"-refresh-before", "30s"}, 2, "-refresh-before"},
		{"unknown flag", []string{"-region", "eu-west-1"}, 2, "-region"},
		{"bad endpoint", []string{"-imds-endpoint", "127.0.0.1:1"}, 2, "-imds-endpoint \"127.0.0.1:1\""},
		{"bad role", []string{"-role", "a/b"}, 2, "-role \"a/b\": is not a valid IAM role name"},
		{"IMDSv1-only server", []string{"-imds-endpoint", srv.URL()}, 1, "refused the IMDSv2 token request"},
		{"unwritable folder", []string{"-imds-endpoint", healthy.URL(), "-credential-path", filepath.Join(notAFolder, "credential")}, 1, "credential folder " + notAFolder + " is not a folder"},
		{"folder others can write", []string{"-imds-endpoint", healthy.URL(), "-credential-path", filepath.Join(shared, "credential")}, 1, "credential folder " + shared + " has mode 0777"},
		{"refresh-before in nanoseconds, too short", []string{"-refresh-before", "60000000000"}, 2, "150000000000 ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !strings.Contains(strings.Join(args, " "), "-credential-path") {
				args = append(args, "-credential-path", filepath.Join(t.TempDir(), "credential"))
			}
			p := startCLI(t, args...)
			code := p.wait(t, 30*time.Second)
			if code != tt.code || !strings.Contains(p.stderr.String(), tt.msg) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and a message containing %q", code, p.stderr.String(), tt.code, tt.msg)
			}
		})
	}
}

// With KVSRELAY_METRICS set, kvscredfile writes EMF lines for the stream
// named by -stream-name: the expiry of the credentials in the file, and the
// failed refreshes while IMDS answers 500.
func TestCLIMetrics(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{Lifetime: 3 * time.Minute, RotateBefore: 2*time.Minute + 57*time.Second})
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "credential")
	metrics := filepath.Join(t.TempDir(), "metrics.emf")
	t.Setenv("KVSRELAY_METRICS", metrics)
	t.Setenv("KVSRELAY_METRICS_INTERVAL", "200ms")
	p := startCLI(t, "-imds-endpoint", srv.URL(), "-credential-path", path, "-refresh-before", "176000000000", "-stream-name", "cam-cli")

	waitFor(t, "the first credential file", 30*time.Second, func() bool { _, ok := readCreds(path); return ok })
	waitFor(t, "a CredentialSecondsToExpiry line for cam-cli", 20*time.Second, func() bool {
		_, left := credentialMetrics(readEMF(t, metrics), "cam-cli")
		return left > 0 && left <= 180
	})
	srv.SetFault(imdsfake.FaultServerError)
	waitFor(t, "CredentialRefreshFailures to count two failures", 30*time.Second, func() bool {
		failures, _ := credentialMetrics(readEMF(t, metrics), "cam-cli")
		return failures >= 2
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, p.stderr.String())
	}
	failures, _ := credentialMetrics(readEMF(t, metrics), "cam-cli")
	if logged := strings.Count(p.stderr.String(), "refreshing credentials failed"); int(failures) > logged {
		t.Fatalf("%v failures in the metrics, %d in the log:\n%s", failures, logged, p.stderr.String())
	}
	for _, l := range readEMF(t, metrics) {
		if l.StreamName != "cam-cli" {
			t.Fatalf("a line for stream %q", l.StreamName)
		}
	}
}
