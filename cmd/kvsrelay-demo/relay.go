package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// relaySink says where the relay's H.264 goes: a local MKV file, or
// kvssink when a stream name was given and kvssink is installed.
type relaySink struct {
	MKVPath       string
	KVSStreamName string
}

func (s relaySink) String() string {
	if s.KVSStreamName != "" {
		return "kvssink stream-name=" + s.KVSStreamName
	}
	return s.MKVPath
}

// relayArgs is the relay's gst-launch-1.0 command line: the source wrapped in
// reconnectbin, normalised to fixed caps, re-encoded once for the whole run.
// -m prints the bus messages the demo follows; -e turns SIGINT into EOS so
// the sink finishes its file (or upload) before gst-launch exits.
func relayArgs(port int, stallTimeout time.Duration, sink relaySink) []string {
	source := fmt.Sprintf("tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse ! avdec_h264", port)
	args := []string{"gst-launch-1.0", "-m", "-e",
		"reconnectbin", "source=" + source, "stall-timeout=" + strconv.FormatInt(int64(stallTimeout), 10), "!",
		"videoconvert", "!", "videoscale", "!", "video/x-raw,width=640,height=360", "!",
		"x264enc", "tune=zerolatency", "speed-preset=ultrafast", "key-int-max=25", "!",
		"h264parse", "!"}
	if sink.KVSStreamName != "" {
		return append(args, "video/x-h264,stream-format=avc,alignment=au", "!",
			"kvssink", "stream-name="+sink.KVSStreamName)
	}
	// gst-launch escapes the spaces inside one argument, so a path with
	// spaces stays one property value.
	return append(args, "matroskamux", "!", "filesink", "location="+sink.MKVPath)
}

// relayEventKind is what a line of gst-launch-1.0 output told the demo.
type relayEventKind int

const (
	eventRestart   relayEventKind = iota // reconnectbin-restart
	eventRecovered                       // reconnectbin-recovered
	eventPlaying                         // the pipeline reached PLAYING
	eventError                           // an ERROR reached gst-launch
	eventWarning                         // a WARNING reached gst-launch
	eventEOS                             // the pipeline ended (expected only after SIGINT)
)

// relayEvent is one parsed line; At is set by the reader.
type relayEvent struct {
	Kind relayEventKind
	At   time.Duration

	// eventRestart
	Reason  string
	Error   string
	Attempt int
	Delay   time.Duration
	// eventRecovered
	Outage   time.Duration
	Attempts int
	// eventError, eventWarning
	Text string
}

var messageLine = regexp.MustCompile(`^Got message #\d+ from element "([^"]*)" \(element\): (.*)$`)

// parseLaunchLine turns one line of gst-launch-1.0 -m output into an event.
// Lines the demo does not follow give ok=false; a reconnectbin message with
// fields that do not parse is an error, since it means the element and the
// demo disagree about the message format.
func parseLaunchLine(line string) (ev relayEvent, ok bool, err error) {
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "Setting pipeline to PLAYING"):
		return relayEvent{Kind: eventPlaying}, true, nil
	case strings.HasPrefix(line, "Got EOS from element"):
		return relayEvent{Kind: eventEOS}, true, nil
	case strings.HasPrefix(line, "ERROR: "):
		return relayEvent{Kind: eventError, Text: strings.TrimPrefix(line, "ERROR: ")}, true, nil
	case strings.HasPrefix(line, "WARNING: "):
		return relayEvent{Kind: eventWarning, Text: strings.TrimPrefix(line, "WARNING: ")}, true, nil
	}
	m := messageLine.FindStringSubmatch(line)
	if m == nil {
		return relayEvent{}, false, nil
	}
	name, fields, err := parseStructure(m[2])
	if err != nil {
		return relayEvent{}, false, fmt.Errorf("element message from %s: %w", m[1], err)
	}
	switch name {
	case "reconnectbin-restart":
		ev = relayEvent{Kind: eventRestart, Reason: fields["reason"], Error: fields["error"]}
		if ev.Attempt, err = intField(fields, "attempt"); err != nil {
			return relayEvent{}, false, fmt.Errorf("%s: %w", name, err)
		}
		if ev.Delay, err = nsField(fields, "delay"); err != nil {
			return relayEvent{}, false, fmt.Errorf("%s: %w", name, err)
		}
		if ev.Reason == "" {
			return relayEvent{}, false, fmt.Errorf("%s: no reason field", name)
		}
		return ev, true, nil
	case "reconnectbin-recovered":
		ev = relayEvent{Kind: eventRecovered}
		if ev.Outage, err = nsField(fields, "outage"); err != nil {
			return relayEvent{}, false, fmt.Errorf("%s: %w", name, err)
		}
		if ev.Attempts, err = intField(fields, "attempts"); err != nil {
			return relayEvent{}, false, fmt.Errorf("%s: %w", name, err)
		}
		return ev, true, nil
	}
	return relayEvent{}, false, nil
}

func intField(fields map[string]string, key string) (int, error) {
	v, ok := fields[key]
	if !ok {
		return 0, fmt.Errorf("no %s field", key)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("field %s=%q: %w", key, v, err)
	}
	return n, nil
}

func nsField(fields map[string]string, key string) (time.Duration, error) {
	v, ok := fields[key]
	if !ok {
		return 0, fmt.Errorf("no %s field", key)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("field %s=%q: %w", key, v, err)
	}
	return time.Duration(n), nil
}

// parseStructure reads a serialised GstStructure as gst-launch prints it:
// `name, key=(type)value, key=(string)"quoted\ text";`. Values come back
// without their type, quotes and backslash escapes (GStreamer escapes
// special characters with a backslash and non-ASCII bytes as \ooo octal).
func parseStructure(s string) (string, map[string]string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, ";")
	parts, err := splitTopLevel(s)
	if err != nil {
		return "", nil, err
	}
	name := strings.TrimSpace(parts[0])
	if name == "" {
		return "", nil, fmt.Errorf("structure %q has no name", s)
	}
	fields := map[string]string{}
	for _, part := range parts[1:] {
		key, value, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			return "", nil, fmt.Errorf("structure %s: field %q has no '='", name, part)
		}
		if strings.HasPrefix(value, "(") {
			end := strings.IndexByte(value, ')')
			if end < 0 {
				return "", nil, fmt.Errorf("structure %s: field %s: unterminated type in %q", name, key, value)
			}
			value = value[end+1:]
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		fields[key] = unescapeGst(value)
	}
	return name, fields, nil
}

// splitTopLevel splits at commas outside quotes and not escaped.
func splitTopLevel(s string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	if inQuote {
		return nil, fmt.Errorf("structure %q: unterminated quote", s)
	}
	return append(parts, cur.String()), nil
}

func unescapeGst(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// relayOptions configures the relay process.
type relayOptions struct {
	Port         int
	StallTimeout time.Duration
	Sink         relaySink
	Env          []string
	LogPath      string
	// Since returns the demo's elapsed time, used to stamp events.
	Since func() time.Duration
}

// relay is the running gst-launch-1.0 relay and the events read from it.
type relay struct {
	proc    *groupProcess
	events  chan relayEvent
	logPath string

	mu        sync.Mutex
	lastLines []string // the last lines of output, for error reports
}

const keptRelayLines = 10

func startRelay(c *children, opts relayOptions) (*relay, error) {
	log, err := os.Create(opts.LogPath)
	if err != nil {
		return nil, fmt.Errorf("relay log: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("relay output pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		log.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("relay output pipe: %w", err)
	}
	proc, err := c.start("relay", relayArgs(opts.Port, opts.StallTimeout, opts.Sink), opts.Env, outW, errW)
	// The child holds its own copies of the write ends; closing ours lets the
	// readers see EOF when gst-launch exits.
	outW.Close()
	errW.Close()
	if err != nil {
		log.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	r := &relay{proc: proc, events: make(chan relayEvent, 256), logPath: opts.LogPath}
	var logMu sync.Mutex
	var readers sync.WaitGroup
	for _, pipe := range []*os.File{outR, errR} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer pipe.Close()
			r.read(pipe, log, &logMu, opts.Since)
		}()
	}
	go func() {
		readers.Wait()
		log.Close()
		close(r.events)
	}()
	return r, nil
}

// read follows one output stream of gst-launch, logging every line and
// forwarding the lines the demo understands as events.
func (r *relay) read(pipe io.Reader, log io.Writer, logMu *sync.Mutex, since func() time.Duration) {
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		logMu.Lock()
		fmt.Fprintln(log, line)
		logMu.Unlock()
		if !isNoise(line) {
			r.mu.Lock()
			r.lastLines = append(r.lastLines, line)
			if len(r.lastLines) > keptRelayLines {
				r.lastLines = r.lastLines[1:]
			}
			r.mu.Unlock()
		}
		ev, ok, err := parseLaunchLine(line)
		if err != nil {
			ev, ok = relayEvent{Kind: eventWarning, Text: "demo could not read a reconnectbin message: " + err.Error()}, true
		}
		if ok {
			ev.At = since()
			r.events <- ev
		}
	}
}

// isNoise is true for the routine lines of gst-launch -m that say nothing
// about why a relay ended.
func isNoise(line string) bool {
	for _, routine := range []string{"(qos)", "(state-changed)", "(latency)", "(stream-status)", "(property-notify)", "Redistribute latency"} {
		if strings.Contains(line, routine) {
			return true
		}
	}
	return false
}

// tail returns the last interesting lines the relay printed.
func (r *relay) tail() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lastLines...)
}

// stop sends SIGINT (gst-launch -e turns it into EOS, so the sink finalises
// its output) and waits up to timeout; a relay that hangs is killed.
func (r *relay) stop(timeout time.Duration) (forced bool, took time.Duration, err error) {
	begin := time.Now()
	if r.proc.hasExited() {
		return false, 0, nil
	}
	if err := r.proc.signalGroup(syscall.SIGINT); err != nil {
		return false, 0, err
	}
	if err := r.proc.wait(timeout); err != nil {
		if kerr := r.proc.kill(5 * time.Second); kerr != nil {
			return true, time.Since(begin), fmt.Errorf("%w; killing it failed too: %v", err, kerr)
		}
		return true, time.Since(begin), nil
	}
	return false, time.Since(begin), nil
}
