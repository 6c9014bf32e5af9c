// Package credfile writes the credential file that kvssink reads through its
// `credential-path` property (producer-c FileCredentialProvider).
//
// The format is one line of whitespace-separated tokens:
//
//	CREDENTIALS <access-key-id> <expiration> <secret-access-key> [<session-token>]
//
// where <expiration> is exactly 20 characters, YYYY-MM-DDTHH:MM:SSZ in UTC.
// kvssink reads the file once at NULL->READY and then again, lazily, whenever
// now+38 s passes the expiration it cached, so the file must always hold
// credentials with plenty of life left and must be replaced atomically.
package credfile

import (
	"fmt"
	"log/slog"
	"time"
)

// Limits enforced by kvssink's reader. Longer values are not rejected by
// kvssink but silently truncated, which produces signatures AWS refuses, so
// the writer refuses them instead.
const (
	MaxAccessKeyIDLen     = 128
	MaxSecretAccessKeyLen = 128
	MaxSessionTokenLen    = 2048
	// MaxFileSize is kvssink's file size limit (the file must be smaller).
	MaxFileSize = 10000
)

// ExpirationLayout is the only expiration form kvssink accepts: exactly 20
// characters, UTC, no fractional seconds, no numeric offset.
const ExpirationLayout = "2006-01-02T15:04:05Z"

// Credentials is one set of temporary AWS credentials. Its String, GoString,
// Format and LogValue methods print only the masked access key id and the
// expiration, so a Credentials value may be logged or wrapped in an error
// without leaking the secret key or session token.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Expires is when AWS stops accepting the credentials. Required: kvssink
	// would otherwise assume now+40 min, which may be later than reality.
	Expires time.Time
}

// MaskKeyID hides all but the last 4 characters of an access key id:
// "ASIAEXAMPLEKEYABCD" -> "****ABCD". Ids of 4 characters or fewer are fully
// hidden ("****"); an empty id gives "" so "no key" stays visible.
func MaskKeyID(id string) string {
	switch {
	case id == "":
		return ""
	case len(id) <= 4:
		return "****"
	default:
		return "****" + id[len(id)-4:]
	}
}

// String describes the credentials without secrets.
func (c Credentials) String() string {
	exp := "none"
	if !c.Expires.IsZero() {
		exp = c.Expires.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("credentials{key=%s expires=%s}", MaskKeyID(c.AccessKeyID), exp)
}

// GoString makes %#v print the same masked description.
func (c Credentials) GoString() string { return c.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, %x...) print the masked
// description; without it %+v would print the struct fields verbatim.
func (c Credentials) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", c.String())
	default:
		_, _ = f.Write([]byte(c.String()))
	}
}

// LogValue keeps log/slog from printing the fields.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_key_id", MaskKeyID(c.AccessKeyID)),
		slog.Time("expires", c.Expires.UTC()),
	)
}

// SameAs reports whether c and o are the same credentials (same key, secret,
// token and expiration). Used to notice that IMDS has not rotated yet.
func (c Credentials) SameAs(o Credentials) bool {
	return c.AccessKeyID == o.AccessKeyID &&
		c.SecretAccessKey == o.SecretAccessKey &&
		c.SessionToken == o.SessionToken &&
		c.Expires.Equal(o.Expires)
}
