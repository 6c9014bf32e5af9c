package credfile

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	testKeyID  = "ASIAEXAMPLEKEYABCD"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
	testToken  = "IQoJb3JpZ2luX2VjEXAMPLETOKEN+/=="
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sample() Credentials {
	return Credentials{
		AccessKeyID:     testKeyID,
		SecretAccessKey: testSecret,
		SessionToken:    testToken,
		Expires:         testNow.Add(6 * time.Hour),
	}
}

func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{testSecret, testToken, testKeyID} {
		if strings.Contains(s, secret) {
			t.Fatalf("output leaks a secret value: %q", s)
		}
	}
}

func TestMaskKeyID(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"AB":                 "****",
		"ABCD":               "****",
		"ASIAEXAMPLEKEYABCD": "****ABCD",
	} {
		if got := MaskKeyID(in); got != want {
			t.Errorf("MaskKeyID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	c := sample()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		out := fmt.Sprintf(verb, c)
		assertNoSecret(t, out)
		if verb != "%x" && verb != "%q" && !strings.Contains(out, "****ABCD") {
			t.Errorf("%s: %q does not show the masked key id", verb, out)
		}
	}
	// Pointers and nested structs go through the same Format method.
	assertNoSecret(t, fmt.Sprintf("%+v", struct{ C Credentials }{c}))
	assertNoSecret(t, fmt.Sprintf("%v", &c))

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("creds", "c", c)
	assertNoSecret(t, buf.String())
	if !strings.Contains(buf.String(), "****ABCD") {
		t.Errorf("slog output %q lacks masked key id", buf.String())
	}
}

func TestEncode(t *testing.T) {
	exp := time.Date(2026, 3, 1, 18, 4, 5, 987654321, time.FixedZone("CET", 3600))
	long := func(n int) string { return strings.Repeat("A", n) }
	tests := []struct {
		name    string
		mod     func(*Credentials)
		want    string
		wantErr string
	}{
		{name: "with token", want: "CREDENTIALS " + testKeyID + " 2026-03-01T17:04:05Z " + testSecret + " " + testToken + "\n"},
		{name: "without token", mod: func(c *Credentials) { c.SessionToken = "" }, want: "CREDENTIALS " + testKeyID + " 2026-03-01T17:04:05Z " + testSecret + "\n"},
		{name: "max lengths", mod: func(c *Credentials) {
			c.AccessKeyID, c.SecretAccessKey, c.SessionToken = long(128), long(128), long(2048)
		}, want: "CREDENTIALS " + long(128) + " 2026-03-01T17:04:05Z " + long(128) + " " + long(2048) + "\n"},
		{name: "empty key id", mod: func(c *Credentials) { c.AccessKeyID = "" }, wantErr: "access key id is empty"},
		{name: "empty secret", mod: func(c *Credentials) { c.SecretAccessKey = "" }, wantErr: "secret access key is empty"},
		{name: "space in secret", mod: func(c *Credentials) { c.SecretAccessKey = "abc def" }, wantErr: "secret access key contains whitespace"},
		{name: "newline in token", mod: func(c *Credentials) { c.SessionToken = testToken + "\nX" }, wantErr: "session token contains whitespace"},
		{name: "tab in key id", mod: func(c *Credentials) { c.AccessKeyID = "ASIA\tX" }, wantErr: "access key id contains whitespace"},
		{name: "key id too long", mod: func(c *Credentials) { c.AccessKeyID = long(129) }, wantErr: "access key id is 129 characters long"},
		{name: "secret too long", mod: func(c *Credentials) { c.SecretAccessKey = long(129) }, wantErr: "secret access key is 129 characters long"},
		{name: "token too long", mod: func(c *Credentials) { c.SessionToken = long(2049) }, wantErr: "session token is 2049 characters long"},
		{name: "no expiration", mod: func(c *Credentials) { c.Expires = time.Time{} }, wantErr: "expiration is missing"},
		{name: "five digit year", mod: func(c *Credentials) { c.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, wantErr: "20-character form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sample()
			c.Expires = exp
			if tt.mod != nil {
				tt.mod(&c)
			}
			got, err := Encode(c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Encode error = %v, want it to contain %q", err, tt.wantErr)
				}
				assertNoSecret(t, err.Error())
				return
			}
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("Encode =\n%q\nwant\n%q", got, tt.want)
			}
			back, err := Decode(got)
			if err != nil {
				t.Fatalf("Decode(Encode()): %v", err)
			}
			if !back.SameAs(Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Expires: c.Expires.Truncate(time.Second)}) {
				t.Fatalf("round trip changed credentials: %v", back)
			}
		})
	}
}

func TestDecodeRejectsWhatKvssinkRejects(t *testing.T) {
	for name, in := range map[string]string{
		"wrong keyword":      "CREDENTIAL AKID 2026-03-01T17:04:05Z SECRET\n",
		"fractional seconds": "CREDENTIALS AKID 2026-03-01T17:04:05.000Z SECRET\n",
		"offset":             "CREDENTIALS AKID 2026-03-01T17:04:05+00:00 SECRET\n",
		"no expiration":      "CREDENTIALS AKID SECRET\n",
		"too many tokens":    "CREDENTIALS AKID 2026-03-01T17:04:05Z SECRET TOKEN EXTRA\n",
		"empty":              "",
	} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: Decode(%q) succeeded, want error", name, in)
		}
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "kvsrelay")
	path := filepath.Join(dir, "credential")

	if err := Write(path, sample(), testNow); err != nil {
		t.Fatalf("Write: %v", err)
	}
	assertMode(t, dir, DirMode)
	assertMode(t, path, FileMode)
	assertFileHolds(t, path, sample())

	// Replacing keeps mode and leaves no temporary files behind.
	next := sample()
	next.AccessKeyID = "ASIANEXTKEY00000WXYZ"
	next.Expires = testNow.Add(7 * time.Hour)
	if err := Write(path, next, testNow); err != nil {
		t.Fatalf("second Write: %v", err)
	}
	assertFileHolds(t, path, next)
	assertMode(t, path, FileMode)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("folder holds %d entries after two writes, want only the credential file", len(entries))
	}
}

func TestWriteRefusesAndKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credential")
	good := sample()
	if err := Write(path, good, testNow); err != nil {
		t.Fatalf("Write: %v", err)
	}
	tests := []struct {
		name    string
		mod     func(*Credentials)
		wantErr string
	}{
		{"expired", func(c *Credentials) { c.Expires = testNow.Add(-time.Minute) }, "already expired"},
		{"expires now", func(c *Credentials) { c.Expires = testNow }, "already expired"},
		{"two minutes left", func(c *Credentials) { c.Expires = testNow.Add(MinRemaining) }, "need more than 2m0s"},
		{"empty secret", func(c *Credentials) { c.SecretAccessKey = "" }, "secret access key is empty"},
		{"empty key", func(c *Credentials) { c.AccessKeyID = "" }, "access key id is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sample()
			c.AccessKeyID = "ASIAOTHERKEY0000QQQQ"
			tt.mod(&c)
			err := Write(path, c, testNow)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Write error = %v, want one naming %s and containing %q", err, path, tt.wantErr)
			}
			assertNoSecret(t, err.Error())
			assertFileHolds(t, path, good)
		})
	}
	if err := Write(path, func() Credentials { c := sample(); c.Expires = testNow.Add(MinRemaining + time.Second); return c }(), testNow); err != nil {
		t.Fatalf("credentials with just over MinRemaining left refused: %v", err)
	}
}

func TestWriteUnwritableFolder(t *testing.T) {
	base := t.TempDir()
	notAFolder := filepath.Join(base, "file")
	if err := os.WriteFile(notAFolder, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Write(filepath.Join(notAFolder, "credential"), sample(), testNow)
	if err == nil || !strings.Contains(err.Error(), "credential folder "+notAFolder) {
		t.Fatalf("Write into a file-as-folder: error = %v, want one naming the folder %s", err, notAFolder)
	}

	err = Write(filepath.Join(notAFolder, "sub", "credential"), sample(), testNow)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(notAFolder, "sub")) {
		t.Fatalf("Write below a file: error = %v, want one naming the folder", err)
	}

	if os.Geteuid() != 0 { // root ignores permission bits
		ro := filepath.Join(base, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		err = Write(filepath.Join(ro, "credential"), sample(), testNow)
		if err == nil || !strings.Contains(err.Error(), "credential folder "+ro+" is not writable") {
			t.Fatalf("Write into read-only folder: error = %v", err)
		}
	}
}

func TestWriteEmptyPath(t *testing.T) {
	if err := Write("", sample(), testNow); err == nil {
		t.Fatal("Write with empty path succeeded")
	}
}

func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credential")
	if err := Remove(path); err != nil {
		t.Fatalf("Remove of missing file: %v", err)
	}
	if err := Write(path, sample(), testNow); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file still there after Remove: %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"systemd single", map[string]string{"RUNTIME_DIRECTORY": "/run/kvsrelay", "XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/kvsrelay"},
		{"systemd list", map[string]string{"RUNTIME_DIRECTORY": "/run/a:/run/b"}, "/run/a"},
		{"xdg", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/kvsrelay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefaultDir(env(tt.env))
			if err != nil || got != tt.want {
				t.Fatalf("DefaultDir = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("temp fallback", func(t *testing.T) {
		t.Setenv("TMPDIR", t.TempDir())
		got, err := DefaultDir(env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(filepath.Base(got), "kvsrelay-cred-") {
			t.Fatalf("DefaultDir fallback = %q, want a kvsrelay-cred-* folder", got)
		}
		assertMode(t, got, DirMode)
	})
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Fatalf("%s has mode %o, want %o", path, got, want)
	}
}

func assertFileHolds(t *testing.T, path string, want Credentials) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	if !got.SameAs(want) {
		t.Fatalf("%s holds %v, want %v", path, got, want)
	}
}

// An existing folder others may write to is refused with an error naming it
// and its mode; one they may only list is used, with a warning.
func TestFolderModes(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702, 0o1777} {
		dir := filepath.Join(t.TempDir(), "shared")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		err := Write(filepath.Join(dir, "credential"), sample(), testNow)
		want := fmt.Sprintf("credential folder %s has mode %04o", dir, mode.Perm())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("mode %o: Write error = %v, want one containing %q", mode, err, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "credential")); !os.IsNotExist(err) {
			t.Fatalf("mode %o: a file was written: %v", mode, err)
		}
	}
	for mode, warn := range map[os.FileMode]bool{0o755: true, 0o750: true, 0o711: true, 0o700: false} {
		dir := filepath.Join(t.TempDir(), "run")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := Write(filepath.Join(dir, "credential"), sample(), testNow); err != nil {
			t.Fatalf("mode %o: Write: %v", mode, err)
		}
		got := FolderWarning(dir)
		if warn != (got != "") || (warn && !strings.Contains(got, fmt.Sprintf("%s has mode %04o", dir, mode))) {
			t.Fatalf("mode %o: FolderWarning = %q, want a warning: %v", mode, got, warn)
		}
	}
	if w := FolderWarning(filepath.Join(t.TempDir(), "missing")); w != "" {
		t.Fatalf("FolderWarning of a missing folder = %q", w)
	}
}
