package imdsfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/manualclock"
)

func do(t *testing.T, method, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func token(t *testing.T, s *Server) string {
	t.Helper()
	code, tok := do(t, http.MethodPut, s.URL()+PathToken, map[string]string{HeaderTokenTTL: "60"})
	if code != 200 || tok == "" {
		t.Fatalf("token: %d %q", code, tok)
	}
	return tok
}

func TestTokenFlowAndRotation(t *testing.T) {
	clk := manualclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s := Start(t, Options{Lifetime: time.Hour, RotateBefore: 10 * time.Minute, Now: clk.Now})

	if code, _ := do(t, http.MethodGet, s.URL()+PathRoleList, nil); code != http.StatusUnauthorized {
		t.Fatalf("GET without token: %d, want 401", code)
	}
	if code, _ := do(t, http.MethodPut, s.URL()+PathToken, nil); code != http.StatusBadRequest {
		t.Fatalf("PUT token without TTL: %d, want 400", code)
	}
	tok := token(t, s)
	h := map[string]string{HeaderToken: tok}
	code, list := do(t, http.MethodGet, s.URL()+PathRoleList, h)
	if code != 200 || list != "kvsrelay-test-role" {
		t.Fatalf("role list: %d %q", code, list)
	}
	get := func() credentialDoc {
		// A fresh token each time: the fake clock jumps past the 60 s TTL.
		code, body := do(t, http.MethodGet, s.URL()+PathRole("kvsrelay-test-role"), map[string]string{HeaderToken: token(t, s)})
		if code != 200 {
			t.Fatalf("role: %d", code)
		}
		var d credentialDoc
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := get()
	if first.Code != "Success" || first.Type != "AWS-HMAC" || first.Expiration != "2026-03-01T13:00:00Z" || !strings.HasPrefix(first.AccessKeyID, "ASIA") {
		t.Fatalf("document %+v", first)
	}
	clk.Advance(49 * time.Minute) // 11 min left: same credentials
	if again := get(); again.AccessKeyID != first.AccessKeyID {
		t.Fatal("rotated with more than RotateBefore left")
	}
	clk.Advance(2 * time.Minute) // 9 min left: rotate
	second := get()
	if second.AccessKeyID == first.AccessKeyID || second.Expiration != "2026-03-01T13:51:00Z" {
		t.Fatalf("no rotation: %+v", second)
	}
	is, ok := s.Lookup(first.AccessKeyID)
	if !ok || !is.Expiration.Equal(time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)) || is.SecretAccessKey != first.SecretAccessKey {
		t.Fatalf("Lookup(first) = %+v, %v", is, ok)
	}
	if n := len(s.Issued()); n != 2 {
		t.Fatalf("%d issued, want 2", n)
	}
	if code, _ := do(t, http.MethodGet, s.URL()+PathRoleList, h); code != http.StatusUnauthorized {
		t.Fatalf("GET with an expired token: %d, want 401", code)
	}
	if s.Requests(PathToken) != 5 || s.Requests(PathRole("kvsrelay-test-role")) != 3 {
		t.Fatalf("counts: token %d role %d", s.Requests(PathToken), s.Requests(PathRole("kvsrelay-test-role")))
	}
	h = map[string]string{HeaderToken: token(t, s)}
	if code, _ := do(t, http.MethodGet, s.URL()+PathRole("other"), h); code != 404 {
		t.Fatalf("unknown role: %d", code)
	}
	s.SetRoles(nil)
	if code, _ := do(t, http.MethodGet, s.URL()+PathRoleList, h); code != 404 {
		t.Fatalf("no roles: %d", code)
	}
}

func TestFaults(t *testing.T) {
	s := Start(t, Options{})
	tok := token(t, s)
	h := map[string]string{HeaderToken: tok}
	role := s.URL() + PathRole("kvsrelay-test-role")

	s.SetFault(FaultServerError)
	if code, _ := do(t, http.MethodGet, role, h); code != 500 {
		t.Fatalf("server error fault: %d", code)
	}
	s.SetFault(FaultThrottle)
	if code, _ := do(t, http.MethodGet, role, h); code != 429 {
		t.Fatalf("throttle fault: %d", code)
	}
	s.SetFault(FaultMalformed)
	if code, body := do(t, http.MethodGet, role, h); code != 200 || json.Valid([]byte(body)) {
		t.Fatalf("malformed fault: %d %q", code, body)
	}
	s.SetFault(FaultIMDSv1Only)
	if code, _ := do(t, http.MethodPut, s.URL()+PathToken, map[string]string{HeaderTokenTTL: "60"}); code != 404 {
		t.Fatalf("v1-only token: %d", code)
	}
	if code, _ := do(t, http.MethodGet, role, nil); code != 200 {
		t.Fatalf("v1-only GET without token: %d", code)
	}
	s.SetFault(FaultConnRefused)
	client := &http.Client{Timeout: 5 * time.Second}
	if resp, err := client.Get(role); err == nil {
		resp.Body.Close()
		t.Fatal("request succeeded while connections are refused")
	}
	s.SetFault(FaultHang)
	hang := &http.Client{Timeout: 200 * time.Millisecond}
	if resp, err := hang.Get(role); err == nil {
		resp.Body.Close()
		t.Fatal("request answered while hanging")
	}
	s.SetFault(FaultNone)
	if code, _ := do(t, http.MethodGet, role, h); code != 200 {
		t.Fatalf("healed: %d", code)
	}
}

func TestFaultExpired(t *testing.T) {
	clk := manualclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s := Start(t, Options{Lifetime: time.Hour, Now: clk.Now})
	tok := token(t, s)
	get := func() credentialDoc {
		t.Helper()
		code, body := do(t, http.MethodGet, s.URL()+PathRole("kvsrelay-test-role"), map[string]string{HeaderToken: tok})
		var doc credentialDoc
		if code != 200 || json.Unmarshal([]byte(body), &doc) != nil {
			t.Fatalf("credentials: %d %q", code, body)
		}
		return doc
	}
	good := get()
	s.SetFault(FaultExpired)
	bad := get()
	if bad.AccessKeyID != good.AccessKeyID || bad.SecretAccessKey != good.SecretAccessKey || bad.Token != good.Token {
		t.Fatal("FaultExpired did not serve the current credentials")
	}
	if want := clk.Now().Add(-time.Minute).Format(rfc3339Seconds); bad.Expiration != want {
		t.Fatalf("expiration %s, want %s", bad.Expiration, want)
	}
	if iss := s.Issued(); len(iss) != 1 || !iss[0].Expiration.After(clk.Now()) {
		t.Fatalf("issued %+v: the fault must not change what was issued", iss)
	}
}
