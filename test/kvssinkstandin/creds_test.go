package kvssinkstandin

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestResolveCredentials(t *testing.T) {
	goodRead := func(string, time.Time) (FileCredential, error) {
		return FileCredential{AccessKeyID: "AKIAFILE0001", SecretAccessKey: "s", Expiration: t0.Add(time.Hour)}, nil
	}
	badRead := func(string, time.Time) (FileCredential, error) {
		return FileCredential{}, &StatusError{StatusInvalidFileFormat, "bad"}
	}
	opens := func(string) bool { return true }
	missing := func(string) bool { return false }
	base := credentialSettings{accessKey: defaultAccessKey, secretKey: defaultSecretKey, sessionToken: defaultSessionToken,
		credentialPath: ".kvs/credential"}
	withKey := base
	withKey.accessKey, withKey.secretKey = "AKIAPROP0001", "propsecret"
	withIoT := base
	withIoT.iotCertificate = true
	keyOnly := base // access-key set, secret-key left at its placeholder
	keyOnly.accessKey = "AKIAPROP0001"
	secretOnly := base // secret-key alone counts for nothing
	secretOnly.secretKey = "propsecret"
	expiringRead := func(left time.Duration) func(string, time.Time) (FileCredential, error) {
		return func(string, time.Time) (FileCredential, error) {
			return FileCredential{AccessKeyID: "AKIAFILE0001", SecretAccessKey: "s", Expiration: t0.Add(left)}, nil
		}
	}

	tests := []struct {
		name       string
		s          credentialSettings
		env        map[string]string
		read       func(string, time.Time) (FileCredential, error)
		opens      func(string) bool
		wantSource string
		wantErr    string
	}{
		{"file when nothing else", base, nil, goodRead, opens, SourceFile, ""},
		{"iot certificate wins over everything", withIoT, map[string]string{"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B"}, goodRead, opens, SourceIoT, ""},
		{"access-key property wins over env and file", withKey, map[string]string{"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B"}, goodRead, opens, SourceStatic, ""},
		{"env pair silently wins over the file", base, map[string]string{"AWS_ACCESS_KEY_ID": "AKIAENV00001", "AWS_SECRET_ACCESS_KEY": "B"}, goodRead, opens, SourceEnv, ""},
		{"env key without secret falls back to the file", base, map[string]string{"AWS_ACCESS_KEY_ID": "AKIAENV00001"}, goodRead, opens, SourceFile, ""},
		{"env vars set to empty still count as set", base, map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, goodRead, opens, SourceEnv, "empty access key id"},
		{"bad file fails start", base, nil, badRead, opens, SourceFile, textRotatingProvider},
		{"no file, no keys", base, nil, goodRead, missing, "", textNoCredentials},
		{"access-key set with secret-key left at its placeholder", keyOnly, nil, goodRead, opens, SourceStatic, `secret-key is still its placeholder "secret_key"`},
		{"secret-key without access-key is ignored", secretOnly, nil, goodRead, opens, SourceFile, ""},
		{"access-key set to its placeholder is ignored", base, map[string]string{"AWS_ACCESS_KEY_ID": "AKIAENV00001", "AWS_SECRET_ACCESS_KEY": "B"}, goodRead, opens, SourceEnv, ""},
		{"file credential with 30 s left starts", base, nil, expiringRead(30 * time.Second), opens, SourceFile, ""},
		{"file credential with under 30 s left fails start", base, nil, expiringRead(29 * time.Second), opens, SourceFile, "status 0x52000049: " + textExpiringSoon},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := resolveCredentials(tc.s, env(tc.env), t0, tc.read, tc.opens)
			if c.source != tc.wantSource {
				t.Errorf("source %q, want %q", c.source, tc.wantSource)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestResolveCredentialsSessionToken(t *testing.T) {
	withEnv := env(map[string]string{"AWS_SESSION_TOKEN": "tok"})
	tests := []struct {
		name        string
		property    string
		env         func(string) (string, bool)
		wantToken   bool
		wantFromEnv bool
	}{
		{"placeholder: AWS_SESSION_TOKEN is used", defaultSessionToken, withEnv, true, true},
		{"placeholder and no AWS_SESSION_TOKEN: no token", defaultSessionToken, env(nil), false, false},
		{"property set: it wins over AWS_SESSION_TOKEN", "proptoken", withEnv, true, false},
		{"property set to empty: no token, AWS_SESSION_TOKEN ignored", "", withEnv, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := credentialSettings{accessKey: "AKIAPROP0001", secretKey: "x", sessionToken: tc.property}
			c, err := resolveCredentials(s, tc.env, t0, nil, nil)
			if err != nil || c.sessionToken != tc.wantToken || c.tokenFromEnv != tc.wantFromEnv {
				t.Fatalf("got %+v %v: want session token %v, from env %v", c, err, tc.wantToken, tc.wantFromEnv)
			}
		})
	}
}

// fakeFile serves successive reads of the credential file.
type fakeFile struct {
	creds []FileCredential
	errs  []error
	reads int
}

func (f *fakeFile) read(string, time.Time) (FileCredential, error) {
	i := f.reads
	f.reads++
	if i < len(f.errs) && f.errs[i] != nil {
		return FileCredential{}, f.errs[i]
	}
	if i < len(f.creds) {
		return f.creds[i], nil
	}
	return FileCredential{}, &StatusError{StatusOpenFileFailed, "gone"}
}

func TestFileProviderRereadsLazily(t *testing.T) {
	first := FileCredential{AccessKeyID: "AKIAFIRST001", Expiration: t0.Add(10 * time.Minute)}
	second := FileCredential{AccessKeyID: "AKIASECOND01", Expiration: t0.Add(50 * time.Minute)}
	ff := &fakeFile{creds: []FileCredential{second}}
	p := &credentialProvider{source: SourceFile, path: "f", read: ff.read, cur: first}

	// Well before expiry - 38 s: no read.
	r := p.atFrame(t0.Add(10*time.Minute - 39*time.Second))
	if !r.ok || r.accessKey != first.AccessKeyID || ff.reads != 0 {
		t.Fatalf("39 s before expiry: %+v reads=%d, want the first key and no read", r, ff.reads)
	}
	// now + 38 s passes the expiration: the file is re-read.
	r = p.atFrame(t0.Add(10*time.Minute - 37*time.Second))
	if !r.ok || r.accessKey != second.AccessKeyID || ff.reads != 1 || len(r.reads) != 1 || !r.reads[0].OK {
		t.Fatalf("37 s before expiry: %+v reads=%d, want a re-read giving the second key", r, ff.reads)
	}
}

func TestFileProviderLapses(t *testing.T) {
	cur := FileCredential{AccessKeyID: "AKIAFIRST001", Expiration: t0.Add(time.Minute)}
	tests := []struct {
		name       string
		file       *fakeFile
		at         time.Duration // after t0
		wantOK     bool
		wantStatus uint32 // of the lapse, or of the failed read when wantOK
	}{
		{"failed re-read while the old one has over 30 s left is a stream error, frames go on", &fakeFile{errs: []error{&StatusError{StatusInvalidFileFormat, "x"}}}, 25 * time.Second, true, StatusInvalidFileFormat},
		{"failed re-read with under 30 s left lapses with the read's status", &fakeFile{errs: []error{&StatusError{StatusInvalidFileFormat, "x"}}}, 31 * time.Second, false, StatusInvalidFileFormat},
		{"re-read giving a credential with under 30 s left lapses", &fakeFile{creds: []FileCredential{{AccessKeyID: "AKIASHORT001", Expiration: t0.Add(50 * time.Second)}}}, 25 * time.Second, false, StatusTokenExpired},
		{"same file re-read (not refreshed) lapses at 30 s before expiry", &fakeFile{creds: []FileCredential{cur, cur}}, 31 * time.Second, false, StatusTokenExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &credentialProvider{source: SourceFile, path: "f", read: tc.file.read, cur: cur}
			r := p.atFrame(t0.Add(tc.at))
			if r.ok != tc.wantOK {
				t.Fatalf("ok=%v, want %v (%+v)", r.ok, tc.wantOK, r)
			}
			if tc.wantOK {
				if r.accessKey != cur.AccessKeyID || r.lapse != nil {
					t.Fatalf("%+v: want the cached key and no lapse", r)
				}
				if r.readFailure == nil || r.readFailure.status != tc.wantStatus {
					t.Fatalf("read failure %+v, want a stream error with status 0x%08x", r.readFailure, tc.wantStatus)
				}
				// Every failed re-read is one.
				if r := p.atFrame(t0.Add(tc.at + time.Second)); !r.ok || r.readFailure == nil || tc.file.reads != 2 {
					t.Fatalf("second frame: %+v reads %d, want another failed re-read and stream error", r, tc.file.reads)
				}
				return
			}
			if r.readFailure != nil {
				t.Errorf("read failure %+v reported beside the lapse: one stream error is due", r.readFailure)
			}
			if r.lapse == nil || r.lapse.status != tc.wantStatus {
				t.Fatalf("lapse %+v, want status 0x%08x", r.lapse, tc.wantStatus)
			}
			if !strings.Contains(r.lapse.message, textSecurityTokenGone) {
				t.Errorf("lapse message %q does not name the 403", r.lapse.message)
			}
			// Once lapsed, a fresh file is never read again.
			reads := tc.file.reads
			tc.file.creds = append(tc.file.creds, FileCredential{AccessKeyID: "AKIAFRESH001", Expiration: t0.Add(time.Hour)})
			if r := p.atFrame(t0.Add(tc.at + time.Second)); r.ok || r.lapse != nil || tc.file.reads != reads {
				t.Fatalf("after the lapse: %+v reads %d->%d, want dead and no read", r, reads, tc.file.reads)
			}
		})
	}
}

func TestStaticCredentialsExpire(t *testing.T) {
	p := &credentialProvider{source: SourceEnv, staticKey: "AKIASTATIC01", staticExpires: t0.Add(time.Minute)}
	if r := p.atFrame(t0); !r.ok || r.accessKey != "AKIASTATIC01" {
		t.Fatalf("before expiry: %+v", r)
	}
	r := p.atFrame(t0.Add(time.Minute))
	if r.ok || r.lapse == nil || r.lapse.status != StatusTokenExpired {
		t.Fatalf("at expiry: %+v, want a lapse", r)
	}
	never := &credentialProvider{source: SourceStatic, staticKey: "AKIASTATIC01"}
	if r := never.atFrame(t0.Add(100 * time.Hour)); !r.ok {
		t.Fatalf("static keys without a known expiry must be accepted: %+v", r)
	}
}

func TestMaskKey(t *testing.T) {
	for in, want := range map[string]string{"AKIAIOSFODNN7EXAMPLE": "****************MPLE", "ABCD": "****", "": "****"} {
		if got := MaskKey(in); got != want {
			t.Errorf("MaskKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusOf(t *testing.T) {
	err := errors.Join(errors.New("x"), &StatusError{StatusInvalidAuthLen, "y"})
	if StatusOf(err) != StatusInvalidAuthLen {
		t.Fatal("StatusOf does not unwrap")
	}
}
