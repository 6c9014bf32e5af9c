package credfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrRefused marks errors about the credentials themselves (invalid, or too
// close to expiry), as opposed to errors of the file system.
var ErrRefused = errors.New("credentials refused")

// fileKeyword is the mandatory first token of the file.
const fileKeyword = "CREDENTIALS"

// Encode renders c in kvssink's file format, one line ending in "\n":
//
//	CREDENTIALS <akid> <YYYY-MM-DDTHH:MM:SSZ> <secret> <token>
//
// or the 4-token form without <token> when SessionToken is empty. The
// expiration is converted to UTC and truncated to whole seconds (truncating
// only ever makes it earlier, which is safe).
//
// Errors name the offending field and never contain the secret or the token.
func Encode(c Credentials) ([]byte, error) {
	if err := validate(c); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(fileKeyword)
	b.WriteByte(' ')
	b.WriteString(c.AccessKeyID)
	b.WriteByte(' ')
	b.WriteString(c.Expires.UTC().Format(ExpirationLayout))
	b.WriteByte(' ')
	b.WriteString(c.SecretAccessKey)
	if c.SessionToken != "" {
		b.WriteByte(' ')
		b.WriteString(c.SessionToken)
	}
	b.WriteByte('\n')
	if b.Len() >= MaxFileSize {
		// Unreachable with the field limits above, kept as a guard should
		// they ever change.
		return nil, fmt.Errorf("credfile: encoded file is %d bytes, kvssink accepts fewer than %d", b.Len(), MaxFileSize)
	}
	return b.Bytes(), nil
}

func validate(c Credentials) error {
	if err := checkToken("access key id", c.AccessKeyID, MaxAccessKeyIDLen, true); err != nil {
		return err
	}
	if err := checkToken("secret access key", c.SecretAccessKey, MaxSecretAccessKeyLen, true); err != nil {
		return err
	}
	if err := checkToken("session token", c.SessionToken, MaxSessionTokenLen, false); err != nil {
		return err
	}
	if c.Expires.IsZero() {
		return fmt.Errorf("%w: expiration is missing (kvssink would assume now+40 min)", ErrRefused)
	}
	if s := c.Expires.UTC().Format(ExpirationLayout); len(s) != len(ExpirationLayout) {
		return fmt.Errorf("%w: expiration %s cannot be written in the 20-character form kvssink requires", ErrRefused, s)
	}
	return nil
}

// checkToken validates one token of the file. kvssink reads tokens with
// fscanf("%s"), so any whitespace would split a value; control and non-ASCII
// bytes never occur in AWS keys or tokens and are refused as corruption.
// Messages give lengths and offsets only, never the value.
func checkToken(field, v string, maxLen int, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("%w: %s is empty", ErrRefused, field)
		}
		return nil
	}
	if len(v) > maxLen {
		return fmt.Errorf("%w: %s is %d characters long, kvssink accepts at most %d (longer values are silently truncated and break request signing)", ErrRefused, field, len(v), maxLen)
	}
	for i := 0; i < len(v); i++ {
		if ch := v[i]; ch <= ' ' || ch > '~' {
			return fmt.Errorf("%w: %s contains whitespace or a non-printable character at offset %d", ErrRefused, field, i)
		}
	}
	return nil
}

// Decode parses a credential file the way kvssink does (strictly): the
// keyword, then 4 or 5 tokens with a 20-character UTC expiration. The
// 3-token form without an expiration is refused because this project always
// writes one. Decode exists so tests and tools can check what was written;
// its errors never contain the secret or the token.
func Decode(data []byte) (Credentials, error) {
	if len(data) >= MaxFileSize {
		return Credentials{}, fmt.Errorf("credfile: file is %d bytes, kvssink accepts fewer than %d", len(data), MaxFileSize)
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 || fields[0] != fileKeyword {
		return Credentials{}, fmt.Errorf("credfile: file does not start with %q", fileKeyword)
	}
	if len(fields) != 4 && len(fields) != 5 {
		return Credentials{}, fmt.Errorf("credfile: file has %d tokens after %s, want 3 or 4 (with expiration)", len(fields)-1, fileKeyword)
	}
	exp := fields[2]
	if len(exp) != len(ExpirationLayout) {
		return Credentials{}, fmt.Errorf("credfile: expiration %q is not in the 20-character form YYYY-MM-DDTHH:MM:SSZ", exp)
	}
	t, err := time.Parse(ExpirationLayout, exp)
	if err != nil {
		return Credentials{}, fmt.Errorf("credfile: expiration %q is not in the form YYYY-MM-DDTHH:MM:SSZ", exp)
	}
	c := Credentials{AccessKeyID: fields[1], Expires: t, SecretAccessKey: fields[3]}
	if len(fields) == 5 {
		c.SessionToken = fields[4]
	}
	if err := validate(c); err != nil {
		return Credentials{}, err
	}
	return c, nil
}
