package credfakes

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a credential_process program for a shared-config profile: the
// test starts it with StartProcess, puts Command in the profile, and drives
// it through its state folder (the issuer's state and the current fault),
// which the program reads and updates under a lock on every run.
type Process struct {
	bin, dir string
	tb       testing.TB
}

const (
	processStateFile = "state.json"
	processFaultFile = "fault"
	processLockFile  = "lock"
	processRunsFile  = "runs"
)

// StartProcess builds fakecredprocess (go build, into a temporary folder)
// and prepares its state folder with a fresh issuer.
func StartProcess(tb testing.TB, opts IssuerOptions) *Process {
	tb.Helper()
	if opts.Now != nil {
		tb.Fatal("credfakes: a Process runs on the real clock (it is another program)")
	}
	dir := tb.TempDir()
	if strings.ContainsAny(dir, " \t'\"\\$`;&|<>()*?[]#~") {
		tb.Fatalf("credfakes: temporary folder %q needs shell quoting, which credential_process lines cannot carry", dir)
	}
	bin := filepath.Join(dir, "fakecredprocess")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/kvsrelay/kvsrelay/test/credfakes/fakecredprocess").CombinedOutput()
	if err != nil {
		tb.Fatalf("building fakecredprocess: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		tb.Fatal(err)
	}
	p := &Process{bin: bin, dir: state, tb: tb}
	data, err := NewIssuer(opts).marshal()
	if err != nil {
		tb.Fatal(err)
	}
	p.write(processStateFile, data)
	p.SetFault(FaultNone)
	return p
}

// Command is the credential_process line: the program and its state
// folder. It is not quoted: the shared config parser strips quotes around
// a value, so StartProcess refuses paths the shell would split.
func (p *Process) Command() string { return p.bin + " " + p.dir }

// SetFault switches what the next runs do.
func (p *Process) SetFault(f Fault) { p.write(processFaultFile, []byte(fmt.Sprint(int(f)))) }

// Runs counts the program's runs so far.
func (p *Process) Runs() int {
	data, err := os.ReadFile(filepath.Join(p.dir, processRunsFile))
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "\n")
}

// Issued returns every credential the program issued, oldest first.
func (p *Process) Issued() []Issued {
	var out []Issued
	p.withIssuer(func(i *Issuer) bool { out = i.Issued(); return false })
	return out
}

// Lookup finds an issued credential by access key id.
func (p *Process) Lookup(accessKeyID string) (is Issued, ok bool) {
	p.withIssuer(func(i *Issuer) bool { is, ok = i.Lookup(accessKeyID); return false })
	return is, ok
}

func (p *Process) withIssuer(fn func(*Issuer) bool) {
	p.tb.Helper()
	if err := withState(p.dir, fn); err != nil {
		p.tb.Fatal(err)
	}
}

func (p *Process) write(name string, data []byte) {
	p.tb.Helper()
	if err := writeAtomic(filepath.Join(p.dir, name), data); err != nil {
		p.tb.Fatal(err)
	}
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// withState runs fn on the issuer kept in dir under an exclusive lock,
// saving it back when fn returns true.
func withState(dir string, fn func(*Issuer) bool) error {
	lock, err := os.OpenFile(filepath.Join(dir, processLockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(dir, processStateFile))
	if err != nil {
		return err
	}
	iss, err := unmarshalIssuer(data)
	if err != nil {
		return fmt.Errorf("credfakes: state of %s: %w", dir, err)
	}
	if !fn(iss) {
		return nil
	}
	if data, err = iss.marshal(); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, processStateFile), data)
}

// processOutput is the credential_process output format (Version 1).
type processOutput struct {
	Version         int
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

// RunProcess is fakecredprocess's body: one credential_process run against
// the state folder dir. It returns the exit status.
func RunProcess(dir string, stdout, stderr io.Writer) int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(stderr, "fakecredprocess: "+format+"\n", args...)
		return code
	}
	if dir == "" {
		return fail(64, "usage: fakecredprocess STATE-FOLDER")
	}
	f, err := os.OpenFile(filepath.Join(dir, processRunsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(70, "%v", err)
	}
	_, _ = fmt.Fprintln(f, time.Now().UTC().Format(time.RFC3339Nano))
	_ = f.Close()
	data, err := os.ReadFile(filepath.Join(dir, processFaultFile))
	if err != nil {
		return fail(70, "%v", err)
	}
	var fault Fault
	if _, err := fmt.Sscan(string(data), (*int)(&fault)); err != nil {
		return fail(70, "fault file: %v", err)
	}
	switch fault {
	case FaultDown:
		return fail(1, "cannot reach the credential broker: connection refused")
	case FaultServerError, FaultThrottle:
		return fail(2, "the credential broker answered 500")
	}
	var is Issued
	err = withState(dir, func(i *Issuer) bool { is = i.Current(); return true })
	if err != nil {
		return fail(70, "%v", err)
	}
	out := processOutput{Version: 1, AccessKeyID: is.AccessKeyID, SecretAccessKey: is.SecretAccessKey,
		SessionToken: is.Token, Expiration: is.Expiration.UTC().Format(rfc3339Seconds)}
	if fault == FaultExpired {
		out.Expiration = time.Now().Add(-time.Minute).UTC().Format(rfc3339Seconds)
	}
	doc, err := json.Marshal(out)
	if err != nil {
		return fail(70, "%v", err)
	}
	if fault == FaultMalformed {
		// Cut after the secret: an SDK that quotes bad output in its error
		// would put the secret in a log.
		cut := strings.Index(string(doc), is.SecretAccessKey) + len(is.SecretAccessKey)
		doc = doc[:cut]
	}
	if _, err := stdout.Write(doc); err != nil {
		return fail(74, "%v", err)
	}
	return 0
}
