// Package kvsendpoint is a local Amazon Kinesis Video Streams endpoint for
// tests: the control-plane calls kvssink makes (describeStream,
// createStream, tagStream, getDataEndpoint) and the streaming putMedia
// call, answering with the JSON shapes of /work/shared/kvssink-contract.md
// ("Endpoints"), checking every request's SigV4 credentials, and recording
// what was uploaded for assertions.
//
// Point a real kvssink at it with CONTROL_PLANE_URI=srv.URL() (plain http):
//
//	imds := imdsfake.Start(t, imdsfake.Options{})
//	srv := kvsendpoint.Start(t, kvsendpoint.Options{
//		Validate: kvsendpoint.ValidateIssued(imds),
//		Secret:   kvsendpoint.SecretIssued(imds),
//	})
//	... run kvssink ...
//	frags := srv.Fragments("my-stream")
//
// putMedia answers 200 at once (after "100 Continue" when the client asks
// for it) and then streams one JSON line per acknowledgement event while
// the body is still arriving: BUFFERING when a cluster's timecode has been
// read, RECEIVED and PERSISTED when the cluster has ended (the next
// cluster, a Tags element such as kvssink's end-of-fragment marker, a new
// EBML header, or the end of the body), or ERROR (ErrorId 4004) for a
// fragment whose timecode is below the previous one in the same call, or
// ERROR (ErrorId 4006) when the body is not MKV it can follow (the call
// then ends).
//
// Faults for tests of the client's recovery: Fail answers the next calls of
// an API with an HTTP error, ErrorAck ends the next fragment of a running
// putMedia with an ERROR acknowledgement (and ends that call, as the
// service does), DropPutMedia breaks off running putMedia connections.
//
// Credentials: every request must carry an Authorization header
// (AWS4-HMAC-SHA256, service kinesisvideo) and X-Amz-Date within 15 min of
// the endpoint's clock. Options.Validate decides whether the access key and
// session token are acceptable at the request time; Options.Secret, when
// it knows the key, makes the endpoint verify the signature itself
// (canonical request, string to sign, HMAC chain). Failures are answered
// like AWS: 403 with x-amzn-ErrorType ExpiredTokenException,
// UnrecognizedClientException, InvalidSignatureException or
// MissingAuthenticationTokenException and a {"message":...} body.
package kvsendpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Errors a Validate function returns (wrapped) to pick the 403 answer.
var (
	// ErrExpiredToken: the credentials were issued but have expired.
	ErrExpiredToken = errors.New("the security token included in the request is expired")
	// ErrUnrecognizedClient: unknown access key, or a session token that
	// does not belong to it. Any other Validate error is answered the same.
	ErrUnrecognizedClient = errors.New("the security token included in the request is invalid")
)

// AWS error types and messages, as the service sends them.
const (
	errTypeExpired        = "ExpiredTokenException"
	errTypeUnrecognized   = "UnrecognizedClientException"
	errTypeSignature      = "InvalidSignatureException"
	errTypeMissingAuth    = "MissingAuthenticationTokenException"
	errTypeIncompleteSig  = "IncompleteSignatureException"
	errTypeNotFound       = "ResourceNotFoundException"
	errTypeInUse          = "ResourceInUseException"
	errTypeInvalidArg     = "InvalidArgumentException"
	msgExpired            = "The security token included in the request is expired"
	msgUnrecognized       = "The security token included in the request is invalid."
	msgSignatureMismatch  = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgMissingAuth        = "Missing Authentication Token"
	msgStreamNotFound     = "The requested stream is not found or not active."
	ackErrorTimecodeOrder = 4004 // FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS
	ackErrorInvalidMKV    = 4006 // INVALID_MKV_DATA
)

// API paths the endpoint serves.
const (
	PathDescribeStream  = "/describeStream"
	PathCreateStream    = "/createStream"
	PathTagStream       = "/tagStream"
	PathGetDataEndpoint = "/getDataEndpoint"
	PathPutMedia        = "/putMedia"
)

// Options configures the endpoint. Zero fields take the defaults noted.
type Options struct {
	// Validate decides whether a request signed with accessKeyID (and
	// carrying sessionToken in X-Amz-Security-Token, "" if none) may be
	// served at time at (the endpoint's clock). Return an error wrapping
	// ErrExpiredToken or ErrUnrecognizedClient. Nil: every key is accepted.
	Validate func(accessKeyID, sessionToken string, at time.Time) error
	// Secret returns the secret access key of accessKeyID so the endpoint
	// can verify signatures. Nil, or false for a key: the signature is only
	// parsed, not verified.
	Secret func(accessKeyID string) (secret string, ok bool)
	// Region the credential scope must name. Empty: any region.
	Region string
	// Streams that exist from the start (created like createStream would).
	Streams []string
	// Now is the endpoint's clock. Nil: time.Now.
	Now func() time.Time
}

// Stream is one stream the endpoint knows.
type Stream struct {
	Name                 string
	ARN                  string
	DeviceName           string
	MediaType            string
	KmsKeyID             string
	DataRetentionInHours int
	Tags                 map[string]string
	Created              time.Time
}

// Block is one (Simple)Block of a fragment.
type Block struct {
	Track    uint64
	Timecode int64 // absolute, in milliseconds
	Keyframe bool
	Frames   int // 1 unless laced
	Size     int64
}

// Fragment is one MKV cluster received by putMedia.
type Fragment struct {
	Stream  string
	Session int    // index into Sessions(Stream)
	Number  string // the FragmentNumber acknowledged
	// Timecode is the cluster timecode in milliseconds (FragmentTimecode).
	Timecode int64
	// Frames counts frames (SimpleBlocks, BlockGroups; laced frames each).
	Frames    int
	Keyframes int
	// KeyframeFirst: the first block is a keyframe.
	KeyframeFirst bool
	Blocks        []Block
	// CodecPrivate of the first block's track, from the session's Tracks.
	CodecPrivate []byte
	AccessKeyID  string
	Received     time.Time // when the cluster ended
	// Events are the acknowledgements sent, in order.
	Events []string
	// ErrorID is the ERROR acknowledgement's id (0: none).
	ErrorID int
	// Complete: the cluster ended properly; false when the call broke off
	// inside it.
	Complete bool
}

// Persisted reports whether the fragment was acknowledged as PERSISTED.
func (f Fragment) Persisted() bool {
	for _, e := range f.Events {
		if e == "PERSISTED" {
			return true
		}
	}
	return false
}

// Session is one putMedia call.
type Session struct {
	Stream      string
	AccessKeyID string
	Start       time.Time
	End         time.Time // zero while the call runs
	// Headers as sent.
	ProducerStartTimestamp string
	FragmentTimecodeType   string
	AckRequired            bool
	Tracks                 []Track
	Fragments              int
	Bytes                  int64
	// Err says why the call ended: "" for a clean end of the body.
	Err string
}

// Active reports whether the call is still running.
func (s Session) Active() bool { return s.End.IsZero() }

// Call is one request the endpoint answered.
type Call struct {
	Time        time.Time
	Path        string
	Stream      string
	AccessKeyID string
	Status      int
	ErrorType   string
}

// Rejection is a request refused for its credentials or signature.
type Rejection struct {
	Time        time.Time
	Path        string
	AccessKeyID string
	Status      int
	ErrorType   string
	// Reason is the endpoint's own explanation (access keys masked).
	Reason string
}

// Server is a running endpoint. All methods are safe for concurrent use.
type Server struct {
	opts Options
	http *httptest.Server

	mu         sync.Mutex
	streams    map[string]*Stream
	order      []string
	sessions   map[string][]*Session
	fragments  map[string][]Fragment
	calls      []Call
	rejections []Rejection
	fragSeq    uint64
	dataURL    string        // what getDataEndpoint answers; "" is URL()
	changed    chan struct{} // closed and replaced on every record change

	// Faults (see Fail, ErrorAck, DropPutMedia).
	failures  map[string][]int // path -> statuses still to answer, in order
	errorAck  int              // ErrorId for the next fragment to end; 0: none
	dropEpoch int              // bumped by DropPutMedia
	holdAcks  bool             // see HoldAcks
	faults    []Fault
}

// Fault is one injected failure the endpoint answered.
type Fault struct {
	Time time.Time
	Path string
	// Status is the HTTP status answered (0 for an ERROR acknowledgement or
	// a dropped connection).
	Status int
	// ErrorID is the ERROR acknowledgement's id (0: none).
	ErrorID int
	// FragmentTimecode of the fragment the ERROR acknowledged.
	FragmentTimecode int64
	// Dropped: a running putMedia connection was broken off.
	Dropped bool
}

// New starts an endpoint on 127.0.0.1 with a kernel-chosen port.
func New(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:      opts,
		streams:   map[string]*Stream{},
		sessions:  map[string][]*Session{},
		fragments: map[string][]Fragment{},
		changed:   make(chan struct{}),
	}
	for _, name := range opts.Streams {
		if err := validStreamName(name); err != nil {
			return nil, fmt.Errorf("kvsendpoint: Options.Streams: %w", err)
		}
		s.addStream(Stream{Name: name, MediaType: "video/h264", DataRetentionInHours: 2})
	}
	s.http = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.http.Config.ReadHeaderTimeout = 10 * time.Second
	s.http.Start()
	return s, nil
}

// Start is New for tests: it fails tb on error and closes the endpoint in
// tb.Cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// URL is the control-plane and data endpoint, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return s.http.URL }

// SetDataEndpoint makes getDataEndpoint answer url (a proxy in front of
// this endpoint, say), so that putMedia goes through it while the control
// plane calls do not.
func (s *Server) SetDataEndpoint(url string) {
	s.mu.Lock()
	s.dataURL = url
	s.mu.Unlock()
}

// Close breaks off running putMedia calls and stops the endpoint.
func (s *Server) Close() {
	s.http.CloseClientConnections()
	s.http.Close()
}

// Streams lists the known streams in creation order.
func (s *Server) Streams() []Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Stream, 0, len(s.order))
	for _, name := range s.order {
		st := *s.streams[name]
		st.Tags = copyTags(st.Tags)
		out = append(out, st)
	}
	return out
}

// Fragments lists the fragments received for stream, in arrival order
// (complete ones when their cluster ended, a cut-off one when its call
// ended). Treat the slices inside (Blocks, CodecPrivate) as read-only.
func (s *Server) Fragments(stream string) []Fragment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Fragment(nil), s.fragments[stream]...)
}

// Sessions lists the putMedia calls for stream, oldest first.
func (s *Server) Sessions(stream string) []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.sessions[stream]))
	for _, se := range s.sessions[stream] {
		c := *se
		c.Tracks = append([]Track(nil), se.Tracks...)
		out = append(out, c)
	}
	return out
}

// Calls lists every request answered, in the order the answers completed
// (a putMedia call appears when its upload ends; Sessions shows it live).
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Fail makes the next n requests to path (PathPutMedia, PathGetDataEndpoint,
// ...) fail with the HTTP status (500, 503, 429, ...) after their
// credentials were checked, with the error type AWS uses for it.
func (s *Server) Fail(path string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures == nil {
		s.failures = map[string][]int{}
	}
	for i := 0; i < n; i++ {
		s.failures[path] = append(s.failures[path], status)
	}
}

// ErrorAck makes the next fragment to end in any putMedia call get an ERROR
// acknowledgement with errorID (5000 internal error, 4004 timecode not
// monotonic, ...) instead of RECEIVED and PERSISTED; that call then ends:
// the endpoint stops reading its body and closes the connection.
func (s *Server) ErrorAck(errorID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errorAck = errorID
}

// ClearFailures drops the failures Fail queued for path that were not
// answered yet: the API works again from now on.
func (s *Server) ClearFailures(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failures, path)
}

// HoldAcks, while on, makes the endpoint acknowledge fragments with
// BUFFERING only: no RECEIVED or PERSISTED, as a service that takes the data
// but never stores it (a putMedia that never acks). Bodies are still read
// and fragments recorded (not persisted). Off again, fragments that end
// from then on are acknowledged as usual.
func (s *Server) HoldAcks(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdAcks = on
}

// DropPutMedia breaks off every running putMedia call's connection (as a
// network failure would), at its next read.
func (s *Server) DropPutMedia() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropEpoch++
}

// Faults lists the injected failures answered so far.
func (s *Server) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Fault(nil), s.faults...)
}

// takeFailure pops the next injected status for path (0: none).
func (s *Server) takeFailure(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.failures[path]
	if len(q) == 0 {
		return 0
	}
	status := q[0]
	s.failures[path] = q[1:]
	s.faults = append(s.faults, Fault{Time: s.opts.Now(), Path: path, Status: status})
	s.notifyLocked()
	return status
}

// injectedError is the answer for an injected HTTP failure.
func injectedError(status int) *apiError {
	errType, msg := "InternalFailure", "We encountered an internal error. Please try again."
	switch status {
	case http.StatusServiceUnavailable:
		errType, msg = "ServiceUnavailable", "Service is unavailable. Please try again."
	case http.StatusTooManyRequests:
		errType, msg = "ClientLimitExceededException", "Rate exceeded."
	case http.StatusForbidden:
		errType, msg = "AccessDeniedException", "User is not authorized to perform this operation."
	}
	return &apiError{status: status, errType: errType, message: msg}
}

// Rejections lists the requests refused for their credentials or signature.
func (s *Server) Rejections() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejection(nil), s.rejections...)
}

// WaitFor blocks until cond holds or ctx ends (then it returns ctx.Err()).
// cond is re-evaluated whenever the endpoint records something; it may call
// the endpoint's getters.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes WaitFor; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func copyTags(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var streamNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,256}$`)

func validStreamName(name string) error {
	if !streamNamePattern.MatchString(name) {
		return fmt.Errorf("stream name %q must be 1-256 characters of a-z A-Z 0-9 _ . -", name)
	}
	return nil
}

func (s *Server) region() string {
	if s.opts.Region != "" {
		return s.opts.Region
	}
	return "us-west-2"
}

// addStream records a new stream; the caller checked it does not exist.
func (s *Server) addStream(st Stream) Stream {
	st.Created = s.opts.Now()
	if st.ARN == "" {
		st.ARN = fmt.Sprintf("arn:aws:kinesisvideo:%s:123456789012:stream/%s/%d", s.region(), st.Name, st.Created.UnixMilli())
	}
	if st.KmsKeyID == "" {
		st.KmsKeyID = fmt.Sprintf("arn:aws:kms:%s:123456789012:alias/aws/kinesisvideo", s.region())
	}
	s.streams[st.Name] = &st
	s.order = append(s.order, st.Name)
	return st
}

// lookupLocked finds a stream by name or ARN.
func (s *Server) lookupLocked(name, arn string) (*Stream, bool) {
	if name != "" {
		st, ok := s.streams[name]
		return st, ok && (arn == "" || st.ARN == arn)
	}
	for _, st := range s.streams {
		if arn != "" && st.ARN == arn {
			return st, true
		}
	}
	return nil, false
}

// apiError is an answer other than 200.
type apiError struct {
	status  int
	errType string
	message string
	// authBody: credential errors carry {"message":...}; API errors
	// {"__type":...,"Message":...}.
	authBody bool
	reason   string // for Rejections
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-ErrorType", e.errType)
	w.Header().Set("x-amzn-RequestId", requestID())
	w.WriteHeader(e.status)
	var body any
	if e.authBody {
		body = map[string]string{"message": e.message}
	} else {
		body = map[string]string{"__type": e.errType, "Message": e.message}
	}
	_ = json.NewEncoder(w).Encode(body)
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-RequestId", requestID())
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// maxControlBody bounds control-plane request bodies.
const maxControlBody = 1 << 20

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	call := Call{Time: s.opts.Now(), Path: r.URL.Path}
	status, errType := http.StatusOK, ""
	defer func() {
		call.Status, call.ErrorType = status, errType
		s.mu.Lock()
		s.calls = append(s.calls, call)
		s.notifyLocked()
		s.mu.Unlock()
	}()
	fail := func(e *apiError) {
		status, errType = e.status, e.errType
		s.writeError(w, e)
	}

	if r.Method != http.MethodPost {
		fail(&apiError{status: http.StatusMethodNotAllowed, errType: errTypeInvalidArg, message: "only POST is supported"})
		return
	}
	if r.URL.Path == PathPutMedia {
		call.Stream = r.Header.Get("x-amzn-stream-name")
		akid, e := s.authenticate(r, nil)
		call.AccessKeyID = akid
		if e != nil {
			fail(e)
			return
		}
		if status := s.takeFailure(r.URL.Path); status != 0 {
			fail(injectedError(status))
			return
		}
		if e := s.putMedia(w, r, akid); e != nil {
			fail(e)
		}
		return
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody+1))
	if err != nil || len(body) > maxControlBody {
		fail(&apiError{status: http.StatusBadRequest, errType: errTypeInvalidArg, message: "request body unreadable or over 1 MiB"})
		return
	}
	var req struct {
		StreamName           string
		StreamARN            string
		DeviceName           string
		MediaType            string
		KmsKeyID             string `json:"KmsKeyId"`
		DataRetentionInHours *int
		Tags                 map[string]string
		APIName              string
	}
	akid, e := s.authenticate(r, body)
	call.AccessKeyID = akid
	if e != nil {
		fail(e)
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		fail(&apiError{status: http.StatusBadRequest, errType: "SerializationException", message: "request body is not a JSON object"})
		return
	}
	call.Stream = req.StreamName
	if status := s.takeFailure(r.URL.Path); status != 0 {
		fail(injectedError(status))
		return
	}
	if e := s.control(w, r.URL.Path, req.StreamName, req.StreamARN, func(st *Stream) {
		st.DeviceName, st.MediaType, st.KmsKeyID, st.Tags = req.DeviceName, req.MediaType, req.KmsKeyID, req.Tags
		if req.DataRetentionInHours != nil {
			st.DataRetentionInHours = *req.DataRetentionInHours
		}
	}, req.Tags, req.APIName); e != nil {
		fail(e)
	}
}

// control serves the control-plane calls.
func (s *Server) control(w http.ResponseWriter, path, name, arn string, fill func(*Stream), tags map[string]string, apiName string) *apiError {
	if name == "" && arn == "" {
		return &apiError{status: http.StatusBadRequest, errType: errTypeInvalidArg, message: "StreamName or StreamARN is required"}
	}
	notFound := &apiError{status: http.StatusNotFound, errType: errTypeNotFound, message: msgStreamNotFound}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch path {
	case PathDescribeStream:
		st, ok := s.lookupLocked(name, arn)
		if !ok {
			return notFound
		}
		writeJSON(w, map[string]any{"StreamInfo": map[string]any{
			"CreationTime":         float64(st.Created.UnixMilli()) / 1000,
			"DataRetentionInHours": st.DataRetentionInHours,
			"DeviceName":           st.DeviceName,
			"KmsKeyId":             st.KmsKeyID,
			"MediaType":            st.MediaType,
			"Status":               "ACTIVE",
			"StreamARN":            st.ARN,
			"StreamName":           st.Name,
			"Version":              "1",
		}})
	case PathCreateStream:
		if err := validStreamName(name); err != nil {
			return &apiError{status: http.StatusBadRequest, errType: errTypeInvalidArg, message: err.Error()}
		}
		if _, exists := s.streams[name]; exists {
			return &apiError{status: http.StatusBadRequest, errType: errTypeInUse, message: fmt.Sprintf("The stream %s already exists.", name)}
		}
		st := Stream{Name: name}
		fill(&st)
		st.Tags = copyTags(st.Tags)
		st = s.addStream(st)
		writeJSON(w, map[string]string{"StreamARN": st.ARN})
	case PathTagStream:
		st, ok := s.lookupLocked(name, arn)
		if !ok {
			return notFound
		}
		if st.Tags == nil {
			st.Tags = map[string]string{}
		}
		for k, v := range tags {
			st.Tags[k] = v
		}
		writeJSON(w, struct{}{})
	case PathGetDataEndpoint:
		switch apiName {
		case "PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST", "GET_HLS_STREAMING_SESSION_URL",
			"GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES":
		default:
			return &apiError{status: http.StatusBadRequest, errType: errTypeInvalidArg, message: fmt.Sprintf("APIName %q is not valid", apiName)}
		}
		if _, ok := s.lookupLocked(name, arn); !ok {
			return notFound
		}
		url := s.dataURL // s.mu held
		if url == "" {
			url = s.http.URL
		}
		writeJSON(w, map[string]string{"DataEndpoint": url})
	default:
		return &apiError{status: http.StatusNotFound, errType: "UnknownOperationException", message: "unknown operation " + path}
	}
	return nil
}

// authenticate checks r's SigV4 credentials. body is the control-plane
// body (nil for putMedia). It returns the access key id it found.
func (s *Server) authenticate(r *http.Request, body []byte) (string, *apiError) {
	now := s.opts.Now()
	reject := func(akid string, status int, errType, message, reason string) (string, *apiError) {
		s.mu.Lock()
		s.rejections = append(s.rejections, Rejection{Time: now, Path: r.URL.Path, AccessKeyID: akid, Status: status, ErrorType: errType, Reason: reason})
		s.notifyLocked()
		s.mu.Unlock()
		return akid, &apiError{status: status, errType: errType, message: message, authBody: true, reason: reason}
	}
	header := r.Header.Get("Authorization")
	if header == "" {
		return reject("", http.StatusForbidden, errTypeMissingAuth, msgMissingAuth, "no Authorization header")
	}
	a, err := parseAuthorization(header)
	if err != nil {
		return reject("", http.StatusBadRequest, errTypeIncompleteSig, err.Error(), err.Error())
	}
	masked := MaskKey(a.AccessKeyID)
	if a.Service != sigService {
		msg := fmt.Sprintf("Credential should be scoped to correct service: '%s'.", sigService)
		return reject(a.AccessKeyID, http.StatusForbidden, errTypeSignature, msg, msg)
	}
	if s.opts.Region != "" && a.Region != s.opts.Region {
		msg := fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", a.Region)
		return reject(a.AccessKeyID, http.StatusForbidden, errTypeSignature, msg, msg)
	}
	signed := map[string]bool{}
	for _, h := range a.SignedHeaders {
		signed[h] = true
	}
	if !signed["host"] || !signed["x-amz-date"] {
		msg := "host and x-amz-date must be signed headers"
		return reject(a.AccessKeyID, http.StatusForbidden, errTypeSignature, msg, msg)
	}
	at, err := requestTime(r)
	if err != nil {
		return reject(a.AccessKeyID, http.StatusBadRequest, errTypeIncompleteSig, err.Error(), err.Error())
	}
	if d := now.Sub(at); d > maxClockSkew || d < -maxClockSkew {
		msg := fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)",
			at.UTC().Format(amzDateLayout), now.UTC().Add(-maxClockSkew).Format(amzDateLayout), now.UTC().Format(amzDateLayout))
		return reject(a.AccessKeyID, http.StatusForbidden, errTypeSignature, msg, msg)
	}
	if a.Day != at.UTC().Format(amzDayLayout) {
		msg := "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"
		return reject(a.AccessKeyID, http.StatusForbidden, errTypeSignature, msg, msg)
	}
	token := r.Header.Get(headerAmzToken)
	if s.opts.Validate != nil {
		if err := s.opts.Validate(a.AccessKeyID, token, now); err != nil {
			if errors.Is(err, ErrExpiredToken) {
				return reject(a.AccessKeyID, http.StatusForbidden, errTypeExpired, msgExpired, err.Error())
			}
			return reject(a.AccessKeyID, http.StatusForbidden, errTypeUnrecognized, msgUnrecognized, err.Error())
		}
	}
	if s.opts.Secret != nil {
		if secret, ok := s.opts.Secret(a.AccessKeyID); ok {
			hashes := []string{emptySHA256}
			if body != nil {
				hashes = append([]string{hexSHA256(body)}, hashes...)
			}
			if h := r.Header.Get(headerAmzHash); h != "" && signed["x-amz-content-sha256"] {
				hashes = append(hashes, h)
			}
			ok, err := verifySignature(r, a, secret, hashes)
			if err != nil {
				return reject(a.AccessKeyID, http.StatusForbidden, errTypeSignature, msgSignatureMismatch, fmt.Sprintf("key %s: %v", masked, err))
			}
			if !ok {
				return reject(a.AccessKeyID, http.StatusForbidden, errTypeSignature, msgSignatureMismatch, fmt.Sprintf("key %s: signature mismatch", masked))
			}
		}
	}
	return a.AccessKeyID, nil
}

// MaskKey shows only the last 4 characters of an access key id.
func MaskKey(akid string) string {
	if len(akid) <= 4 {
		return strings.Repeat("*", len(akid))
	}
	return strings.Repeat("*", len(akid)-4) + akid[len(akid)-4:]
}

// putMedia runs one streaming upload. It returns an error only before the
// 200 answer was sent.
func (s *Server) putMedia(w http.ResponseWriter, r *http.Request, akid string) *apiError {
	name, arn := r.Header.Get("x-amzn-stream-name"), r.Header.Get("x-amzn-stream-arn")
	if name == "" && arn == "" {
		return &apiError{status: http.StatusBadRequest, errType: errTypeInvalidArg, message: "x-amzn-stream-name or x-amzn-stream-arn is required"}
	}
	tcType := r.Header.Get("x-amzn-fragment-timecode-type")
	if tcType != "ABSOLUTE" && tcType != "RELATIVE" {
		return &apiError{status: http.StatusBadRequest, errType: errTypeInvalidArg, message: "x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE"}
	}
	startTS := r.Header.Get("x-amzn-producer-start-timestamp")
	if _, err := strconv.ParseFloat(startTS, 64); err != nil {
		return &apiError{status: http.StatusBadRequest, errType: errTypeInvalidArg, message: "x-amzn-producer-start-timestamp must be seconds since the epoch"}
	}
	s.mu.Lock()
	st, ok := s.lookupLocked(name, arn)
	if !ok {
		s.mu.Unlock()
		return &apiError{status: http.StatusNotFound, errType: errTypeNotFound, message: msgStreamNotFound}
	}
	se := &Session{
		Stream:                 st.Name,
		AccessKeyID:            akid,
		Start:                  s.opts.Now(),
		ProducerStartTimestamp: startTS,
		FragmentTimecodeType:   tcType,
		AckRequired:            r.Header.Get("x-amzn-fragment-acknowledgment-required") != "0",
	}
	s.sessions[st.Name] = append(s.sessions[st.Name], se)
	index := len(s.sessions[st.Name]) - 1
	s.notifyLocked()
	s.mu.Unlock()

	// Answer at once, while the body keeps coming: acknowledgements flow on
	// the response as clusters arrive.
	rc := http.NewResponseController(w)
	if strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		w.WriteHeader(http.StatusContinue)
	}
	_ = rc.EnableFullDuplex()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-RequestId", requestID())
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	up := &upload{s: s, session: se, index: index, stream: st.Name, akid: akid, w: w, rc: rc,
		scale: defaultTimecodeScale, acks: se.AckRequired}
	s.mu.Lock()
	epoch := s.dropEpoch
	s.mu.Unlock()
	counted := &countingReader{r: r.Body, dropped: func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.dropEpoch != epoch
	}}
	err := newMKVScanner(counted, up.handle).run()
	up.finish(err, counted.n)
	switch {
	case errors.Is(err, errDropped):
		s.mu.Lock()
		s.faults = append(s.faults, Fault{Time: s.opts.Now(), Path: PathPutMedia, Dropped: true})
		s.notifyLocked()
		s.mu.Unlock()
		panic(http.ErrAbortHandler) // net/http closes the connection without an answer
	case errors.Is(err, errEndCall):
		// Give the client a moment to read the ERROR acknowledgement and
		// end the call itself, then close the connection.
		_ = rc.SetReadDeadline(time.Now().Add(errorAckGrace))
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	return nil
}

// errorAckGrace is how long a call ended by an ERROR acknowledgement is
// still read (and ignored) before its connection is closed.
const errorAckGrace = 2 * time.Second

var (
	// errDropped: DropPutMedia broke the call off.
	errDropped = errors.New("connection dropped by DropPutMedia")
	// errEndCall: an injected ERROR acknowledgement ended the call.
	errEndCall = errors.New("call ended after an injected ERROR acknowledgement")
)

type countingReader struct {
	r       io.Reader
	n       int64
	dropped func() bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.dropped() {
		return 0, errDropped
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// upload is the state of one putMedia call while its body is scanned.
type upload struct {
	s       *Server
	session *Session
	index   int
	stream  string
	akid    string
	w       io.Writer
	rc      *http.ResponseController
	acks    bool

	scale    uint64
	tracks   []Track
	cur      *Fragment
	curTC    uint64 // raw cluster timecode of cur
	haveTC   bool
	lastTC   int64
	haveLast bool
	writeErr error
}

// ack is one acknowledgement line.
type ack struct {
	EventType        string
	FragmentTimecode int64
	FragmentNumber   string
	ErrorID          int `json:"ErrorId,omitempty"`
}

func (u *upload) sendAck(a ack) {
	if u.cur != nil {
		u.cur.Events = append(u.cur.Events, a.EventType)
	}
	if !u.acks || u.writeErr != nil {
		return
	}
	line, _ := json.Marshal(a)
	if _, err := u.w.Write(append(line, '\n')); err != nil {
		u.writeErr = err
		return
	}
	if err := u.rc.Flush(); err != nil {
		u.writeErr = err
	}
}

func (u *upload) ms(raw uint64) int64 { return int64(raw * u.scale / 1_000_000) }

func (u *upload) handle(ev mkvEvent) error {
	switch ev.Kind {
	case evTimecodeScale:
		u.scale = ev.TimecodeScale
	case evTracks:
		u.tracks = ev.Tracks
		u.s.mu.Lock()
		u.session.Tracks = append([]Track(nil), ev.Tracks...)
		u.s.notifyLocked()
		u.s.mu.Unlock()
	case evClusterStart:
		u.cur = &Fragment{Stream: u.stream, Session: u.index, AccessKeyID: u.akid}
		u.haveTC = false
	case evClusterTimecode:
		if u.cur == nil || u.haveTC {
			return invalid("cluster timecode at offset %d outside a cluster or repeated", ev.Offset)
		}
		u.curTC, u.haveTC = ev.Timecode, true
		u.cur.Timecode = u.ms(ev.Timecode)
		u.s.mu.Lock()
		u.s.fragSeq++
		u.cur.Number = fmt.Sprintf("91343852333181432392682062%021d", u.s.fragSeq)
		u.s.mu.Unlock()
		u.sendAck(ack{EventType: "BUFFERING", FragmentTimecode: u.cur.Timecode, FragmentNumber: u.cur.Number})
	case evBlock:
		if u.cur == nil || !u.haveTC {
			return invalid("block at offset %d before its cluster's timecode", ev.Offset)
		}
		b := ev.Block
		tc := int64(u.curTC) + int64(b.Relative)
		if tc < 0 {
			return invalid("block at offset %d has a negative timecode", ev.Offset)
		}
		f := u.cur
		if len(f.Blocks) == 0 {
			f.KeyframeFirst = b.Keyframe
			for _, t := range u.tracks {
				if t.Number == b.Track {
					f.CodecPrivate = t.CodecPrivate
				}
			}
		}
		f.Blocks = append(f.Blocks, Block{Track: b.Track, Timecode: u.ms(uint64(tc)), Keyframe: b.Keyframe, Frames: b.Frames, Size: b.Size})
		f.Frames += b.Frames
		if b.Keyframe {
			f.Keyframes++
		}
	case evClusterEnd:
		if u.cur == nil || !u.haveTC {
			return invalid("cluster ending at offset %d has no timecode", ev.Offset)
		}
		f := u.cur
		f.Complete = true
		f.Received = u.s.opts.Now()
		u.s.mu.Lock()
		injected, hold := u.s.errorAck, u.s.holdAcks
		u.s.errorAck = 0
		if injected != 0 {
			u.s.faults = append(u.s.faults, Fault{Time: f.Received, Path: PathPutMedia, ErrorID: injected, FragmentTimecode: f.Timecode})
		}
		u.s.mu.Unlock()
		if injected != 0 {
			f.ErrorID = injected
			u.sendAck(ack{EventType: "ERROR", FragmentTimecode: f.Timecode, FragmentNumber: f.Number, ErrorID: injected})
			u.record(f)
			u.cur = nil
			return errEndCall
		}
		if hold {
			u.lastTC, u.haveLast = f.Timecode, true
		} else if u.haveLast && f.Timecode < u.lastTC {
			f.ErrorID = ackErrorTimecodeOrder
			u.sendAck(ack{EventType: "ERROR", FragmentTimecode: f.Timecode, FragmentNumber: f.Number, ErrorID: ackErrorTimecodeOrder})
		} else {
			u.lastTC, u.haveLast = f.Timecode, true
			u.sendAck(ack{EventType: "RECEIVED", FragmentTimecode: f.Timecode, FragmentNumber: f.Number})
			u.sendAck(ack{EventType: "PERSISTED", FragmentTimecode: f.Timecode, FragmentNumber: f.Number})
		}
		u.record(f)
		u.cur = nil
	}
	return nil
}

func (u *upload) record(f *Fragment) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	u.s.fragments[u.stream] = append(u.s.fragments[u.stream], *f)
	u.session.Fragments++
	u.s.notifyLocked()
}

// finish records how the call ended; a cluster still open is kept as an
// incomplete fragment.
func (u *upload) finish(err error, n int64) {
	if errors.Is(err, errInvalidMKV) {
		a := ack{EventType: "ERROR", ErrorID: ackErrorInvalidMKV}
		if u.cur != nil && u.haveTC {
			a.FragmentTimecode, a.FragmentNumber = u.cur.Timecode, u.cur.Number
			u.cur.ErrorID = ackErrorInvalidMKV
		}
		u.sendAck(a)
	}
	if u.cur != nil && u.haveTC {
		u.cur.Received = u.s.opts.Now()
		u.record(u.cur)
	}
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	u.session.End = u.s.opts.Now()
	u.session.Bytes = n
	if err != nil {
		u.session.Err = err.Error()
	}
	u.s.notifyLocked()
}
