package credfakes

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/manualclock"
)

func TestIssuerRotates(t *testing.T) {
	clk := manualclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	i := NewIssuer(IssuerOptions{Lifetime: time.Hour, RotateBefore: 10 * time.Minute, Now: clk.Now})
	first := i.Current()
	clk.Advance(49 * time.Minute)
	if i.Current().AccessKeyID != first.AccessKeyID {
		t.Fatal("rotated with more than RotateBefore left")
	}
	clk.Advance(2 * time.Minute)
	second := i.Current()
	if second.AccessKeyID == first.AccessKeyID || !second.Expiration.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("no rotation: %+v", second)
	}
	if is, ok := i.Lookup(first.AccessKeyID); !ok || is.SecretAccessKey != first.SecretAccessKey || len(i.Issued()) != 2 {
		t.Fatalf("Lookup(first) = %v; %d issued", ok, len(i.Issued()))
	}
}

func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestContainerAuthorization(t *testing.T) {
	c := StartContainer(t, ContainerOptions{Flavor: FlavorEKSPodIdentity, Token: "tok"})
	if code, _ := get(t, c.FullURI(), ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := get(t, c.FullURI(), "other"); code != http.StatusForbidden {
		t.Fatalf("wrong token: %d", code)
	}
	code, body := get(t, c.FullURI(), "tok")
	var doc map[string]string
	if code != 200 || json.Unmarshal([]byte(body), &doc) != nil || doc["AccountId"] == "" || doc["RoleArn"] != "" {
		t.Fatalf("EKS answer %d %q", code, body)
	}
	if c.Refused() != 2 || c.Requests() != 3 {
		t.Fatalf("refused %d of %d", c.Refused(), c.Requests())
	}
}

func postSTS(t *testing.T, s *STSServer, form url.Values) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).PostForm(s.URL()+"/", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSTSWebIdentityChecks(t *testing.T) {
	s := StartSTS(t, STSOptions{RoleARN: IRSARoleARN})
	s.AcceptToken("good", time.Now().Add(time.Hour))
	s.AcceptToken("old", time.Now().Add(-time.Second))
	form := func(role, tok string) url.Values {
		return url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}, "RoleArn": {role},
			"RoleSessionName": {"s"}, "WebIdentityToken": {tok}}
	}
	for _, tt := range []struct {
		role, tok string
		code      int
		want      string
	}{
		{IRSARoleARN, "good", 200, "<AccessKeyId>ASIA"},
		{IRSARoleARN, "old", 400, "<Code>ExpiredTokenException</Code>"},
		{IRSARoleARN, "unknown", 400, "<Code>InvalidIdentityToken</Code>"},
		{"arn:aws:iam::123456789012:role/other", "good", 400, "<Code>AccessDenied</Code>"},
	} {
		code, body := postSTS(t, s, form(tt.role, tt.tok))
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s/%s: %d %s, want %d with %s", tt.role, tt.tok, code, body, tt.code, tt.want)
		}
	}
	if s.Refused() != 3 || len(s.Issued()) != 1 {
		t.Fatalf("refused %d, issued %d", s.Refused(), len(s.Issued()))
	}
}

// RunProcess, in process: Version 1 output that rotates, and the faults.
func TestRunProcess(t *testing.T) {
	dir := t.TempDir()
	p := &Process{dir: dir, tb: t}
	data, _ := NewIssuer(IssuerOptions{}).marshal()
	p.write(processStateFile, data)
	run := func(f Fault) (int, string) {
		p.SetFault(f)
		var out, errOut bytes.Buffer
		code := RunProcess(dir, &out, &errOut)
		return code, out.String()
	}
	code, out := run(FaultNone)
	var doc processOutput
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Version != 1 {
		t.Fatalf("healthy run: %d %q", code, out)
	}
	if is, ok := p.Lookup(doc.AccessKeyID); !ok || is.SecretAccessKey != doc.SecretAccessKey {
		t.Fatal("output not recorded as issued")
	}
	for f, want := range map[Fault]int{FaultDown: 1, FaultServerError: 2} {
		if code, out := run(f); code != want || out != "" {
			t.Errorf("%s: exit %d output %q, want exit %d", f, code, out, want)
		}
	}
	if code, out := run(FaultMalformed); code != 0 || json.Valid([]byte(out)) || !strings.Contains(out, doc.SecretAccessKey) {
		t.Errorf("malformed: %d %q", code, out)
	}
	if p.Runs() != 4 {
		t.Fatalf("%d runs counted, want 4", p.Runs())
	}
	if _, err := os.Stat(filepath.Join(dir, processLockFile)); err != nil {
		t.Fatal(err)
	}
}
