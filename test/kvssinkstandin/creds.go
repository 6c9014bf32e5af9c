package kvssinkstandin

// Which credentials kvssink uses (resolveCredentials, read once at
// NULL->READY) and whether it still has a usable one when a frame is put
// (credentialProvider.atFrame). Pure: the clock and the environment are
// parameters.

import (
	"errors"
	"fmt"
	"time"
)

// errEmptyStaticKeys: static keys were chosen but one of them is empty.
var errEmptyStaticKeys = errors.New("static credentials have an empty access key id or secret key")

// errPlaceholderSecret: the access-key property is set but secret-key still
// holds its placeholder, which kvssink then signs with.
var errPlaceholderSecret = errors.New(`the access-key property is set but secret-key is still its placeholder "` +
	defaultSecretKey + `"`)

// Credential sources as recorded in the report.
const (
	SourceIoT    = "iot"
	SourceStatic = "static" // access-key/secret-key properties
	SourceEnv    = "env"    // AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
	SourceFile   = "file"   // credential-path
)

// StatusInvalidTokenExpiration (STATUS_INVALID_TOKEN_EXPIRATION) is what
// kvssink fails with when the credential it starts with has under 30 s left:
// it cannot get a streaming token for the calls made at NULL->READY.
const StatusInvalidTokenExpiration uint32 = 0x52000049

// StatusTokenExpired is what the stand-in reports (stream-error signal,
// report) when uploads would start failing with HTTP 403 "The security token
// included in the request is expired" and no file re-read could help.
const StatusTokenExpired uint32 = StatusExpirationInPast

// Texts kvssink logs or posts on the credential paths.
const (
	textNoCredentials     = "Could not find any AWS credentials!"
	textRotatingProvider  = "Unable to create Rotating Credential provider"
	textExpiringSoon      = "Invalid auth token as it is expiring in less than 30 seconds"
	textSecurityTokenGone = "The security token included in the request is expired"
)

// credentialSettings is the part of the property snapshot that picks credentials.
type credentialSettings struct {
	iotCertificate bool
	accessKey      string
	secretKey      string
	sessionToken   string
	credentialPath string
}

// credentialChoice is the outcome of resolveCredentials.
type credentialChoice struct {
	source       string
	accessKeyID  string // static/env only
	sessionToken bool   // a session token came with static/env keys
	tokenFromEnv bool
	fileInitial  *FileCredential // file only: the read done at start
	fileRead     CredentialRead  // file only: the record of that read
}

// resolveCredentials applies kvssink's order: iot-certificate, then static
// keys (property changed from "access_key", else AWS_ACCESS_KEY_ID +
// AWS_SECRET_ACCESS_KEY present in the environment, even if empty: kvssink
// only checks getenv() != NULL), then credential-path if the file opens.
// The error text is what kvssink puts after "Failed to init kvs producer. Error: ".
func resolveCredentials(s credentialSettings, lookupEnv func(string) (string, bool), now time.Time,
	read func(path string, now time.Time) (FileCredential, error), fileOpens func(string) bool) (credentialChoice, error) {
	if s.iotCertificate {
		return credentialChoice{source: SourceIoT}, nil
	}
	static := func(source, key, secret string) (credentialChoice, error) {
		c := credentialChoice{source: source, accessKeyID: key}
		// Like the access key, the session-token property counts only once
		// changed from its placeholder (even to ""); otherwise
		// AWS_SESSION_TOKEN, when set.
		if s.sessionToken != defaultSessionToken {
			c.sessionToken = s.sessionToken != ""
		} else if tok, ok := lookupEnv("AWS_SESSION_TOKEN"); ok {
			c.sessionToken = tok != ""
			c.tokenFromEnv = true
		}
		if key == "" || secret == "" {
			// kvssink accepts empty static keys and then fails every signed
			// call (stream creation retries, then start fails).
			return c, fmt.Errorf("%w (source %s): kvssink would fail every signed request; "+
				"an environment variable set to \"\" still counts as set", errEmptyStaticKeys, source)
		}
		if source == SourceStatic && secret == defaultSecretKey {
			// kvssink takes secret-key as it is whenever access-key is set.
			return c, fmt.Errorf("%w: kvssink signs every request with that literal secret and the service refuses them (HTTP 403)",
				errPlaceholderSecret)
		}
		return c, nil
	}
	if s.accessKey != defaultAccessKey {
		return static(SourceStatic, s.accessKey, s.secretKey)
	}
	key, keyOK := lookupEnv("AWS_ACCESS_KEY_ID")
	secret, secretOK := lookupEnv("AWS_SECRET_ACCESS_KEY")
	if keyOK && secretOK {
		return static(SourceEnv, key, secret)
	}
	if s.credentialPath != "" && fileOpens(s.credentialPath) {
		cred, err := read(s.credentialPath, now)
		rec := newCredentialRead(now, cred, err)
		if err != nil {
			return credentialChoice{source: SourceFile, fileRead: rec},
				fmt.Errorf("%s (file %q): %w", textRotatingProvider, s.credentialPath, err)
		}
		choice := credentialChoice{source: SourceFile, fileInitial: &cred, fileRead: rec}
		if left := cred.Expiration.Sub(now); left < MinTokenLifetime {
			// Stream creation at NULL->READY needs a streaming token, which
			// is refused for a credential with under 30 s left.
			return choice, &StatusError{StatusInvalidTokenExpiration, fmt.Sprintf(
				"%s: credential %s from %q expires %s, %v from now (STATUS_INVALID_TOKEN_EXPIRATION)",
				textExpiringSoon, MaskKey(cred.AccessKeyID), s.credentialPath,
				cred.Expiration.UTC().Format(time.RFC3339), left.Round(time.Second))}
		}
		return choice, nil
	}
	return credentialChoice{}, fmt.Errorf("%s", textNoCredentials)
}

// newCredentialRead records one read of the credential file.
func newCredentialRead(now time.Time, cred FileCredential, err error) CredentialRead {
	rec := CredentialRead{Time: now, OK: err == nil, Count: 1}
	if err != nil {
		rec.Error = err.Error()
		rec.Status = fmt.Sprintf("0x%08x", StatusOf(err))
		return rec
	}
	rec.AccessKeyID = MaskKey(cred.AccessKeyID)
	exp := cred.Expiration
	rec.Expiration = &exp
	rec.TokenTruncated = cred.TokenTruncated
	return rec
}

// lapse describes the moment credentials ran out.
type lapse struct {
	status  uint32
	message string
}

// credentialProvider answers, for each frame, which access key signs it, or
// that none can.
type credentialProvider struct {
	source string
	path   string
	read   func(path string, now time.Time) (FileCredential, error)

	cur           FileCredential // file source: the cached credential
	staticKey     string
	staticExpires time.Time // static/env: when the session token expires (zero: unknown)

	lapsed bool
}

// frameCredential is the provider's answer for one frame.
type frameCredential struct {
	ok        bool
	accessKey string           // unmasked; the caller masks it
	reads     []CredentialRead // file re-reads done for this frame
	lapse     *lapse           // set on the frame where credentials ran out
	// readFailure is set when a re-read failed but the cached credential
	// still has 30 s or more: a stream error, and the frame goes on.
	readFailure *lapse
}

// atFrame is called for every frame kvssink would put. A file credential is
// re-read once now + 38 s passes its expiration; a re-read that fails is a
// stream error with the read's status; a credential with under 30 s left
// cannot get a streaming token. Once credentials have lapsed the stream is
// dead: later files are never read (as observed with the real element).
func (p *credentialProvider) atFrame(now time.Time) frameCredential {
	if p.lapsed {
		return frameCredential{}
	}
	switch p.source {
	case SourceIoT:
		return frameCredential{ok: true, accessKey: "iot"}
	case SourceStatic, SourceEnv:
		if !p.staticExpires.IsZero() && !now.Before(p.staticExpires) {
			p.lapsed = true
			return frameCredential{lapse: &lapse{StatusTokenExpired,
				fmt.Sprintf("static session credentials expired at %s and are never refreshed: HTTP 403 %q",
					p.staticExpires.UTC().Format(time.RFC3339), textSecurityTokenGone)}}
		}
		return frameCredential{ok: true, accessKey: p.staticKey}
	}
	var out frameCredential
	var readErr error
	if now.Add(RereadGrace).After(p.cur.Expiration) {
		cred, err := p.read(p.path, now)
		out.reads = append(out.reads, newCredentialRead(now, cred, err))
		if err == nil {
			p.cur = cred
		} else {
			readErr = err
		}
	}
	if p.cur.Expiration.Sub(now) < MinTokenLifetime {
		p.lapsed = true
		status := StatusTokenExpired
		why := fmt.Sprintf("%s (credential %s expires %s)", textExpiringSoon, MaskKey(p.cur.AccessKeyID),
			p.cur.Expiration.UTC().Format(time.RFC3339))
		if readErr != nil {
			status = StatusOf(readErr)
			why += fmt.Sprintf("; re-reading %q failed: %v", p.path, readErr)
		}
		out.lapse = &lapse{status, fmt.Sprintf("%s; uploads fail with HTTP 403 %q", why, textSecurityTokenGone)}
		return out
	}
	if readErr != nil {
		out.readFailure = &lapse{StatusOf(readErr), fmt.Sprintf("re-reading %q failed: %v; still signing with %s (expires %s)",
			p.path, readErr, MaskKey(p.cur.AccessKeyID), p.cur.Expiration.UTC().Format(time.RFC3339))}
	}
	out.ok = true
	out.accessKey = p.cur.AccessKeyID
	return out
}

// MaskKey hides all but the last 4 characters of an access key id.
func MaskKey(key string) string {
	if len(key) <= 4 {
		return "****"
	}
	masked := make([]byte, len(key)-4)
	for i := range masked {
		masked[i] = '*'
	}
	return string(masked) + key[len(key)-4:]
}
