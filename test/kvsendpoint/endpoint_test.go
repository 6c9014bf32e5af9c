package kvsendpoint

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
)

const testRegion = "us-west-2"

// fetchCredentials gets credentials from the fake IMDS the way an EC2
// instance does (IMDSv2 token, role list, role).
func fetchCredentials(t *testing.T, imds *imdsfake.Server) aws.Credentials {
	t.Helper()
	do := func(method, path string, hdr map[string]string) string {
		req, err := http.NewRequest(method, imds.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("IMDS %s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	token := do(http.MethodPut, imdsfake.PathToken, map[string]string{imdsfake.HeaderTokenTTL: "60"})
	role := strings.Fields(do(http.MethodGet, imdsfake.PathRoleList, map[string]string{imdsfake.HeaderToken: token}))[0]
	var doc struct{ AccessKeyId, SecretAccessKey, Token string }
	if err := json.Unmarshal([]byte(do(http.MethodGet, imdsfake.PathRole(role), map[string]string{imdsfake.HeaderToken: token})), &doc); err != nil {
		t.Fatal(err)
	}
	return aws.Credentials{AccessKeyID: doc.AccessKeyId, SecretAccessKey: doc.SecretAccessKey, SessionToken: doc.Token}
}

// startTrusting starts an endpoint that accepts what imds issued.
func startTrusting(t *testing.T, imds *imdsfake.Server) *Server {
	return Start(t, Options{Validate: ValidateIssued(imds), Secret: SecretIssued(imds), Region: testRegion})
}

// client talks to the endpoint like kvssink, signing with aws-sdk-go-v2.
type client struct {
	t     *testing.T
	url   string
	creds aws.Credentials
	http  *http.Client
}

func newClient(t *testing.T, url string, creds aws.Credentials) *client {
	tr := &http.Transport{ExpectContinueTimeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, url: url, creds: creds, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (c *client) sign(req *http.Request, payloadHash string) {
	c.t.Helper()
	if err := v4.NewSigner().SignHTTP(context.Background(), c.creds, req, payloadHash, "kinesisvideo", testRegion, time.Now()); err != nil {
		c.t.Fatal(err)
	}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.status, a.body)
	}
	return m
}

// call makes a signed control-plane call.
func (c *client) call(path string, body any) answer {
	c.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.url+path, bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	c.sign(req, hexSHA256(b))
	return c.do(req)
}

func (c *client) do(req *http.Request) answer {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s: reading the answer: %v", req.URL.Path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// putMediaRequest is a putMedia request with kvssink's headers, streaming
// body chunked, signed (like the producer SDK) over an empty payload.
func (c *client) putMediaRequest(stream string, body io.Reader) *http.Request {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.url+PathPutMedia, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.ContentLength = -1 // chunked, as kvssink sends it
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("x-amzn-stream-name", stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
	req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%d.%03d", time.Now().Unix(), time.Now().Nanosecond()/1e6))
	req.Header.Set("x-amzn-fragment-acknowledgment-required", "1")
	c.sign(req, emptySHA256)
	return req
}

// ackLine is one acknowledgement as read by the client.
type ackLine struct {
	ack
	bodyDone bool // the request body had ended when this line arrived
}

// readAcks reads acknowledgement lines until the answer ends.
func readAcks(t *testing.T, r io.Reader, bodyDone *atomic.Bool) []ackLine {
	t.Helper()
	var acks []ackLine
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var a ack
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("acknowledgement %q is not JSON: %v", sc.Text(), err)
		}
		acks = append(acks, ackLine{ack: a, bodyDone: bodyDone.Load()})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading acknowledgements: %v", err)
	}
	return acks
}

// eofFlag sets done once the wrapped reader has returned EOF.
type eofFlag struct {
	r    io.Reader
	done *atomic.Bool
}

func (e eofFlag) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.done.Store(true)
	}
	return n, err
}

// liveMKV starts gst-launch-1.0 producing a live H.264 MKV stream on its
// stdout, the way kvssink's input looks after matroskamux.
func liveMKV(t *testing.T) io.Reader {
	t.Helper()
	cmd := exec.Command("gst-launch-1.0", "-q", "videotestsrc", "num-buffers=60", "is-live=true", "!",
		"video/x-raw,width=160,height=120,framerate=30/1", "!",
		"x264enc", "tune=zerolatency", "speed-preset=ultrafast", "key-int-max=15", "!", "h264parse", "!",
		"matroskamux", "streamable=true", "!", "fdsink", "fd=1")
	cmd.Env = append(os.Environ(), "GST_REGISTRY="+filepath.Join(t.TempDir(), "registry.bin"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = &bytes.Buffer{}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting gst-launch-1.0: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gst-launch-1.0 stderr: %s", cmd.Stderr)
		}
	})
	return out
}

// The whole kvssink sequence against the endpoint: describe (404), create,
// describe, tag, get the data endpoint, then a live putMedia whose
// acknowledgements come back per cluster while the upload runs.
func TestKVSSequenceAndLivePutMedia(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	imds := imdsfake.Start(t, imdsfake.Options{})
	ep := startTrusting(t, imds)
	creds := fetchCredentials(t, imds)
	c := newClient(t, ep.URL(), creds)
	const stream = "endpoint-test"

	a := c.call(PathDescribeStream, map[string]string{"StreamName": stream})
	if a.status != http.StatusNotFound || a.json(t)["__type"] != "ResourceNotFoundException" || a.json(t)["Message"] == nil {
		t.Fatalf("describe of a missing stream: %d %s", a.status, a.body)
	}
	a = c.call(PathCreateStream, map[string]any{"DeviceName": "kvs-test", "StreamName": stream, "MediaType": "video/h264",
		"DataRetentionInHours": 2})
	arn, _ := a.json(t)["StreamARN"].(string)
	if a.status != http.StatusOK || !strings.HasPrefix(arn, "arn:aws:kinesisvideo:"+testRegion+":") {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	if a := c.call(PathCreateStream, map[string]any{"StreamName": stream}); a.status != http.StatusBadRequest {
		t.Errorf("second create: %d %s, want 400 ResourceInUseException", a.status, a.body)
	}
	a = c.call(PathDescribeStream, map[string]string{"StreamName": stream})
	info, _ := a.json(t)["StreamInfo"].(map[string]any)
	if a.status != http.StatusOK || info["Status"] != "ACTIVE" || info["StreamARN"] != arn || info["StreamName"] != stream ||
		info["DataRetentionInHours"] != float64(2) {
		t.Fatalf("describe: %d %s", a.status, a.body)
	}
	if a := c.call(PathTagStream, map[string]any{"StreamARN": arn, "Tags": map[string]string{"camera": "front"}}); a.status != http.StatusOK {
		t.Fatalf("tag: %d %s", a.status, a.body)
	}
	a = c.call(PathGetDataEndpoint, map[string]string{"StreamName": stream, "APIName": "PUT_MEDIA"})
	if a.status != http.StatusOK || a.json(t)["DataEndpoint"] != ep.URL() {
		t.Fatalf("getDataEndpoint: %d %s, want DataEndpoint %s", a.status, a.body, ep.URL())
	}
	if st := ep.Streams(); len(st) != 1 || st[0].Tags["camera"] != "front" || st[0].MediaType != "video/h264" {
		t.Fatalf("streams recorded: %+v", st)
	}

	// putMedia: the body is gst-launch's live output, also kept in a file
	// for ffprobe to say what the clusters should be.
	recording := filepath.Join(t.TempDir(), "upload.mkv")
	file, err := os.Create(recording)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var bodyDone atomic.Bool
	req := c.putMediaRequest(stream, eofFlag{r: io.TeeReader(liveMKV(t), file), done: &bodyDone})
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("putMedia: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("putMedia: %d %s", resp.StatusCode, b)
	}
	acks := readAcks(t, resp.Body, &bodyDone)
	file.Close()

	packets := harness.ProbePackets(t, recording)
	var keyframes []harness.Packet
	for _, p := range packets {
		if p.Key {
			keyframes = append(keyframes, p)
		}
	}
	frags := ep.Fragments(stream)
	if len(frags) != len(keyframes) || len(frags) < 3 {
		t.Fatalf("%d fragments recorded for %d keyframes in %d packets", len(frags), len(keyframes), len(packets))
	}
	frames := 0
	for i, f := range frags {
		frames += f.Frames
		wantTC := keyframes[i].PTS.Milliseconds()
		if d := f.Timecode - wantTC; d < -1 || d > 1 || !f.KeyframeFirst || f.Keyframes != 1 || !f.Complete || !f.Persisted() {
			t.Errorf("fragment %d: timecode %d ms (keyframe at %d ms), keyframe first %v, %d keyframes, complete %v, events %v",
				i, f.Timecode, wantTC, f.KeyframeFirst, f.Keyframes, f.Complete, f.Events)
		}
		if len(f.CodecPrivate) == 0 || !bytes.Equal(f.CodecPrivate, frags[0].CodecPrivate) || f.AccessKeyID != creds.AccessKeyID {
			t.Errorf("fragment %d: codec private %x (first %x), key %s", i, f.CodecPrivate, frags[0].CodecPrivate, MaskKey(f.AccessKeyID))
		}
	}
	if frames != len(packets) {
		t.Errorf("fragments hold %d frames, the stream %d", frames, len(packets))
	}

	// Three acknowledgements per fragment, in order, with its timecode and
	// number; the first ones while the body was still being sent.
	if len(acks) != 3*len(frags) {
		t.Fatalf("%d acknowledgements for %d fragments: %+v", len(acks), len(frags), acks)
	}
	for i, f := range frags {
		for j, want := range []string{"BUFFERING", "RECEIVED", "PERSISTED"} {
			got := acks[3*i+j]
			if got.EventType != want || got.FragmentTimecode != f.Timecode || got.FragmentNumber != f.Number {
				t.Errorf("ack %d: %+v, want %s for fragment %d (%d, %s)", 3*i+j, got.ack, want, i, f.Timecode, f.Number)
			}
		}
		if _, err := strconv.ParseUint(f.Number[len(f.Number)-18:], 10, 64); err != nil || (i > 0 && f.Number <= frags[i-1].Number) {
			t.Errorf("fragment numbers not increasing digits: %q after %q", f.Number, frags[max(i-1, 0)].Number)
		}
	}
	if acks[2].bodyDone {
		t.Errorf("the first fragment was acknowledged only after the upload ended; acknowledgements must stream")
	}

	sessions := ep.Sessions(stream)
	if len(sessions) != 1 || sessions[0].Active() || sessions[0].Err != "" || sessions[0].AccessKeyID != creds.AccessKeyID ||
		sessions[0].FragmentTimecodeType != "ABSOLUTE" || !sessions[0].AckRequired || sessions[0].Fragments != len(frags) ||
		len(sessions[0].Tracks) != 1 || sessions[0].Tracks[0].CodecID != "V_MPEG4/ISO/AVC" {
		t.Errorf("sessions: %+v", sessions)
	}
	var paths []string
	for _, call := range ep.Calls() {
		paths = append(paths, fmt.Sprintf("%s:%d", call.Path, call.Status))
	}
	want := "/describeStream:404 /createStream:200 /createStream:400 /describeStream:200 /tagStream:200 /getDataEndpoint:200 /putMedia:200"
	if strings.Join(paths, " ") != want {
		t.Errorf("calls\n got %s\nwant %s", strings.Join(paths, " "), want)
	}
	if r := ep.Rejections(); len(r) != 0 {
		t.Errorf("rejections: %+v", r)
	}
}

// Requests whose credentials AWS would refuse get AWS's 403 answers, and
// nothing is recorded as uploaded.
func TestCredentialFailuresAnswer403(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	imds := imdsfake.Start(t, imdsfake.Options{})
	// A second IMDS whose clock is 7 hours behind issues credentials that
	// expired an hour ago; the endpoint trusts both.
	stale := imdsfake.Start(t, imdsfake.Options{Now: func() time.Time { return time.Now().Add(-7 * time.Hour) }})
	trustBoth := func(akid, token string, at time.Time) error {
		if _, ok := stale.Lookup(akid); ok {
			return ValidateIssued(stale)(akid, token, at)
		}
		return ValidateIssued(imds)(akid, token, at)
	}
	secretBoth := func(akid string) (string, bool) {
		if s, ok := SecretIssued(stale)(akid); ok {
			return s, true
		}
		return SecretIssued(imds)(akid)
	}
	const stream = "cred-test"
	ep := Start(t, Options{Validate: trustBoth, Secret: secretBoth, Region: testRegion, Streams: []string{stream}})
	good := fetchCredentials(t, imds)
	expired := fetchCredentials(t, stale)

	wrongSecret := good
	wrongSecret.SecretAccessKey = "not-the-issued-secret-0000000000000000000"
	wrongToken := good
	wrongToken.SessionToken = "IQoJ" + strings.Repeat("A", 600)
	unknown := aws.Credentials{AccessKeyID: "ASIAUNKNOWNKEY000001", SecretAccessKey: "made-up-secret", SessionToken: "made-up-token"}
	describe := map[string]string{"StreamName": stream}

	tests := []struct {
		name    string
		creds   aws.Credentials
		status  int
		errType string
		message string
	}{
		{"issued and valid", good, http.StatusOK, "", ""},
		{"expired token", expired, http.StatusForbidden, "ExpiredTokenException", "The security token included in the request is expired"},
		{"unknown access key", unknown, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid."},
		{"token of another key", wrongToken, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid."},
		{"wrong secret", wrongSecret, http.StatusForbidden, "InvalidSignatureException", msgSignatureMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, ep.URL(), tc.creds)
			before := len(ep.Rejections())
			a := c.call(PathDescribeStream, describe)
			if a.status != tc.status {
				t.Fatalf("describe: %d %s, want %d", a.status, a.body, tc.status)
			}
			if tc.status == http.StatusOK {
				if len(ep.Rejections()) != before {
					t.Errorf("a valid request was recorded as rejected")
				}
				return
			}
			if got := a.header.Get("x-amzn-ErrorType"); got != tc.errType {
				t.Errorf("x-amzn-ErrorType %q, want %q", got, tc.errType)
			}
			if got := a.json(t); len(got) != 1 || got["message"] != tc.message {
				t.Errorf("body %s, want {\"message\":%q}", a.body, tc.message)
			}
			rej := ep.Rejections()
			if len(rej) != before+1 || rej[before].ErrorType != tc.errType || rej[before].AccessKeyID != tc.creds.AccessKeyID {
				t.Fatalf("rejections: %+v", rej[before:])
			}
			if strings.Contains(rej[before].Reason, tc.creds.AccessKeyID) || strings.Contains(rej[before].Reason, tc.creds.SessionToken) {
				t.Errorf("rejection reason shows the key or token: %q", rej[before].Reason)
			}

			// putMedia with the same credentials is refused before any
			// upload starts.
			sessions := len(ep.Sessions(stream))
			a = c.do(c.putMediaRequest(stream, bytes.NewReader(cat(ebmlHeader, open(idSegment)))))
			if a.status != tc.status || a.header.Get("x-amzn-ErrorType") != tc.errType {
				t.Errorf("putMedia: %d %s %s", a.status, a.header.Get("x-amzn-ErrorType"), a.body)
			}
			if n := len(ep.Sessions(stream)); n != sessions {
				t.Errorf("a refused putMedia was recorded as a session")
			}
		})
	}

	t.Run("unsigned", func(t *testing.T) {
		resp, err := http.Post(ep.URL()+PathDescribeStream, "application/json", strings.NewReader(`{"StreamName":"cred-test"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-amzn-ErrorType") != "MissingAuthenticationTokenException" {
			t.Errorf("unsigned describe: %d %s", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"))
		}
	})
	t.Run("header changed after signing", func(t *testing.T) {
		c := newClient(t, ep.URL(), good)
		req := c.putMediaRequest(stream, bytes.NewReader(nil))
		req.Header.Set("x-amzn-stream-name", "another-stream")
		if a := c.do(req); a.status != http.StatusForbidden || a.header.Get("x-amzn-ErrorType") != "InvalidSignatureException" {
			t.Errorf("tampered putMedia: %d %s %s", a.status, a.header.Get("x-amzn-ErrorType"), a.body)
		}
	})
	t.Run("wrong region", func(t *testing.T) {
		c := newClient(t, ep.URL(), good)
		req, _ := http.NewRequest(http.MethodPost, ep.URL()+PathDescribeStream, strings.NewReader(`{"StreamName":"cred-test"}`))
		if err := v4.NewSigner().SignHTTP(context.Background(), good, req, hexSHA256([]byte(`{"StreamName":"cred-test"}`)),
			"kinesisvideo", "eu-west-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		if a := c.do(req); a.status != http.StatusForbidden || a.header.Get("x-amzn-ErrorType") != "InvalidSignatureException" {
			t.Errorf("describe signed for eu-west-1: %d %s", a.status, a.body)
		}
	})
}

// A request signed the way the KVS producer SDK signs: host without the
// port, transfer-encoding and connection among the signed headers, the
// security token added after signing, an empty-payload hash for putMedia.
func TestProducerStyleSignatureIsVerified(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	imds := imdsfake.Start(t, imdsfake.Options{})
	const stream = "producer-style"
	ep := Start(t, Options{Validate: ValidateIssued(imds), Secret: SecretIssued(imds), Region: testRegion, Streams: []string{stream}})
	creds := fetchCredentials(t, imds)
	c := newClient(t, ep.URL(), creds)

	mkv := cat(ebmlHeader, open(idSegment), tracks, open(idCluster), uintEl(idTimecode, 1000), simpleBlock(1, 0, true, 64),
		simpleBlock(1, 33, false, 16), eofrTags)
	for _, secret := range []string{creds.SecretAccessKey, "wrong"} {
		headers, auth := producerSigned(creds.AccessKeyID, secret, "127.0.0.1", stream, time.Now())
		req, err := http.NewRequest(http.MethodPost, ep.URL()+PathPutMedia, bytes.NewReader(mkv))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Host = "127.0.0.1"
		for _, h := range headers {
			if h[0] != "host" && h[0] != "transfer-encoding" {
				req.Header.Set(h[0], h[1])
			}
		}
		req.Header.Set("Expect", "100-continue")
		req.Header.Set("Authorization", auth)
		req.Header.Set("X-Amz-Security-Token", creds.SessionToken)
		ans := c.do(req)
		if secret == "wrong" {
			if ans.status != http.StatusForbidden || ans.header.Get("x-amzn-ErrorType") != "InvalidSignatureException" {
				t.Errorf("producer-style request with a wrong secret: %d %s", ans.status, ans.body)
			}
			continue
		}
		if ans.status != http.StatusOK {
			t.Fatalf("producer-style putMedia: %d %s %s", ans.status, ans.header.Get("x-amzn-ErrorType"), ans.body)
		}
		lines := strings.Split(strings.TrimSpace(string(ans.body)), "\n")
		if len(lines) != 3 || !strings.Contains(lines[2], `"EventType":"PERSISTED","FragmentTimecode":1000,`) {
			t.Errorf("acknowledgements: %q", lines)
		}
	}
}

// producerSigned signs a putMedia call the way the KVS producer SDK does
// (its header list, sorted; host as given; empty-payload hash) and returns
// the headers to send and the Authorization value.
func producerSigned(akid, secret, host, stream string, at time.Time) ([][2]string, string) {
	now := at.UTC()
	amzDate := now.Format(amzDateLayout)
	headers := [][2]string{
		{"connection", "keep-alive"},
		{"content-type", "application/json"},
		{"host", host},
		{"transfer-encoding", "chunked"},
		{"user-agent", "AWS-SDK-KVS-CPP-CLIENT/3.6.0"},
		{"x-amz-date", amzDate},
		{"x-amzn-fragment-acknowledgment-required", "1"},
		{"x-amzn-fragment-timecode-type", "ABSOLUTE"},
		{"x-amzn-producer-start-timestamp", fmt.Sprintf("%d.000", now.Unix())},
		{"x-amzn-stream-name", stream},
	}
	var canon, names strings.Builder
	canon.WriteString("POST\n/putMedia\n\n")
	for i, h := range headers {
		canon.WriteString(h[0] + ":" + h[1] + "\n")
		if i > 0 {
			names.WriteString(";")
		}
		names.WriteString(h[0])
	}
	canon.WriteString("\n" + names.String() + "\n" + emptySHA256)
	a := authorization{Day: now.Format(amzDayLayout), Region: testRegion, Service: "kinesisvideo"}
	sig := signature(secret, amzDate, a, canon.String())
	return headers, fmt.Sprintf("AWS4-HMAC-SHA256 Credential=%s/%s/%s/kinesisvideo/aws4_request, SignedHeaders=%s, Signature=%s",
		akid, a.Day, testRegion, names.String(), sig)
}

// kvssink uploads with libcurl: a chunked POST from a live source with
// "Expect: 100-continue", reading acknowledgements as they come. curl
// itself does the same here.
func TestCurlPutMediaStreamsAcks(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	imdsfake.ClearAWSEnv(t)
	imds := imdsfake.Start(t, imdsfake.Options{})
	const stream = "curl-upload"
	ep := Start(t, Options{Validate: ValidateIssued(imds), Secret: SecretIssued(imds), Region: testRegion, Streams: []string{stream}})
	creds := fetchCredentials(t, imds)
	host := strings.TrimPrefix(ep.URL(), "http://")
	headers, auth := producerSigned(creds.AccessKeyID, creds.SecretAccessKey, host, stream, time.Now())

	args := []string{"-sS", "-N", "--http1.1", "-X", "POST", "-T", "-", "--expect100-timeout", "10"}
	for _, h := range headers {
		if h[0] != "host" && h[0] != "transfer-encoding" {
			args = append(args, "-H", h[0]+": "+h[1])
		}
	}
	args = append(args, "-H", "Authorization: "+auth, "-H", "X-Amz-Security-Token: "+creds.SessionToken,
		"-H", "Transfer-Encoding: chunked", ep.URL()+PathPutMedia)
	cmd := exec.Command("curl", args...)
	cmd.Stdin = liveMKV(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// The first PERSISTED must arrive while the upload still runs.
	sc := bufio.NewScanner(out)
	var events []string
	sessionOpenAtFirstPersisted := false
	for sc.Scan() {
		var a ack
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("curl printed %q, not an acknowledgement (stderr %s)", sc.Text(), stderr.String())
		}
		if a.EventType == "PERSISTED" && len(events) < 3 {
			s := ep.Sessions(stream)
			sessionOpenAtFirstPersisted = len(s) == 1 && s[0].Active()
		}
		events = append(events, a.EventType)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("curl: %v: %s", err, stderr.String())
	}
	frags := ep.Fragments(stream)
	if len(frags) < 3 || len(events) != 3*len(frags) {
		t.Fatalf("%d fragments, acknowledgements %v (curl stderr %s)", len(frags), events, stderr.String())
	}
	if !sessionOpenAtFirstPersisted {
		t.Errorf("the first PERSISTED reached curl only after the upload ended")
	}
	if rej := ep.Rejections(); len(rej) != 0 {
		t.Errorf("rejected: %+v", rej)
	}
}

// Fragments whose timecode goes backwards inside one putMedia get an ERROR
// (4004) instead of being persisted; a body that is not MKV gets 4006.
func TestPutMediaErrorAcks(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	imds := imdsfake.Start(t, imdsfake.Options{})
	const stream = "errors"
	ep := Start(t, Options{Validate: ValidateIssued(imds), Secret: SecretIssued(imds), Region: testRegion, Streams: []string{stream}})
	c := newClient(t, ep.URL(), fetchCredentials(t, imds))

	tests := []struct {
		name string
		body []byte
		want []string
	}{
		{"timecode going backwards",
			cat(ebmlHeader, open(idSegment), tracks, open(idCluster), uintEl(idTimecode, 2000), simpleBlock(1, 0, true, 8),
				open(idCluster), uintEl(idTimecode, 1500), simpleBlock(1, 0, true, 8),
				open(idCluster), uintEl(idTimecode, 2100), simpleBlock(1, 0, true, 8)),
			[]string{"BUFFERING:2000:0", "RECEIVED:2000:0", "PERSISTED:2000:0", "BUFFERING:1500:0", "ERROR:1500:4004",
				"BUFFERING:2100:0", "RECEIVED:2100:0", "PERSISTED:2100:0"}},
		{"not MKV", []byte("this is not a matroska stream at all"), []string{"ERROR:0:4006"}},
		{"block before the cluster timecode",
			cat(ebmlHeader, open(idSegment), open(idCluster), simpleBlock(1, 0, true, 8)), []string{"ERROR:0:4006"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var done atomic.Bool
			resp, err := c.http.Do(c.putMediaRequest(stream, bytes.NewReader(tc.body)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got []string
			for _, a := range readAcks(t, resp.Body, &done) {
				got = append(got, fmt.Sprintf("%s:%d:%d", a.EventType, a.FragmentTimecode, a.ErrorID))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("acknowledgements\n got %v\nwant %v", got, tc.want)
			}
		})
	}
	sessions := ep.Sessions(stream)
	if len(sessions) != 3 || sessions[0].Err != "" || !strings.Contains(sessions[1].Err, "invalid MKV") {
		t.Errorf("sessions: %+v", sessions)
	}
}

// HoldAcks: fragments are acknowledged with BUFFERING only (never
// persisted) until it is turned off again.
func TestHoldAcks(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	imds := imdsfake.Start(t, imdsfake.Options{})
	const stream = "held"
	ep := Start(t, Options{Validate: ValidateIssued(imds), Secret: SecretIssued(imds), Region: testRegion, Streams: []string{stream}})
	c := newClient(t, ep.URL(), fetchCredentials(t, imds))
	body := cat(ebmlHeader, open(idSegment), tracks, open(idCluster), uintEl(idTimecode, 2000), simpleBlock(1, 0, true, 8),
		open(idCluster), uintEl(idTimecode, 2100), simpleBlock(1, 0, true, 8))
	for _, tc := range []struct {
		hold bool
		want string
	}{
		{true, "BUFFERING:2000 BUFFERING:2100"},
		{false, "BUFFERING:2000 RECEIVED:2000 PERSISTED:2000 BUFFERING:2100 RECEIVED:2100 PERSISTED:2100"},
	} {
		ep.HoldAcks(tc.hold)
		var done atomic.Bool
		resp, err := c.http.Do(c.putMediaRequest(stream, bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range readAcks(t, resp.Body, &done) {
			got = append(got, fmt.Sprintf("%s:%d", a.EventType, a.FragmentTimecode))
		}
		resp.Body.Close()
		if strings.Join(got, " ") != tc.want {
			t.Errorf("hold %v: acknowledgements %v, want %s", tc.hold, got, tc.want)
		}
	}
	frags := ep.Fragments(stream)
	if len(frags) != 4 || frags[0].Persisted() || frags[1].Persisted() || !frags[2].Persisted() || frags[0].Frames != 1 {
		t.Errorf("fragments recorded: %+v", frags)
	}
}

// The HMAC chain and canonical request against AWS's published SigV4 test
// vector "get-vanilla".
func TestSignatureMatchesAWSTestVector(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "http://example.amazonaws.com/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "example.amazonaws.com"
	req.Header.Set("X-Amz-Date", "20150830T123600Z")
	a, err := parseAuthorization("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
		"SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	if err != nil {
		t.Fatal(err)
	}
	for secret, want := range map[string]bool{"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY": true, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ": false} {
		ok, err := verifySignature(req, a, secret, []string{emptySHA256})
		if err != nil || ok != want {
			t.Errorf("secret %q: verified %v (%v), want %v", secret[len(secret)-3:], ok, err, want)
		}
	}
}

func TestParseAuthorizationRejectsMalformedHeaders(t *testing.T) {
	good := "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=" +
		strings.Repeat("ab", 32)
	if a, err := parseAuthorization(good); err != nil || a.AccessKeyID != "AKID" || a.Region != "us-west-2" || len(a.SignedHeaders) != 2 {
		t.Fatalf("good header: %+v %v", a, err)
	}
	for _, h := range []string{
		"",
		"AWS4-HMAC-SHA1 Credential=AKID/20240101/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("ab", 32),
		"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-west-2/kinesisvideo, SignedHeaders=host, Signature=" + strings.Repeat("ab", 32),
		"AWS4-HMAC-SHA256 Credential=AKID/2024-01-01/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("ab", 32),
		"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host, Signature=xyz",
		"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-west-2/kinesisvideo/aws4_request, Signature=" + strings.Repeat("ab", 32),
	} {
		if _, err := parseAuthorization(h); err == nil {
			t.Errorf("accepted %q", h)
		}
	}
}

// Injected faults: Fail answers the next calls of an API with the status
// (after which the API works again), ErrorAck ends a putMedia call with an
// ERROR for its next fragment, DropPutMedia breaks off a running call.
func TestInjectedFaults(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	imds := imdsfake.Start(t, imdsfake.Options{})
	const stream = "faults"
	ep := Start(t, Options{Validate: ValidateIssued(imds), Secret: SecretIssued(imds), Region: testRegion, Streams: []string{stream}})
	c := newClient(t, ep.URL(), fetchCredentials(t, imds))

	ep.Fail(PathGetDataEndpoint, 2, http.StatusInternalServerError)
	req := map[string]string{"StreamName": stream, "APIName": "PUT_MEDIA"}
	for i, want := range []int{500, 500, 200} {
		a := c.call(PathGetDataEndpoint, req)
		if a.status != want {
			t.Fatalf("getDataEndpoint %d: status %d, want %d (%s)", i, a.status, want, a.body)
		}
		if want == 500 && a.header.Get("x-amzn-ErrorType") != "InternalFailure" {
			t.Errorf("getDataEndpoint %d: error type %q", i, a.header.Get("x-amzn-ErrorType"))
		}
	}

	t.Run("error ack", func(t *testing.T) {
		ep.ErrorAck(5000)
		var done atomic.Bool
		resp, err := c.http.Do(c.putMediaRequest(stream, eofFlag{r: liveMKV(t), done: &done}))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		acks := readAcks(t, resp.Body, &done)
		if n := len(acks); n == 0 || acks[n-1].EventType != "ERROR" || acks[n-1].ErrorID != 5000 {
			t.Fatalf("want the call to end on ERROR 5000, got %+v", acks)
		}
		if acks[len(acks)-1].bodyDone {
			t.Errorf("the ERROR came only after the whole body")
		}
	})

	t.Run("dropped", func(t *testing.T) {
		var done atomic.Bool
		body := eofFlag{r: liveMKV(t), done: &done}
		resp, err := c.http.Do(c.putMediaRequest(stream, body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ep.WaitFor(ctx, func() bool { s := ep.Sessions(stream); return len(s) == 2 && s[1].Fragments > 0 }); err != nil {
			t.Fatal(err)
		}
		ep.DropPutMedia()
		_, err = io.Copy(io.Discard, resp.Body)
		if err == nil && done.Load() {
			t.Fatalf("the call ran to its end: not dropped")
		}
	})

	faults := ep.Faults()
	if len(faults) != 4 || faults[0].Status != 500 || faults[2].ErrorID != 5000 || !faults[3].Dropped {
		t.Errorf("faults recorded: %+v", faults)
	}
}
