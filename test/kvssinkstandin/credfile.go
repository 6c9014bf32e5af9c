package kvssinkstandin

// An independent reading of kvssink's credential file, modelled on
// producer-c's FileCredentialProvider (readFileCredentials) and Util.c
// (convertTimestampToEpoch) as described in /work/shared/kvssink-contract.md.
// It deliberately does not share code with internal/credfile: it exists to
// cross-check the project's writer.
//
// Pure: no clock, no files (except ReadCredentialFile), no GStreamer.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Status codes of producer-c (STATUS_COMMON_PRODUCER_BASE = 0x15000000) that
// the credential file path can produce. StatusExpirationFormat is the code the
// contract gives for an expiration that is not the strict 20-character form.
const (
	StatusExpirationInPast        uint32 = 0x15000017 // STATUS_IOT_EXPIRATION_OCCURS_IN_PAST
	StatusExpirationParsingFailed uint32 = 0x15000018 // STATUS_IOT_EXPIRATION_PARSING_FAILED (field out of range)
	StatusOpenFileFailed          uint32 = 0x15000022 // STATUS_FILE_CREDENTIAL_PROVIDER_OPEN_FILE_FAILED
	StatusInvalidFileLength       uint32 = 0x15000023 // STATUS_FILE_CREDENTIAL_PROVIDER_INVALID_FILE_LENGTH
	StatusInvalidFileFormat       uint32 = 0x15000024 // STATUS_FILE_CREDENTIAL_PROVIDER_INVALID_FILE_FORMAT
	StatusInvalidAuthLen          uint32 = 0x15000025 // STATUS_INVALID_AUTH_LEN (empty key id or secret)
	StatusExpirationFormat        uint32 = 0x16000005 // expiration not YYYY-MM-DDTHH:MM:SSZ
)

// Limits of the file format (producer-c constants).
const (
	MaxCredentialFileLen = 10000 // the file must be strictly shorter
	MaxAccessKeyLen      = 128
	MaxSecretKeyLen      = 128
	MaxExpirationLen     = 128
	MaxSessionTokenLen   = 2048
	// MaxCredentialLifetime caps every expiration (MAX_ENFORCED_TOKEN_EXPIRATION_DURATION);
	// a file without expiration gets exactly this.
	MaxCredentialLifetime = 40 * time.Minute
	// RereadGrace: the file is re-read once now + RereadGrace passes the
	// cached expiration (CREDENTIAL_FILE_READ_GRACE_PERIOD per the contract).
	RereadGrace = 38 * time.Second
	// MinTokenLifetime: a credential with less left than this is refused
	// ("Invalid auth token as it is expiring in less than 30 seconds").
	MinTokenLifetime = 30 * time.Second
)

// StatusError is a producer-c STATUS failure.
type StatusError struct {
	Status uint32
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("status 0x%08x: %s", e.Status, e.Reason)
}

// StatusOf returns the producer-c status carried by err, or 0.
func StatusOf(err error) uint32 {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// FileCredential is what kvssink would take from one read of the file.
type FileCredential struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Expiration is the effective expiration: the file's (or now + 40 min
	// when it has none), capped at now + 40 min.
	Expiration    time.Time
	HasExpiration bool // the file carried an expiration token
	Capped        bool // the file's expiration was later than now + 40 min
	// TokenTruncated: the session token was longer than 2048 characters and
	// kvssink silently keeps only the first 2048, which breaks signing.
	TokenTruncated bool
	// TrailingData: characters after the fifth token, which kvssink ignores.
	TrailingData bool
}

// ReadCredentialFile opens and parses path like kvssink does at start and at
// each lazy re-read.
func ReadCredentialFile(path string, now time.Time) (FileCredential, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileCredential{}, &StatusError{StatusOpenFileFailed, fmt.Sprintf("cannot open credential file %q: %v", path, err)}
	}
	defer f.Close()
	// Read one byte past the limit: enough to tell a too-long file.
	data, err := io.ReadAll(io.LimitReader(f, MaxCredentialFileLen+1))
	if err != nil {
		return FileCredential{}, &StatusError{StatusOpenFileFailed, fmt.Sprintf("cannot read credential file %q: %v", path, err)}
	}
	return ParseCredentialFile(data, now)
}

// ParseCredentialFile parses the content of a credential file as read at
// time now. The token layout follows fscanf("%11s %128s %128s %128s %2048s"):
// an over-long token is split at the width and its rest becomes the next
// token, exactly as in C.
func ParseCredentialFile(data []byte, now time.Time) (FileCredential, error) {
	if len(data) >= MaxCredentialFileLen {
		return FileCredential{}, &StatusError{StatusInvalidFileLength, fmt.Sprintf("credential file is %d bytes, must be under %d", len(data), MaxCredentialFileLen)}
	}
	widths := []int{11, MaxAccessKeyLen, MaxExpirationLen, MaxSecretKeyLen, MaxSessionTokenLen}
	tokens, rest := scanTokens(data, widths)
	var cred FileCredential
	if len(rest) > 0 {
		if !isCSpace(rest[0]) {
			cred.TokenTruncated = len(tokens) == 5
		}
		cred.TrailingData = true
	}
	get := func(i int) string {
		if i < len(tokens) {
			return tokens[i]
		}
		return ""
	}
	marker, keyID, third, fourth, fifth := get(0), get(1), get(2), get(3), get(4)

	var expiration, secret, token string
	hasExpiration := false
	if fourth == "" {
		// CREDENTIALS <key id> <secret>
		secret = third
	} else {
		expiration, secret, token = third, fourth, fifth
		hasExpiration = true
	}
	if marker != "CREDENTIALS" {
		return FileCredential{}, &StatusError{StatusInvalidFileFormat, fmt.Sprintf("first token is %q, want CREDENTIALS", marker)}
	}

	limit := now.Add(MaxCredentialLifetime)
	exp := limit
	if hasExpiration {
		e, err := parseExpiration(expiration, now)
		if err != nil {
			return FileCredential{}, err
		}
		exp = e
		if exp.After(limit) {
			exp = limit
			cred.Capped = true
		}
	}
	if keyID == "" || secret == "" {
		return FileCredential{}, &StatusError{StatusInvalidAuthLen, "access key id or secret access key is empty"}
	}
	cred.AccessKeyID = keyID
	cred.SecretAccessKey = secret
	cred.SessionToken = token
	cred.Expiration = exp
	cred.HasExpiration = hasExpiration
	return cred, nil
}

// scanTokens splits data into at most len(widths) whitespace-separated
// tokens, each at most widths[i] bytes, like a chain of fscanf %Ns
// conversions; it returns what the conversions did not consume. A NUL byte
// ends a token's C string (fscanf stores it, strcmp/strlen stop there).
func scanTokens(data []byte, widths []int) (tokens []string, rest []byte) {
	i := 0
	for _, w := range widths {
		for i < len(data) && isCSpace(data[i]) {
			i++
		}
		if i >= len(data) {
			return tokens, nil
		}
		start := i
		for i < len(data) && !isCSpace(data[i]) && i-start < w {
			i++
		}
		tok := string(data[start:i])
		if nul := strings.IndexByte(tok, 0); nul >= 0 {
			tok = tok[:nul]
		}
		tokens = append(tokens, tok)
	}
	return tokens, data[i:]
}

// isCSpace is C's isspace in the "C" locale.
func isCSpace(b byte) bool {
	switch b {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// parseExpiration accepts exactly YYYY-MM-DDTHH:MM:SSZ (UTC) and refuses an
// expiration before now (compared in whole seconds, as producer-c does).
func parseExpiration(s string, now time.Time) (time.Time, error) {
	bad := func(why string) error {
		return &StatusError{StatusExpirationFormat, fmt.Sprintf("expiration %q is not YYYY-MM-DDTHH:MM:SSZ: %s", s, why)}
	}
	if len(s) != 20 {
		return time.Time{}, bad(fmt.Sprintf("%d characters, want 20", len(s)))
	}
	seps := map[int]byte{4: '-', 7: '-', 10: 'T', 13: ':', 16: ':', 19: 'Z'}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	for pos, want := range seps {
		if s[pos] != want {
			return time.Time{}, bad(fmt.Sprintf("character %d is %q, want %q", pos+1, s[pos], want))
		}
	}
	fields := [][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}}
	var v [6]int
	for i, f := range fields {
		n, ok := num(f[0], f[1])
		if !ok {
			return time.Time{}, bad(fmt.Sprintf("non-digit in %q", s[f[0]:f[1]]))
		}
		v[i] = n
	}
	year, month, day, hour, minute, sec := v[0], v[1], v[2], v[3], v[4], v[5]
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, &StatusError{StatusExpirationParsingFailed, fmt.Sprintf("expiration %q has a field out of range", s)}
	}
	// time.Date normalises (Feb 30 -> Mar 2, second 60) like mktime.
	exp := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if exp.Unix() < now.Unix() {
		return time.Time{}, &StatusError{StatusExpirationInPast, fmt.Sprintf("expiration %s is in the past (now %s)", s, now.UTC().Format(time.RFC3339))}
	}
	return exp, nil
}
