package kvssinkstandin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseCredentialFile(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 500_000_000, time.UTC)
	in10m := "2025-06-01T12:10:00Z"
	token2048 := strings.Repeat("t", MaxSessionTokenLen)
	key128 := strings.Repeat("K", MaxAccessKeyLen)

	type want struct {
		status    uint32
		keyID     string
		secret    string
		token     string
		exp       time.Time
		hasExp    bool
		capped    bool
		truncated bool
	}
	tests := []struct {
		name    string
		content string
		want    want
	}{
		{"five tokens", "CREDENTIALS AKIDEXAMPLE " + in10m + " SECRET TOKEN\n",
			want{keyID: "AKIDEXAMPLE", secret: "SECRET", token: "TOKEN", exp: time.Date(2025, 6, 1, 12, 10, 0, 0, time.UTC), hasExp: true}},
		{"four tokens: expiration, no session token", "CREDENTIALS AKID " + in10m + " SECRET",
			want{keyID: "AKID", secret: "SECRET", exp: time.Date(2025, 6, 1, 12, 10, 0, 0, time.UTC), hasExp: true}},
		{"three tokens: no expiration means now+40min", "CREDENTIALS AKID SECRET",
			want{keyID: "AKID", secret: "SECRET", exp: now.Add(40 * time.Minute)}},
		{"any whitespace separates tokens", "\n\t CREDENTIALS\r\nAKID\v" + in10m + "\fSECRET  TOKEN",
			want{keyID: "AKID", secret: "SECRET", token: "TOKEN", exp: time.Date(2025, 6, 1, 12, 10, 0, 0, time.UTC), hasExp: true}},
		{"expiration beyond 40 min is capped", "CREDENTIALS AKID 2025-06-01T18:00:00Z SECRET TOKEN",
			want{keyID: "AKID", secret: "SECRET", token: "TOKEN", exp: now.Add(40 * time.Minute), hasExp: true, capped: true}},
		{"expiration equal to now (same second) accepted", "CREDENTIALS AKID 2025-06-01T12:00:00Z SECRET TOKEN",
			want{keyID: "AKID", secret: "SECRET", token: "TOKEN", exp: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), hasExp: true}},
		{"expiration in the past", "CREDENTIALS AKID 2025-06-01T11:59:59Z SECRET TOKEN", want{status: StatusExpirationInPast}},
		{"fractional seconds rejected", "CREDENTIALS AKID 2025-06-01T12:10:00.000Z SECRET TOKEN", want{status: StatusExpirationFormat}},
		{"offset rejected", "CREDENTIALS AKID 2025-06-01T12:10:00+00:00 SECRET TOKEN", want{status: StatusExpirationFormat}},
		{"missing Z rejected", "CREDENTIALS AKID 2025-06-01T12:10:000 SECRET TOKEN", want{status: StatusExpirationFormat}},
		{"lower-case t rejected", "CREDENTIALS AKID 2025-06-01t12:10:00Z SECRET TOKEN", want{status: StatusExpirationFormat}},
		{"non-digit rejected", "CREDENTIALS AKID 2025-06-0xT12:10:00Z SECRET TOKEN", want{status: StatusExpirationFormat}},
		{"month out of range", "CREDENTIALS AKID 2025-13-01T12:10:00Z SECRET TOKEN", want{status: StatusExpirationParsingFailed}},
		{"hour out of range", "CREDENTIALS AKID 2025-06-01T24:10:00Z SECRET TOKEN", want{status: StatusExpirationParsingFailed}},
		{"epoch seconds are not an expiration", "CREDENTIALS AKID 1748779800 SECRET TOKEN", want{status: StatusExpirationFormat}},
		{"wrong marker", "CREDENTIAL AKID SECRET", want{status: StatusInvalidFileFormat}},
		{"lower-case marker", "credentials AKID SECRET", want{status: StatusInvalidFileFormat}},
		{"empty file", "", want{status: StatusInvalidFileFormat}},
		{"JSON is not the format", `{"AccessKeyId":"AKID","SecretAccessKey":"S"}`, want{status: StatusInvalidFileFormat}},
		{"marker only", "CREDENTIALS", want{status: StatusInvalidAuthLen}},
		{"no secret", "CREDENTIALS AKID", want{status: StatusInvalidAuthLen}},
		{"marker glued to key id is split at 11 chars like fscanf %11s", "CREDENTIALSAKID SECRET",
			want{keyID: "AKID", secret: "SECRET", exp: now.Add(40 * time.Minute)}},
		{"128-char key id fits", "CREDENTIALS " + key128 + " SECRET",
			want{keyID: key128, secret: "SECRET", exp: now.Add(40 * time.Minute)}},
		{"129-char key id spills into the next token", "CREDENTIALS " + key128 + "X SECRET",
			// fscanf reads 128 chars as the key id, then "X" as the third token
			// and "SECRET" as the fourth: "X" becomes an (invalid) expiration.
			want{status: StatusExpirationFormat}},
		{"2048-char token fits", "CREDENTIALS AKID " + in10m + " SECRET " + token2048,
			want{keyID: "AKID", secret: "SECRET", token: token2048, exp: time.Date(2025, 6, 1, 12, 10, 0, 0, time.UTC), hasExp: true}},
		{"2049-char token silently truncated", "CREDENTIALS AKID " + in10m + " SECRET " + token2048 + "Z",
			want{keyID: "AKID", secret: "SECRET", token: token2048, exp: time.Date(2025, 6, 1, 12, 10, 0, 0, time.UTC), hasExp: true, truncated: true}},
		{"file of 9999 bytes accepted", "CREDENTIALS AKID SECRET" + strings.Repeat(" ", 9999-len("CREDENTIALS AKID SECRET")),
			want{keyID: "AKID", secret: "SECRET", exp: now.Add(40 * time.Minute)}},
		{"file of 10000 bytes rejected", "CREDENTIALS AKID SECRET" + strings.Repeat(" ", 10000-len("CREDENTIALS AKID SECRET")),
			want{status: StatusInvalidFileLength}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCredentialFile([]byte(tc.content), now)
			if tc.want.status != 0 {
				if err == nil {
					t.Fatalf("parse succeeded (%+v), want status 0x%08x", got, tc.want.status)
				}
				if s := StatusOf(err); s != tc.want.status {
					t.Fatalf("status 0x%08x (%v), want 0x%08x", s, err, tc.want.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse failed: %v", err)
			}
			if got.AccessKeyID != tc.want.keyID || got.SecretAccessKey != tc.want.secret || got.SessionToken != tc.want.token {
				t.Errorf("got key %q secret %q token len %d, want %q %q len %d",
					got.AccessKeyID, got.SecretAccessKey, len(got.SessionToken), tc.want.keyID, tc.want.secret, len(tc.want.token))
			}
			if !got.Expiration.Equal(tc.want.exp) {
				t.Errorf("expiration %s, want %s", got.Expiration, tc.want.exp)
			}
			if got.HasExpiration != tc.want.hasExp || got.Capped != tc.want.capped || got.TokenTruncated != tc.want.truncated {
				t.Errorf("hasExp/capped/truncated = %v/%v/%v, want %v/%v/%v",
					got.HasExpiration, got.Capped, got.TokenTruncated, tc.want.hasExp, tc.want.capped, tc.want.truncated)
			}
		})
	}
}

func TestReadCredentialFileMissing(t *testing.T) {
	_, err := ReadCredentialFile(filepath.Join(t.TempDir(), "nope"), time.Now())
	if StatusOf(err) != StatusOpenFileFailed {
		t.Fatalf("got %v, want status 0x%08x", err, StatusOpenFileFailed)
	}
}

func TestReadCredentialFileTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credential")
	if err := os.WriteFile(path, []byte("CREDENTIALS A S"+strings.Repeat(" ", 20000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadCredentialFile(path, time.Now())
	if StatusOf(err) != StatusInvalidFileLength {
		t.Fatalf("got %v, want status 0x%08x", err, StatusInvalidFileLength)
	}
}
