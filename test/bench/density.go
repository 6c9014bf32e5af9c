package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/kvsendpoint"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// The density scenario (issue #17 part 4): how many H.264 passthrough
// relays, RTSP camera -> reconnectbin -> kvssink at 2 Mb/s each, this
// machine holds, one gst-launch-1.0 process per relay and all of them as
// pipelines of one process, and what each relay costs in CPU and memory.
// Every relay reads the same camera, a gst-rtsp-server on this machine
// whose own CPU is measured and shown beside the relays'.

// The camera: 1280x720 at 25 fps, H.264 at 2 Mb/s with a keyframe every
// 2 s, encoded once for every client (rtsp_server.py's media factory is
// shared). The SMPTE bars scroll so that every frame differs and x264's
// rate control spends the whole bitrate (on the test servers' default
// moving ball it spends 0.1 Mb/s).
const (
	densityWidth       = 1280
	densityHeight      = 720
	densityFPS         = 25
	densityBitrateKbps = 2000
	densityKeyIntMax   = 50
	densityRegion      = "us-west-2"
)

func densityCameraLaunch() string {
	return fmt.Sprintf("( videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! video/x-raw,width=%d,height=%d,framerate=%d/1 ! "+
		"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=%d bitrate=%d ! video/x-h264,profile=constrained-baseline ! "+
		"h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
		densityWidth, densityHeight, densityFPS, densityKeyIntMax, densityBitrateKbps)
}

// densityStartBound is how long a step's new relays may take to deliver
// their first frame (connect, wait for a keyframe, kvssink's stream set-up).
const densityStartBound = 60 * time.Second

//go:embed densityhost.py
var densityHostScript []byte

// densityRelayID names relay i of a mode (its key): its stream, report
// and credential file, so that no relay of the second mode finds what one
// of the first left behind.
func densityRelayID(mode string, i int) string { return fmt.Sprintf("%s-%02d", mode, i) }

// densityStream names a relay's KVS stream.
func densityStream(id string) string { return "kvsrelay-density-" + id }

// densityRelayArgs is relay i as gst-launch-1.0 arguments, the
// rtsp-passthrough recipe's pipeline (pipelines/rtsp-passthrough.sh with
// its defaults): kvscredprovider keeping the credential file of the
// pipeline's kvssink fresh, reconnectbin around the camera's RTSP client,
// kvssink's caps, kvssink. Quoted values stay one argument, as
// gst-launch-1.0 escapes spaces outside quotes.
func densityRelayArgs(cameraURL, credentialPath string, sink []string) []string {
	args := []string{
		"kvscredprovider", "credential-path=" + credentialPath,
		"reconnectbin", "name=relay",
		`source="rtspsrc location=` + cameraURL + ` protocols=tcp latency=200 ! rtph264depay ! h264parse"`,
		"restart-on-eos=true",
		"!", "video/x-h264,stream-format=avc,alignment=au", "!",
	}
	return append(args, sink...)
}

// densitySink is the kvssink the relays end in: the real one uploading to
// the local KVS endpoint when KVSSINK_PLUGIN_DIR names it, else the test
// build's stand-in. Either way kvscredprovider fetches the credentials
// from a fake IMDS.
type densitySink struct {
	real     bool
	label    string   // which kvssink, for the notes
	env      []string // the relays' environment
	dir      string   // the relays' files (credentials, reports, logs)
	endpoint *kvsendpoint.Server
	imds     *imdsfake.Server
	// staleAfter: a count older than this when read means frames stopped
	// (deliveredShare): a few report rewrites (250 ms) for the stand-in,
	// a fragment (2 s at the camera's keyframe interval) and a half for
	// the endpoint.
	staleAfter time.Duration
	logConfig  string
}

func (b *Bench) densitySink(s *scope) (*densitySink, error) {
	if kvsDir, ok := harness.RealKVSSink(); ok {
		return b.realKVSSink(s, kvsDir, "density-real-registry.bin")
	}
	sysDir, err := gstSystemPluginDir()
	if err != nil {
		return nil, err
	}
	k, common, err := newKVSSinkBase(s)
	if err != nil {
		return nil, err
	}
	standIn, err := b.standInPluginDir()
	if err != nil {
		return nil, err
	}
	k.staleAfter = time.Second
	k.env = append(childEnv(os.Environ(), standIn, sysDir, filepath.Join(b.tmp, "density-standin-registry.bin")), common...)
	if err := kvssinkIs(k.env, filepath.Join(standIn, "libgstkvsrelay.so")); err != nil {
		return nil, err
	}
	k.label = "the kvssink stand-in of the test build (" + standIn + "; it checks what kvssink would accept and uploads nothing; set KVSSINK_PLUGIN_DIR for the real one)"
	return k, nil
}

// newKVSSinkBase makes the relays' folder and the fake IMDS their
// kvscredprovider asks, and returns the environment every relay gets
// whatever its kvssink.
func newKVSSinkBase(s *scope) (*densitySink, []string, error) {
	dir := tmpfsDir(s)
	imds, err := imdsfake.New(imdsfake.Options{})
	if err != nil {
		return nil, nil, err
	}
	s.Cleanup(imds.Close)
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, nil, err
	}
	// kvscredprovider asks the fake IMDS; HOME keeps kvssink's default
	// credential folder (~/.kvs) out of the real home.
	common := []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL(), "HOME=" + home}
	return &densitySink{dir: dir, imds: imds}, common, nil
}

// realKVSSink is the real kvssink in kvsDir uploading to a local KVS
// endpoint (in the bench process), with the measured plugin beside it and
// its own registry file. Its log goes to a file at INFO.
func (b *Bench) realKVSSink(s *scope, kvsDir, registry string) (*densitySink, error) {
	sysDir, err := gstSystemPluginDir()
	if err != nil {
		return nil, err
	}
	kvsDir, err = filepath.Abs(kvsDir)
	if err != nil {
		return nil, err
	}
	k, common, err := newKVSSinkBase(s)
	if err != nil {
		return nil, err
	}
	dir := k.dir
	k.real = true
	k.staleAfter = 5 * time.Second
	k.endpoint, err = k.newEndpoint()
	if err != nil {
		return nil, err
	}
	s.Cleanup(k.endpoint.Close)
	ld := kvsDir
	if cur := os.Getenv("LD_LIBRARY_PATH"); cur != "" {
		ld += string(os.PathListSeparator) + cur
	}
	k.env = append(childEnv(os.Environ(), b.pluginDir+string(os.PathListSeparator)+kvsDir, sysDir, filepath.Join(b.tmp, registry)),
		append(common, "LD_LIBRARY_PATH="+ld, "CONTROL_PLANE_URI="+k.endpoint.URL(), "AWS_DEFAULT_REGION="+densityRegion)...)
	if k.logConfig, err = writeKVSSinkLogConfig(dir, "kvssink"); err != nil {
		return nil, err
	}
	if err := kvssinkIs(k.env, filepath.Join(kvsDir, "libgstkvssink.so")); err != nil {
		return nil, fmt.Errorf("%w (with the real kvssink the relays run the shipped build, which has no stand-in: pass -plugin-dir build)", err)
	}
	k.label = "the real kvssink (" + filepath.Join(kvsDir, "libgstkvssink.so") + ") uploading over HTTP to the local KVS endpoint (test/kvsendpoint, in the bench process)"
	return k, nil
}

// writeKVSSinkLogConfig writes a log4cplus configuration sending kvssink's
// log at INFO to dir/name.log (kvssink logs at DEBUG to stdout without
// one, as the real-kvssink tests note) and returns its path.
func writeKVSSinkLogConfig(dir, name string) (string, error) {
	config := filepath.Join(dir, name+"-log.properties")
	text := "log4cplus.rootLogger=INFO, File\n" +
		"log4cplus.appender.File=log4cplus::FileAppender\n" +
		"log4cplus.appender.File.File=" + filepath.Join(dir, name+".log") + "\n" +
		"log4cplus.appender.File.layout=log4cplus::PatternLayout\n" +
		"log4cplus.appender.File.layout.ConversionPattern=%D{%H:%M:%S.%q} [%t] %-5p %c - %m%n\n"
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		return "", err
	}
	return config, nil
}

// newEndpoint is a local KVS endpoint accepting the credentials the fake
// IMDS issued.
func (k *densitySink) newEndpoint() (*kvsendpoint.Server, error) {
	return kvsendpoint.New(kvsendpoint.Options{
		Validate: kvsendpoint.ValidateIssued(k.imds),
		Secret:   kvsendpoint.SecretIssued(k.imds),
		Region:   densityRegion,
	})
}

// standInPluginDir is a snapshot of the test build holding the kvssink
// stand-in: the measured plugin when it is the test build, else
// $KVSRELAY_TEST_PLUGIN_DIR, else build-test/ beside the measured build.
func (b *Bench) standInPluginDir() (string, error) {
	if b.testBuild {
		return b.pluginDir, nil
	}
	for _, dir := range []string{os.Getenv("KVSRELAY_TEST_PLUGIN_DIR"), filepath.Join(filepath.Dir(b.pluginSrc), "build-test")} {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "libgstkvsrelay.so")); err != nil {
			continue
		}
		snapshot := filepath.Join(b.tmp, "plugin-test-build")
		if err := copyPlugin(dir, snapshot); err != nil {
			return "", err
		}
		return snapshot, nil
	}
	return "", errors.New("the density scenario needs a kvssink: the stand-in of the test build (make build makes build-test/, or set KVSRELAY_TEST_PLUGIN_DIR) or a real one (KVSSINK_PLUGIN_DIR)")
}

var inspectedFile = regexp.MustCompile(`(?m)^\s*Filename\s+(\S+)\s*$`)

// kvssinkIs checks that kvssink resolves to lib in env (and builds env's
// registry, so no relay pays for the plugin scan).
func kvssinkIs(env []string, lib string) error {
	cmd := exec.Command("gst-inspect-1.0", "kvssink")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("gst-inspect-1.0 kvssink: %w: %s", err, lastLine(string(out)))
	}
	m := inspectedFile.FindStringSubmatch(string(out))
	if m == nil || m[1] != lib {
		got := "nothing"
		if m != nil {
			got = m[1]
		}
		return fmt.Errorf("kvssink resolves to %s, want %s", got, lib)
	}
	return nil
}

// tmpfsDir is a private folder on /dev/shm when there is one: the
// stand-in rewrites its report 4 times a second with an fsync, which on
// a disk would measure the disk rather than the relay.
func tmpfsDir(s *scope) string {
	dir, err := os.MkdirTemp("/dev/shm", "kvsrelay-density-")
	if err != nil {
		return s.TempDir()
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (k *densitySink) credentialPath(id string) string {
	return filepath.Join(k.dir, "credential-"+id)
}

func (k *densitySink) reportPath(id string) string {
	return filepath.Join(k.dir, "report-"+id+".json")
}

// args is a relay's kvssink.
func (k *densitySink) args(id string) []string {
	args := []string{"kvssink", "stream-name=" + densityStream(id), "aws-region=" + densityRegion}
	if k.real {
		return append(args, "log-config="+k.logConfig)
	}
	return append(args, "report="+k.reportPath(id))
}

// count is how many frames relay i's kvssink has taken: the stand-in's
// report, or the frames of the fragments the endpoint received completely.
// A relay that has not started yet counts zero.
func (k *densitySink) count(id string) (frameCount, error) {
	if k.real {
		var c frameCount
		for _, f := range k.endpoint.Fragments(densityStream(id)) {
			if !f.Complete {
				continue
			}
			c.Frames += uint64(f.Frames)
			if f.Received.After(c.At) {
				c.At = f.Received
			}
		}
		return c, nil
	}
	data, err := os.ReadFile(k.reportPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return frameCount{}, nil
	}
	if err != nil {
		return frameCount{}, err
	}
	// Only the two fields needed: the bench does not import the stand-in's
	// package, which is GStreamer code.
	var r struct {
		FramesAccepted map[string]uint64 `json:"frames_accepted"`
		UpdatedAt      time.Time         `json:"updated_at"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return frameCount{}, fmt.Errorf("relay %s's stand-in report: %w", id, err)
	}
	var c frameCount
	for _, n := range r.FramesAccepted {
		c.Frames += n
	}
	c.At = r.UpdatedAt
	return c, nil
}

// densityEvents is what the relays' buses and processes said.
type densityEvents struct {
	mu       sync.Mutex
	restarts []time.Time
	failures map[int]string // relay -> why it is gone (first reason)
	messages map[string]int // upload-health messages and warnings, by kind
}

func newDensityEvents() *densityEvents {
	return &densityEvents{failures: map[int]string{}, messages: map[string]int{}}
}

func (e *densityEvents) restart(at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.restarts = append(e.restarts, at)
}

func (e *densityEvents) fail(relay int, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.failures[relay]; !ok {
		e.failures[relay] = why
	}
}

func (e *densityEvents) message(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.messages[kind]++
}

func (e *densityEvents) restartsIn(from, to time.Time) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return countIn(e.restarts, from, to)
}

func (e *densityEvents) failureList() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	relays := make([]int, 0, len(e.failures))
	for r := range e.failures {
		relays = append(relays, r)
	}
	slices.Sort(relays)
	var out []string
	for _, r := range relays {
		if r < 0 {
			out = append(out, e.failures[r]) // the one-process host itself
			continue
		}
		out = append(out, fmt.Sprintf("relay %d: %s", r, e.failures[r]))
	}
	return out
}

func (e *densityEvents) summary() (restarts int, messages string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var kinds []string
	for k, n := range e.messages {
		kinds = append(kinds, fmt.Sprintf("%s x%d", k, n))
	}
	slices.Sort(kinds)
	return len(e.restarts), strings.Join(kinds, ", ")
}

// busEvent is one line a relay printed that the scenario counts.
type busEvent struct {
	Kind  string // "restart", "error", "warning", "message", "eos", "added"
	Relay int    // -1 when the host's line names none
	Text  string // restart reason, error or warning text, message name
}

// gstLaunchMessage matches gst-launch-1.0 -m's message lines:
// `Got message #12 from element "relay" (element): reconnectbin-restart, reason=...`.
var gstLaunchMessage = regexp.MustCompile(`^Got message #\d+ from [a-z]+ "([^"]*)" \(([a-z-]+)\): ([A-Za-z][A-Za-z0-9-]*)`)

// parseGstLaunchEvent reads one stdout line of a per-process relay
// (gst-launch-1.0 -m).
func parseGstLaunchEvent(line string, relay int) (busEvent, bool) {
	m := gstLaunchMessage.FindStringSubmatch(line)
	if m == nil {
		return busEvent{}, false
	}
	source, typ, name := m[1], m[2], m[3]
	switch {
	case typ == "element" && name == "reconnectbin-restart":
		reason := ""
		if r := reasonField.FindStringSubmatch(line); r != nil {
			reason = r[1]
		}
		return busEvent{Kind: "restart", Relay: relay, Text: reason}, true
	case typ == "element" && strings.HasPrefix(name, "kvscredprovider-upload-"):
		return busEvent{Kind: "message", Relay: relay, Text: name}, true
	case typ == "warning":
		return busEvent{Kind: "warning", Relay: relay, Text: "from " + source}, true
	case typ == "error":
		return busEvent{Kind: "error", Relay: relay, Text: "ERROR from " + source}, true
	}
	return busEvent{}, false
}

// parseHostEvent reads one stdout line of the one-process host
// (densityhost.py): "KIND INDEX [TEXT]".
func parseHostEvent(line string) (busEvent, bool) {
	kind, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	index, text, _ := strings.Cut(rest, " ")
	switch kind {
	case "restart", "error", "warning", "message", "eos", "added", "recovered":
	default:
		return busEvent{}, false
	}
	n, err := strconv.Atoi(index)
	if err != nil {
		return busEvent{}, false
	}
	return busEvent{Kind: kind, Relay: n, Text: text}, true
}

// record files a bus event.
func (e *densityEvents) record(ev busEvent, at time.Time) {
	switch ev.Kind {
	case "restart":
		e.restart(at)
		e.message("reconnectbin-restart (" + ev.Text + ")")
	case "error":
		e.fail(ev.Relay, ev.Text)
	case "eos":
		e.fail(ev.Relay, "the pipeline ended (EOS)")
	case "message":
		e.message(ev.Text)
	case "warning":
		e.message("WARNING " + warningKind(ev.Text))
	}
}

// warningKind shortens a warning to its source element (the text after
// "from" up to the first ':'), so that warnings count by kind.
func warningKind(text string) string {
	kind, _, _ := strings.Cut(text, ":")
	return strings.TrimSpace(kind)
}

// relayGroup runs the relays of one mode.
type relayGroup interface {
	// add starts relay i.
	add(i int, args []string) error
	// pids are the processes the relays run in.
	pids() []int
	events() *densityEvents
	close()
}

// processRelays runs each relay as its own gst-launch-1.0 process.
type processRelays struct {
	env   []string
	ev    *densityEvents
	mu    sync.Mutex
	cmds  []*exec.Cmd
	exits sync.WaitGroup
}

func (p *processRelays) add(i int, args []string) error {
	cmd := exec.Command("gst-launch-1.0", append([]string{"-m"}, args...)...)
	cmd.Env = p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &tailWriter{max: 2 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start relay %d: %w", i, err)
	}
	p.mu.Lock()
	p.cmds = append(p.cmds, cmd)
	p.mu.Unlock()
	p.exits.Add(1)
	go func() {
		defer p.exits.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if ev, ok := parseGstLaunchEvent(sc.Text(), i); ok {
				p.ev.record(ev, time.Now())
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		p.ev.fail(i, fmt.Sprintf("gst-launch-1.0 exited (%v): %s", err, lastLine(stderr.String())))
	}()
	return nil
}

func (p *processRelays) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, len(p.cmds))
	for i, c := range p.cmds {
		out[i] = c.Process.Pid
	}
	return out
}

func (p *processRelays) events() *densityEvents { return p.ev }

func (p *processRelays) close() {
	p.mu.Lock()
	cmds := p.cmds
	p.mu.Unlock()
	for _, c := range cmds {
		// The process group: nothing of a relay outlives the step.
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	p.exits.Wait()
}

// hostRelays runs every relay as a pipeline of one python3 process
// (densityhost.py).
type hostRelays struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *tailWriter
	ev      *densityEvents
	replies chan busEvent
	exited  chan struct{}
}

func startHostRelays(script string, env []string) (*hostRelays, error) {
	cmd, stdin, sc, stderr, err := startPythonHost(env, script)
	if err != nil {
		return nil, err
	}
	h := &hostRelays{cmd: cmd, stdin: stdin, stderr: stderr, ev: newDensityEvents(), replies: make(chan busEvent, 4), exited: make(chan struct{})}
	go func() {
		defer close(h.exited)
		for sc.Scan() {
			ev, ok := parseHostEvent(sc.Text())
			switch {
			case !ok:
			case ev.Kind == "added" || ev.Relay < 0:
				select {
				case h.replies <- ev:
				default: // no add waiting for it: keep it as the host's failure
					h.ev.fail(-1, "the host: "+ev.Text)
				}
			default:
				h.ev.record(ev, time.Now())
			}
		}
		err := cmd.Wait()
		h.ev.fail(-1, fmt.Sprintf("the host exited (%v): %s", err, lastLine(h.stderr.String())))
	}()
	return h, nil
}

func (h *hostRelays) add(i int, args []string) error {
	if _, err := io.WriteString(h.stdin, "add "+strings.Join(args, " ")+"\n"); err != nil {
		return fmt.Errorf("add relay %d: the host is gone: %s", i, lastLine(h.stderr.String()))
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case r := <-h.replies:
		if r.Kind != "added" {
			return fmt.Errorf("add relay %d: %s", i, r.Text)
		}
		if r.Relay != i {
			return fmt.Errorf("add relay %d: the host numbered it %d", i, r.Relay)
		}
		return nil
	case <-h.exited:
		return fmt.Errorf("add relay %d: the host exited: %s", i, lastLine(h.stderr.String()))
	case <-timer.C:
		return fmt.Errorf("add relay %d: no answer in 30 s", i)
	}
}

func (h *hostRelays) pids() []int { return []int{h.cmd.Process.Pid} }

func (h *hostRelays) events() *densityEvents { return h.ev }

func (h *hostRelays) close() {
	_ = h.stdin.Close()
	select {
	case <-h.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.exited
	}
}

// densityMode is one way of running the relays.
type densityMode struct {
	key   string // prefix of its relays' ids
	name  string
	start func() (relayGroup, error)
}

// densityProbe is one moment of a step: the relays' frame counts, CPU
// times and the machine's.
type densityProbe struct {
	at         time.Time
	counts     []frameCount
	relayTicks map[int]uint64 // by pid
	camera     uint64
	bench      uint64
	machine    machineCPU
}

// probe reads every relay's count and the CPU times. A relay process that
// is gone is a failure (its events say why); it counts zero.
func probeDensity(k *densitySink, g relayGroup, ids []string, camera int) (densityProbe, error) {
	p := densityProbe{at: time.Now(), relayTicks: map[int]uint64{}}
	for _, id := range ids {
		c, err := k.count(id)
		if err != nil {
			return p, err
		}
		p.counts = append(p.counts, c)
	}
	for _, pid := range g.pids() {
		if t, err := readProcTicks(pid); err == nil {
			p.relayTicks[pid] = t
		}
	}
	var err error
	if p.camera, err = readProcTicks(camera); err != nil {
		return p, fmt.Errorf("the camera: %w", err)
	}
	if p.bench, err = readProcTicks(os.Getpid()); err != nil {
		return p, err
	}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return p, err
	}
	p.machine, err = parseMachineCPU(data)
	return p, err
}

func readProcTicks(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return procCPUTicks(data)
}

// relayMemory sums the RSS, PSS and threads of the relays' processes.
func relayMemory(pids []int) (rss, pss int64, threads int) {
	for _, pid := range pids {
		if s, err := harness.SampleProcess(pid); err == nil {
			rss += s.RSSKiB
			threads += s.Threads
		}
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
			if v, err := parsePssKiB(data); err == nil {
				pss += v
			}
		}
	}
	return rss, pss, threads
}

// densityRamp runs one mode: N relays, N growing step by step (new relays
// join the running ones), measured over a window at each step, until a
// step does not hold or the steps run out.
func (b *Bench) densityRamp(k *densitySink, cam *servers.RTSPServer, mode densityMode) ([]densityStep, *densityEvents, error) {
	tm := b.timing()
	g, err := mode.start()
	if err != nil {
		return nil, nil, err
	}
	defer g.close()
	var steps []densityStep
	var ids []string
	relays := 0
	n := tm.densitySteps[0]
	for idx := 0; ; idx++ {
		b.progress("density: %s: %d relay(s)", mode.name, n)
		added := time.Now()
		for ; relays < n; relays++ {
			id := densityRelayID(mode.key, relays)
			ids = append(ids, id)
			if err := g.add(relays, densityRelayArgs(cam.URL(), k.credentialPath(id), k.args(id))); err != nil {
				return steps, g.events(), err
			}
		}
		// Every relay delivers, or has failed, or the bound passed.
		deadline := added.Add(densityStartBound)
		var silent []int
		for {
			silent = silent[:0]
			for i, id := range ids {
				c, err := k.count(id)
				if err != nil {
					return steps, g.events(), err
				}
				if c.Frames == 0 {
					silent = append(silent, i)
				}
			}
			if len(silent) == 0 || time.Now().After(deadline) || len(g.events().failureList()) > 0 {
				break
			}
			if err := sleepCtx(b.ctx, 250*time.Millisecond); err != nil {
				return steps, g.events(), err
			}
		}
		for _, i := range silent {
			g.events().fail(i, fmt.Sprintf("no frame reached kvssink within %s of the step's start", secs(densityStartBound)+" s"))
		}
		if idx == 0 && len(silent) == n {
			return steps, g.events(), fmt.Errorf("%s: no relay delivered a frame: %s", mode.name, strings.Join(g.events().failureList(), "; "))
		}
		if err := sleepCtx(b.ctx, tm.densitySettle); err != nil {
			return steps, g.events(), err
		}
		start, err := probeDensity(k, g, ids, cam.Process().PID())
		if err != nil {
			return steps, g.events(), err
		}
		if err := sleepCtx(b.ctx, tm.densityWindow); err != nil {
			return steps, g.events(), err
		}
		end, err := probeDensity(k, g, ids, cam.Process().PID())
		if err != nil {
			return steps, g.events(), err
		}
		step := densityStep{Relays: n, Restarts: g.events().restartsIn(start.at, end.at), Failures: g.events().failureList()}
		wall := end.at.Sub(start.at).Seconds()
		perSecond := func(a, b uint64) float64 { return float64(b-a) / userHZ / wall }
		// Processes that ran through the window: one that exited in it is
		// a failure of its own, and its CPU time is gone with it.
		for pid, t := range end.relayTicks {
			if t0, ok := start.relayTicks[pid]; ok && t >= t0 {
				step.RelayCPU += perSecond(t0, t)
			}
		}
		step.CameraCPU = perSecond(start.camera, end.camera)
		step.BenchCPU = perSecond(start.bench, end.bench)
		step.MachineBusy = start.machine.busyShare(end.machine)
		step.RSSKiB, step.PSSKiB, step.Threads = relayMemory(g.pids())
		for i := 0; i < n; i++ {
			step.Shares = append(step.Shares, deliveredShare(start.counts[i], end.counts[i], end.at, densityFPS, k.staleAfter))
		}
		step.Holds, step.Why = defaultDensityCriteria.verdict(step)
		steps = append(steps, step)
		worst, _, _ := worstAndMean(step.Shares)
		b.progress("density: %s: %d relay(s): CPU %.0f%% of a core, worst relay %.1f%% of the frames, machine %.0f%% busy: holds %v %s",
			mode.name, n, step.RelayCPU*100, worst*100, step.MachineBusy*100, step.Holds, step.Why)
		next, ok := nextDensityStep(tm.densitySteps, idx, step.Holds)
		if !ok {
			return steps, g.events(), nil
		}
		n = next
	}
}

// cameraBitrate reads the camera as a plain client for d after its first
// bytes and a settling second, and returns the H.264 bitrate in Mb/s.
func (b *Bench) cameraBitrate(url string, d time.Duration) (float64, error) {
	cmd := exec.CommandContext(b.ctx, "gst-launch-1.0", "-q", "rtspsrc", "location="+url, "protocols=tcp", "!", "rtph264depay", "!", "h264parse",
		"!", "fdsink", "fd=1", "sync=false")
	cmd.Env = b.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &tailWriter{max: 2 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	var mu sync.Mutex
	var total int64
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := stdout.Read(buf)
			mu.Lock()
			total += int64(n)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	read := func() int64 { mu.Lock(); defer mu.Unlock(); return total }
	if !waitFor(b.ctx, 30*time.Second, func() bool { return read() > 0 }) {
		return 0, fmt.Errorf("no H.264 from the camera %s in 30 s: %s", url, lastLine(stderr.String()))
	}
	if err := sleepCtx(b.ctx, time.Second); err != nil {
		return 0, err
	}
	from, start := read(), time.Now()
	if err := sleepCtx(b.ctx, d); err != nil {
		return 0, err
	}
	return float64(read()-from) * 8 / time.Since(start).Seconds() / 1e6, nil
}

// densityScenario ramps both modes against one camera and tabulates them.
func (b *Bench) densityScenario(s *scope) ([]Table, error) {
	tm := b.timing()
	k, err := b.densitySink(s)
	if err != nil {
		return nil, err
	}
	cam := servers.NewRTSPServer(s, servers.RTSPOptions{Launch: densityCameraLaunch()})
	b.progress("density: measuring the camera's bitrate for %s s", secs(tm.cameraProbe))
	mbps, err := b.cameraBitrate(cam.URL(), tm.cameraProbe)
	if err != nil {
		return nil, err
	}
	script := filepath.Join(s.TempDir(), "densityhost.py")
	if err := os.WriteFile(script, densityHostScript, 0o644); err != nil {
		return nil, err
	}
	modes := []densityMode{
		{key: "pp", name: "per process", start: func() (relayGroup, error) {
			return &processRelays{env: k.env, ev: newDensityEvents()}, nil
		}},
		{key: "op", name: "one process", start: func() (relayGroup, error) { return startHostRelays(script, k.env) }},
	}
	results := map[string][]densityStep{}
	var notes []string
	var failure error
	for _, m := range modes {
		steps, ev, err := b.densityRamp(k, cam, m)
		results[m.name] = steps
		if ev != nil {
			restarts, messages := ev.summary()
			if messages == "" {
				messages = "none"
			}
			notes = append(notes, fmt.Sprintf("%s: %d reconnectbin restart(s) over the whole ramp; messages counted: %s.", modeLabel(m.name), restarts, messages))
		}
		if err != nil {
			failure = errors.Join(failure, fmt.Errorf("%s: %w", m.name, err))
			if b.ctx.Err() != nil {
				break
			}
		}
	}
	tables := densityTables(k, mbps, tm, modes, results, notes)
	return tables, failure
}

func modeLabel(name string) string {
	switch name {
	case "per process":
		return "per process (one gst-launch-1.0 per relay)"
	case "one process":
		return "one process (N pipelines in python3)"
	}
	return name
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func percentCell(v float64) string { return fmt.Sprintf("%.1f", v*100) }

func mibCell(kib int64, relays int) string {
	return fmt.Sprintf("%.1f", float64(kib)/1024/float64(relays))
}

// densityTables renders the ramp, the summary per mode and the comparison
// of the two modes at the same relay counts.
func densityTables(k *densitySink, mbps float64, tm timing, modes []densityMode, results map[string][]densityStep, runNotes []string) []Table {
	c := defaultDensityCriteria
	ramp := Table{
		Title: fmt.Sprintf("Density: H.264 passthrough relays (RTSP camera -> reconnectbin -> kvssink) at %.1f Mb/s each, step by step", mbps),
		Columns: []string{"Mode", "relays (count)", "relays' CPU (% of a core)", "CPU per relay (% of a core)", "RSS per relay (MiB)", "PSS per relay (MiB)",
			"threads per relay (count)", "frames delivered, worst relay (%)", "frames delivered, mean (%)", "restarts in window (count)",
			"camera CPU (% of a core)", "bench process CPU (% of a core)", "machine busy (%)", "holds", "why not"},
	}
	summary := Table{
		Title: "Density: the most relays that held, and what each cost there",
		Columns: []string{"Mode", "relays held, most (count)", "CPU per relay (% of a core)", "RSS per relay (MiB)", "PSS per relay (MiB)",
			"CPU per added relay (% of a core)", "PSS per added relay (MiB)", "camera CPU (% of a core)", "machine busy (%)", "next step (count)", "why the next step did not hold"},
	}
	for _, m := range modes {
		steps := results[m.name]
		for _, s := range steps {
			worst, mean, ok := worstAndMean(s.Shares)
			wc, mc := naCell, naCell
			if ok {
				wc, mc = percentCell(worst), percentCell(mean)
			}
			holds := "yes"
			if !s.Holds {
				holds = "no"
			}
			ramp.AddRow(modeLabel(m.name), strconv.Itoa(s.Relays), percentCell(s.RelayCPU), percentCell(s.RelayCPU/float64(s.Relays)),
				mibCell(s.RSSKiB, s.Relays), mibCell(s.PSSKiB, s.Relays), fmt.Sprintf("%.1f", float64(s.Threads)/float64(s.Relays)), wc, mc, strconv.Itoa(s.Restarts),
				percentCell(s.CameraCPU), percentCell(s.BenchCPU), fmt.Sprintf("%.0f", s.MachineBusy*100), holds, s.Why)
		}
		held, failed := rampOutcome(steps)
		if len(steps) == 0 {
			summary.AddRow(modeLabel(m.name), naCell, naCell, naCell, naCell, naCell, naCell, naCell, naCell, naCell, "not measured")
			continue
		}
		next, why := naCell, "every step held up to the last one measured"
		if failed >= 0 {
			next, why = strconv.Itoa(steps[failed].Relays), steps[failed].Why
		}
		if held < 0 {
			summary.AddRow(modeLabel(m.name), "0", naCell, naCell, naCell, naCell, naCell, naCell, naCell, next, why)
			continue
		}
		h, first := steps[held], steps[0]
		cpuSlope, pssSlope := naCell, naCell
		if v, ok := perRelaySlope(first.Relays, first.RelayCPU, h.Relays, h.RelayCPU); ok {
			cpuSlope = percentCell(v)
		}
		if v, ok := perRelaySlope(first.Relays, float64(first.PSSKiB)/1024, h.Relays, float64(h.PSSKiB)/1024); ok {
			pssSlope = fmt.Sprintf("%.1f", v)
		}
		summary.AddRow(modeLabel(m.name), strconv.Itoa(h.Relays), percentCell(h.RelayCPU/float64(h.Relays)), mibCell(h.RSSKiB, h.Relays), mibCell(h.PSSKiB, h.Relays),
			cpuSlope, pssSlope, percentCell(h.CameraCPU), fmt.Sprintf("%.0f", h.MachineBusy*100), next, why)
	}
	versus := Table{
		Title: "Density: one process against one process per relay, at the same relay count",
		Columns: []string{"relays (count)", "both held", "CPU per relay, per process (% of a core)", "CPU per relay, one process (% of a core)", "CPU ratio per process / one process (x)",
			"RSS per relay, per process (MiB)", "RSS per relay, one process (MiB)", "RSS ratio (x)",
			"PSS per relay, per process (MiB)", "PSS per relay, one process (MiB)", "PSS ratio (x)"},
		Notes: []string{"Every relay count both modes measured. Ratios above 1 mean one process costs less per relay; read them off the rows where both held (a step that did not hold ran short of CPU). RSS counts the pages the per-process relays share (GStreamer's and the plugin's code) once in every process; PSS shares them out, so it is the fairer memory comparison."},
	}
	byCount := map[int]densityStep{}
	for _, s := range results["one process"] {
		byCount[s.Relays] = s
	}
	ratio := func(a, b float64) string {
		if b <= 0 {
			return naCell
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for _, p := range results["per process"] {
		o, ok := byCount[p.Relays]
		if !ok {
			continue
		}
		both := "no"
		if p.Holds && o.Holds {
			both = "yes"
		}
		n := float64(p.Relays)
		versus.AddRow(strconv.Itoa(p.Relays), both, percentCell(p.RelayCPU/n), percentCell(o.RelayCPU/n), ratio(p.RelayCPU, o.RelayCPU),
			mibCell(p.RSSKiB, p.Relays), mibCell(o.RSSKiB, o.Relays), ratio(float64(p.RSSKiB), float64(o.RSSKiB)),
			mibCell(p.PSSKiB, p.Relays), mibCell(o.PSSKiB, o.Relays), ratio(float64(p.PSSKiB), float64(o.PSSKiB)))
	}
	ramp.Notes = append([]string{
		fmt.Sprintf("Camera: one gst-rtsp-server (test/servers/rtsp_server.py, Debian's python3) on this machine with a shared media factory, so it encodes once for every client: %dx%d at %d fps, x264enc ultrafast zerolatency bitrate=%d key-int-max=%d (a keyframe every 2 s), scrolling SMPTE bars so that the whole bitrate is spent; a plain client measured %.2f Mb/s of H.264 before the ramp. Its CPU (encoding, and sending to every relay) is its own column: it is not in the relays' figures.",
			densityWidth, densityHeight, densityFPS, densityBitrateKbps, densityKeyIntMax, mbps),
		"Relay: the rtsp-passthrough recipe's pipeline, kvscredprovider credential-path=... reconnectbin source=\"rtspsrc location=... protocols=tcp latency=200 ! rtph264depay ! h264parse\" restart-on-eos=true ! video/x-h264,stream-format=avc,alignment=au ! kvssink stream-name=... aws-region=..., each relay with its own stream and credential file; kvscredprovider fetches credentials from a fake IMDS (test/imdsfake). kvssink is " + k.label + ".",
		"Per process: one gst-launch-1.0 -m process per relay. One process: one Debian python3 process (test/bench/densityhost.py) holding every relay as its own GstPipeline built from the same description, as an application with one pipeline per camera would: one GStreamer, one libgstkvsrelay.so and its one Go runtime for all of them. A Go program never loads the plugin (one Go runtime per process), hence python3; a single gst-launch-1.0 with N chains in one pipeline would share one bus, clock and state between the relays, which is not how such an application is built.",
		fmt.Sprintf("Ramp: relay counts %s; each step adds relays to the running ones, waits until every relay's kvssink has taken a frame (at most %s s), lets them settle for %s s, then measures a %s s window; the ramp of a mode ends at the first step that does not hold, or after the last count. Then the mode's relays are killed and the other mode starts from one relay, against the same camera.",
			joinInts(tm.densitySteps), secs(densityStartBound), secs(tm.densitySettle), secs(tm.densityWindow)),
		fmt.Sprintf("A step holds when every relay delivered at least %.0f%% of the camera's %d frames a second to its kvssink over the window, no relay restarted its source or failed (exited, posted an ERROR, never delivered), and the machine (all cores, every process on it) was busy at most %.0f%% of the window: beyond that there is no room left for a burst or a reconnect, whatever the frames say.", c.MinShare*100, densityFPS, c.MaxBusy*100),
		"Frames delivered: frames kvssink took over the window, from the stand-in's report (frames_accepted and the moment it was true, rewritten 4 times a second) or, with the real kvssink, the frames in the fragments the endpoint received complete (counted between fragment ends); divided by the camera's frame rate over the same span. A count that stops moving before the window's end counts the silence as missed frames.",
		"CPU: user+system time from /proc/<pid>/stat over the window, per second of it, in % of one core (200% is this whole 2-core machine): the relays' processes (all of them, per process), the camera's, and the bench's own (which, with the real kvssink, holds the KVS endpoint receiving every upload). Machine busy: /proc/stat over all cores, everything on the machine included. RSS and PSS (/proc/<pid>/smaps_rollup) at the window's end, divided by the relay count; in one process that spreads the process's own base (python3, GStreamer, the Go runtime) over the relays. \"Per added relay\" is the slope from the first step to the last that held.",
	}, runNotes...)
	if !k.real {
		ramp.Notes = append(ramp.Notes, "The stand-in is not kvssink: it checks every frame and writes its report but builds no MKV and uploads nothing, so the real kvssink's own cost (packaging, its content store, the HTTP upload) is not in these numbers; set KVSSINK_PLUGIN_DIR to measure with it. The stand-in's report is written to tmpfs (/dev/shm) so that its fsyncs do not measure the disk.")
	} else {
		ramp.Notes = append(ramp.Notes, "The real kvssink keeps frames in its content store until they are acknowledged and older than its buffer-duration (default 120 s), so a stream's memory may still grow during its first two minutes; a step's window comes seconds after its newest relays started, so RSS and PSS are of relays of different ages (the first ones had run for minutes by the last steps).")
	}
	return []Table{ramp, summary, versus}
}
