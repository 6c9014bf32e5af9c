package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// aemmVersion is the AWS IMDS emulator the tests run.
const aemmVersion = "v1.13.0"

var (
	aemmOnce sync.Once
	aemmPath string
	aemmErr  error
	aemmDir  string // temporary GOBIN, removed by TestMain
)

// cleanupCLI removes the built CLI (set in cli_test.go).
var cleanupCLI = func() {}

func TestMain(m *testing.M) {
	code := m.Run()
	if aemmDir != "" {
		_ = os.RemoveAll(aemmDir)
	}
	cleanupCLI()
	os.Exit(code)
}

// findAEMM locates ec2-metadata-mock: on PATH, else in $(go env GOPATH)/bin,
// else installs it with `go install` into a temporary GOBIN (so CI always
// exercises it instead of skipping).
func findAEMM(t *testing.T) string {
	t.Helper()
	aemmOnce.Do(func() {
		if p, err := exec.LookPath("ec2-metadata-mock"); err == nil {
			aemmPath = p
			return
		}
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err == nil {
			for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
				p := filepath.Join(dir, "bin", "ec2-metadata-mock")
				if st, err := os.Stat(p); err == nil && !st.IsDir() {
					aemmPath = p
					return
				}
			}
		}
		aemmDir, aemmErr = os.MkdirTemp("", "aemm-bin-*")
		if aemmErr != nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@"+aemmVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+aemmDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			aemmErr = fmt.Errorf("go install ec2-metadata-mock@%s: %v\n%s", aemmVersion, err, out)
			return
		}
		aemmPath = filepath.Join(aemmDir, "ec2-metadata-mock")
	})
	if aemmErr != nil {
		t.Fatal(aemmErr)
	}
	return aemmPath
}

// freePort asks the kernel for a free port on 127.0.0.1. The emulator only
// takes a port number, so the port is released before it binds it again.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// aemmCredentials is what the emulator is configured to serve.
type aemmCredentials struct {
	Role, AccessKeyID, Secret, Token string
	Expiration                       time.Time
}

// startAEMM runs ec2-metadata-mock in IMDSv2-only mode on 127.0.0.1 serving
// creds, and returns its URL once it answers.
func startAEMM(t *testing.T, creds aemmCredentials) string {
	t.Helper()
	bin := findAEMM(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{
  "metadata": {
    "paths": {"iam-security-credentials": "/latest/meta-data/iam/security-credentials/%s"},
    "values": {
      "iam-security-credentials-role": %q,
      "iam-security-credentials": {
        "Code": "Success", "LastUpdated": %q, "Type": "AWS-HMAC",
        "AccessKeyId": %q, "SecretAccessKey": %q, "Token": %q, "Expiration": %q
      }
    }
  }
}`, creds.Role, creds.Role, time.Now().UTC().Format(time.RFC3339), creds.AccessKeyID, creds.Secret, creds.Token, creds.Expiration.UTC().Format(time.RFC3339))
	cfgPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	var lastErr error
	for try := 0; try < 3; try++ { // the free port may be taken in between
		port := freePort(t)
		var logBuf lockedBuffer
		cmd := exec.Command(bin, "--imdsv2", "-n", "127.0.0.1", "-p", port, "-c", cfgPath)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		url := "http://127.0.0.1:" + port
		if err := waitHTTP(url+"/latest/api/token", exited, 20*time.Second); err != nil {
			stop()
			lastErr = fmt.Errorf("%v; emulator output:\n%s", err, logBuf.String())
			continue
		}
		t.Cleanup(stop)
		return url
	}
	t.Fatalf("ec2-metadata-mock did not start: %v", lastErr)
	return ""
}

// waitHTTP waits until url answers a token PUT (any HTTP answer) or the
// process exits.
func waitHTTP(url string, exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("emulator exited: %v", err)
		default:
		}
		req, _ := http.NewRequest(http.MethodPut, url, nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("emulator exited: %v", err)
		case <-time.After(50 * time.Millisecond): // poll interval while waiting for the port
		}
	}
	return errors.New("emulator did not answer in time")
}

// lockedBuffer collects a child's output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
}

// emfLine is one CloudWatch Embedded Metric Format line, checked against
// the EMF rules: a root _aws object with an integer Timestamp and one
// CloudWatchMetrics directive (namespace, dimension sets, metric
// definitions), and every dimension and metric named there present on the
// root (dimensions as strings, metrics as numbers).
type emfLine struct {
	StreamName string
	Values     map[string]float64 // the metrics the directive declares
}

// readEMF parses the complete lines of an EMF file; an invalid line fails
// the test.
func readEMF(t *testing.T, path string) []emfLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var out []emfLine
	text := string(data)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i] // a line still being written is left for later
	} else {
		return nil
	}
	for n, raw := range strings.Split(text, "\n") {
		l, err := parseEMFLine(raw)
		if err != nil {
			t.Fatalf("%s line %d is not valid EMF: %v\n%s", path, n+1, err, raw)
		}
		out = append(out, l)
	}
	return out
}

func parseEMFLine(raw string) (emfLine, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return emfLine{}, err
	}
	aws, ok := doc["_aws"].(map[string]any)
	if !ok {
		return emfLine{}, errors.New("no _aws object")
	}
	if ts, ok := aws["Timestamp"].(float64); !ok || ts != float64(int64(ts)) || ts <= 0 {
		return emfLine{}, fmt.Errorf("_aws.Timestamp %v is not a positive integer", aws["Timestamp"])
	}
	dirs, ok := aws["CloudWatchMetrics"].([]any)
	if !ok || len(dirs) != 1 {
		return emfLine{}, fmt.Errorf("_aws.CloudWatchMetrics %v: want one directive", aws["CloudWatchMetrics"])
	}
	dir, _ := dirs[0].(map[string]any)
	if ns, _ := dir["Namespace"].(string); ns == "" {
		return emfLine{}, errors.New("directive without Namespace")
	}
	dims, _ := dir["Dimensions"].([]any)
	if len(dims) == 0 {
		return emfLine{}, errors.New("directive without Dimensions")
	}
	for _, set := range dims {
		names, _ := set.([]any)
		for _, n := range names {
			key, _ := n.(string)
			if v, ok := doc[key].(string); !ok || v == "" {
				return emfLine{}, fmt.Errorf("dimension %q missing or empty on the root", key)
			}
		}
	}
	l := emfLine{Values: map[string]float64{}}
	l.StreamName, _ = doc["StreamName"].(string)
	metrics, _ := dir["Metrics"].([]any)
	if len(metrics) == 0 {
		return emfLine{}, errors.New("directive without Metrics")
	}
	for _, m := range metrics {
		def, _ := m.(map[string]any)
		name, _ := def["Name"].(string)
		v, ok := doc[name].(float64)
		if name == "" || !ok {
			return emfLine{}, fmt.Errorf("metric %q declared but not a number on the root", name)
		}
		l.Values[name] = v
	}
	return l, nil
}

// credentialMetrics sums CredentialRefreshFailures over the EMF lines of
// stream and returns the last CredentialSecondsToExpiry (-1 when none).
func credentialMetrics(lines []emfLine, stream string) (failures float64, lastExpiry float64) {
	lastExpiry = -1
	for _, l := range lines {
		if l.StreamName != stream {
			continue
		}
		failures += l.Values["CredentialRefreshFailures"]
		if v, ok := l.Values["CredentialSecondsToExpiry"]; ok {
			lastExpiry = v
		}
	}
	return failures, lastExpiry
}
