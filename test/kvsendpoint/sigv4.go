package kvsendpoint

// AWS Signature Version 4 as the endpoint checks it: parse the
// Authorization header, and, when the secret is known, rebuild the
// canonical request and compare signatures.
//
// Payload hash: the KVS producer SDK signs JSON calls over their body and
// the streaming PutMedia call as if the body were empty (its body is not
// known when the request is signed); the aws-sdk-go-v2 signer takes
// whatever hash the caller passes. The endpoint therefore accepts the hash
// of the body it read (control plane), the hash of an empty body, or the
// value of an X-Amz-Content-Sha256 header the client signed.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	sigAlgorithm   = "AWS4-HMAC-SHA256"
	sigService     = "kinesisvideo"
	sigTerminator  = "aws4_request"
	amzDateLayout  = "20060102T150405Z"
	amzDayLayout   = "20060102"
	headerAmzDate  = "X-Amz-Date"
	headerAmzToken = "X-Amz-Security-Token"
	headerAmzHash  = "X-Amz-Content-Sha256"
	// maxClockSkew is how far a request's X-Amz-Date may be from the
	// endpoint's clock, as AWS allows.
	maxClockSkew = 15 * time.Minute
)

// emptySHA256 is the hex SHA-256 of an empty payload.
var emptySHA256 = hexSHA256(nil)

// authorization is a parsed SigV4 Authorization header.
type authorization struct {
	AccessKeyID   string
	Day           string // YYYYMMDD of the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

// parseAuthorization parses
// "AWS4-HMAC-SHA256 Credential=AKID/day/region/service/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(h string) (authorization, error) {
	var a authorization
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != sigAlgorithm {
		return a, fmt.Errorf("authorization header does not start with %s", sigAlgorithm)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, fmt.Errorf("authorization component %q is not key=value", part)
		}
		fields[k] = v
	}
	cred, sh, sig := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if cred == "" || sh == "" || sig == "" {
		return a, fmt.Errorf("authorization header lacks Credential, SignedHeaders or Signature")
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[0] == "" || scope[4] != sigTerminator {
		return a, fmt.Errorf("credential scope is not AKID/date/region/service/%s", sigTerminator)
	}
	a.AccessKeyID, a.Day, a.Region, a.Service = scope[0], scope[1], scope[2], scope[3]
	if _, err := time.Parse(amzDayLayout, a.Day); err != nil {
		return a, fmt.Errorf("credential scope date %q: %w", a.Day, err)
	}
	a.SignedHeaders = strings.Split(sh, ";")
	a.Signature = strings.ToLower(sig)
	if _, err := hex.DecodeString(a.Signature); err != nil || len(a.Signature) != 64 {
		return a, fmt.Errorf("signature is not 64 hex digits")
	}
	return a, nil
}

// requestTime is the signing time from X-Amz-Date.
func requestTime(r *http.Request) (time.Time, error) {
	v := r.Header.Get(headerAmzDate)
	if v == "" {
		return time.Time{}, fmt.Errorf("no %s header", headerAmzDate)
	}
	t, err := time.Parse(amzDateLayout, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: %w", headerAmzDate, v, err)
	}
	return t, nil
}

// signedHeaderValue is the value the client saw for a signed header. Go's
// server moves some headers out of r.Header.
func signedHeaderValue(r *http.Request, name string) (string, bool) {
	switch name {
	case "host":
		return r.Host, r.Host != ""
	case "transfer-encoding":
		if v := r.Header.Values("Transfer-Encoding"); len(v) > 0 {
			return strings.Join(v, ","), true
		}
		return strings.Join(r.TransferEncoding, ","), len(r.TransferEncoding) > 0
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v, true
		}
		if r.ContentLength >= 0 && len(r.TransferEncoding) == 0 {
			return strconv.FormatInt(r.ContentLength, 10), true
		}
		return "", false
	}
	vals := r.Header.Values(name)
	if len(vals) == 0 {
		return "", false
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ") // trim and collapse spaces
	}
	return strings.Join(vals, ","), true
}

// canonicalRequest builds the SigV4 canonical request for r, in the order
// of a.SignedHeaders, with payloadHash as the last line.
func canonicalRequest(r *http.Request, a authorization, payloadHash string) (string, error) {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(path + "\n")
	b.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, name := range a.SignedHeaders {
		v, ok := signedHeaderValue(r, name)
		if !ok {
			return "", fmt.Errorf("signed header %q is not in the request", name)
		}
		b.WriteString(name + ":" + v + "\n")
	}
	b.WriteString("\n" + strings.Join(a.SignedHeaders, ";") + "\n")
	b.WriteString(payloadHash)
	return b.String(), nil
}

func canonicalQuery(q url.Values) string {
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, awsURIEncode(k)+"="+awsURIEncode(v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

// awsURIEncode percent-encodes everything but A-Z a-z 0-9 - _ . ~.
func awsURIEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// signature computes the SigV4 signature of a canonical request.
func signature(secret, amzDate string, a authorization, canonical string) string {
	scope := a.Day + "/" + a.Region + "/" + a.Service + "/" + sigTerminator
	toSign := sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + hexSHA256([]byte(canonical))
	key := hmacSHA256([]byte("AWS4"+secret), a.Day)
	key = hmacSHA256(key, a.Region)
	key = hmacSHA256(key, a.Service)
	key = hmacSHA256(key, sigTerminator)
	return hex.EncodeToString(hmacSHA256(key, toSign))
}

// verifySignature reports whether a's signature matches r signed with
// secret, under any of the accepted payload hashes.
func verifySignature(r *http.Request, a authorization, secret string, payloadHashes []string) (bool, error) {
	amzDate := r.Header.Get(headerAmzDate)
	for _, h := range payloadHashes {
		canonical, err := canonicalRequest(r, a, h)
		if err != nil {
			return false, err
		}
		want := signature(secret, amzDate, a, canonical)
		if hmac.Equal([]byte(want), []byte(a.Signature)) {
			return true, nil
		}
	}
	return false, nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
