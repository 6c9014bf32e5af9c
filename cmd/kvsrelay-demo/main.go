// Command kvsrelay-demo shows reconnectbin healing a live relay: a local
// H.264/MPEG-TS test camera on 127.0.0.1 is killed and later frozen on a
// timetable, while a gst-launch-1.0 relay wraps it in reconnectbin and
// records an MKV (or feeds kvssink). At the end it checks the recording with
// ffprobe and ffmpeg and says plainly whether the relay survived.
//
//	kvsrelay-demo -plugin-dir build [-duration 45s] [-out kvsrelay-demo.mkv] [-stream-name NAME] [-quiet]
//
// The demo is a Go program, so it never loads libgstkvsrelay.so itself (one
// Go runtime per process): every pipeline runs in a gst-launch-1.0 child.
//
// Exit status: 0 pass, 1 the demo ran and something failed (the reasons are
// printed), 2 bad flags or a machine that cannot run the demo, 130
// interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	exitPass        = 0
	exitFail        = 1
	exitSetup       = 2
	exitInterrupted = 130

	// demoStallTimeout is well below the freeze so the stall shows clearly.
	demoStallTimeout = 2 * time.Second
	pluginFile       = "libgstkvsrelay.so"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	PluginDir  string
	Duration   time.Duration
	Out        string
	StreamName string
	Quiet      bool
}

var streamNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,256}$`)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("kvsrelay-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.PluginDir, "plugin-dir", "", "folder holding "+pluginFile+" (required)")
	fs.DurationVar(&o.Duration, "duration", 45*time.Second, fmt.Sprintf("length of the demo (at least %v); the fault timetable scales with it", minDemoDuration))
	fs.StringVar(&o.Out, "out", "kvsrelay-demo.mkv", "MKV file the relay records")
	fs.StringVar(&o.StreamName, "stream-name", "", "send to this Kinesis Video stream through kvssink instead of recording an MKV (needs kvssink installed and AWS credentials)")
	fs.BoolVar(&o.Quiet, "quiet", false, "no per-second progress lines (events and the summary are still printed)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.PluginDir == "" {
		return o, errors.New("-plugin-dir is required: the folder holding " + pluginFile + " (make demo passes build/)")
	}
	if o.Out == "" {
		return o, errors.New("-out must name a file")
	}
	if o.StreamName != "" && !streamNamePattern.MatchString(o.StreamName) {
		return o, fmt.Errorf("-stream-name %q: a Kinesis Video stream name is 1-256 characters of a-z, A-Z, 0-9, '_', '.', '-'", o.StreamName)
	}
	if _, err := planSchedule(o.Duration); err != nil {
		return o, err
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "kvsrelay-demo:", err)
		}
		return exitSetup
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	kids := newChildren()
	// Whatever path leaves run, no child outlives the demo.
	defer kids.killAll(5 * time.Second)
	out := &haltableWriter{w: stdout}
	go func() {
		<-ctx.Done()
		// The first Ctrl-C asks for an orderly stop (the relay gets SIGINT
		// so the MKV is finished). A second one must not orphan the
		// children, which live in their own process groups.
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		// Silence the orderly shutdown first: it would otherwise report the
		// children dying below as if they had stopped normally.
		out.halt()
		fmt.Fprintln(stderr, "\nkvsrelay-demo: second interrupt, killing every child process now")
		kids.killAll(2 * time.Second)
		os.Exit(exitInterrupted)
	}()

	d, err := prepare(ctx, opts, kids, out)
	if err != nil {
		fmt.Fprintln(stderr, "kvsrelay-demo:", err)
		return exitSetup
	}
	return d.run(ctx)
}

// haltableWriter serialises the demo's output and can be shut for good.
type haltableWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (h *haltableWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.w.Write(p)
}

// halt blocks every later Write until the process exits.
func (h *haltableWriter) halt() { h.mu.Lock() }

// demo holds one prepared run.
type demo struct {
	opts    options
	out     io.Writer
	kids    *children
	plan    schedule
	env     []string
	tempDir string
	sink    relaySink
	overlay bool
}

// prepare checks the machine and builds the children's environment.
func prepare(ctx context.Context, opts options, kids *children, out io.Writer) (_ *demo, err error) {
	plan, err := planSchedule(opts.Duration)
	if err != nil {
		return nil, err
	}
	for _, tool := range []string{"gst-launch-1.0", "gst-inspect-1.0", "pkg-config", "ffprobe", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found on PATH (run `make deps`): %w", tool, err)
		}
	}
	pluginDir, err := filepath.Abs(opts.PluginDir)
	if err != nil {
		return nil, fmt.Errorf("-plugin-dir %q: %w", opts.PluginDir, err)
	}
	if _, err := os.Stat(filepath.Join(pluginDir, pluginFile)); err != nil {
		return nil, fmt.Errorf("-plugin-dir %s holds no %s (build it with `make build`): %w", pluginDir, pluginFile, err)
	}
	sysDir, err := exec.CommandContext(ctx, "pkg-config", "--variable=pluginsdir", "gstreamer-1.0").Output()
	if err != nil || strings.TrimSpace(string(sysDir)) == "" {
		return nil, fmt.Errorf("asking pkg-config for GStreamer's plugin folder (pkg-config --variable=pluginsdir gstreamer-1.0) failed; is libgstreamer1.0-dev installed? (%v)", err)
	}
	tempDir, err := os.MkdirTemp("", "kvsrelay-demo-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary folder for the registry and logs: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tempDir)
		}
	}()
	d := &demo{opts: opts, out: out, kids: kids, plan: plan, tempDir: tempDir}
	d.env = childEnv(os.Environ(), pluginDir, strings.TrimSpace(string(sysDir)), filepath.Join(tempDir, "registry.bin"))

	// The first gst-inspect builds the private registry, so the timed part
	// of the demo starts with a warm one.
	if msg, err := d.inspect(ctx, "reconnectbin"); err != nil {
		return nil, fmt.Errorf("gst-inspect-1.0 cannot load reconnectbin from %s: %v\n%s", pluginDir, err, msg)
	}
	var missing []string
	for _, el := range []string{"videotestsrc", "x264enc", "h264parse", "mpegtsmux", "tcpserversink", "tcpclientsrc",
		"tsdemux", "avdec_h264", "videoconvert", "videoscale", "matroskamux", "filesink"} {
		if _, err := d.inspect(ctx, "--exists", el); err != nil {
			missing = append(missing, el)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("GStreamer elements missing: %s (run `make deps`)", strings.Join(missing, ", "))
	}
	_, err = d.inspect(ctx, "--exists", "timeoverlay")
	d.overlay = err == nil

	outPath, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, fmt.Errorf("-out %q: %w", opts.Out, err)
	}
	d.sink = relaySink{MKVPath: outPath}
	if opts.StreamName != "" {
		if _, err := d.inspect(ctx, "kvssink"); err != nil {
			fmt.Fprintf(out, "-stream-name %s: kvssink is not installed where GStreamer can find it (gst-inspect-1.0 kvssink failed),\n"+
				"so this run records %s instead. Put the folder holding libgstkvssink.so in GST_PLUGIN_PATH to stream to Kinesis Video.\n\n",
				opts.StreamName, outPath)
		} else {
			d.sink = relaySink{KVSStreamName: opts.StreamName}
		}
	}
	if d.sink.KVSStreamName == "" {
		if err := os.Remove(outPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("-out %s: removing the previous recording: %w", outPath, err)
		}
		if err := os.WriteFile(outPath, nil, 0o644); err != nil {
			return nil, fmt.Errorf("-out %s: %w", outPath, err)
		}
	}
	return d, nil
}

// childEnv is the environment of every gst-launch/gst-inspect child: a
// private registry, our plugin first, and GStreamer's own plugin folder as
// the only system path, so an installed copy of the plugin (for example in
// ~/.local/share/gstreamer-1.0/plugins) is not loaded a second time next to
// the one under test. Folders from the user's GST_PLUGIN_PATH are kept (that
// is where kvssink usually lives) unless they hold another copy of the
// plugin.
func childEnv(environ []string, pluginDir, systemDir, registry string) []string {
	var env []string
	paths := []string{pluginDir}
	for _, kv := range environ {
		key, value, _ := strings.Cut(kv, "=")
		switch {
		case key == "GST_PLUGIN_PATH" || key == "GST_PLUGIN_PATH_1_0":
			for _, p := range filepath.SplitList(value) {
				if p == "" || filepath.Clean(p) == filepath.Clean(pluginDir) {
					continue
				}
				if _, err := os.Stat(filepath.Join(p, pluginFile)); err == nil {
					continue
				}
				paths = append(paths, p)
			}
		case strings.HasPrefix(key, "GST_REGISTRY"), strings.HasPrefix(key, "GST_PLUGIN_SYSTEM_PATH"):
		default:
			env = append(env, kv)
		}
	}
	return append(env,
		"GST_REGISTRY="+registry,
		"GST_PLUGIN_PATH="+strings.Join(paths, string(filepath.ListSeparator)),
		"GST_PLUGIN_SYSTEM_PATH_1_0="+systemDir,
	)
}

// inspect runs gst-inspect-1.0 with the children's environment.
func (d *demo) inspect(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gst-inspect-1.0", args...)
	cmd.Env = d.env
	out, err := cmd.CombinedOutput()
	return firstLines(string(out), 5), err
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) intro(port int) {
	d.say("kvsrelay demo: reconnectbin keeps a live relay going while its source fails.")
	d.say("")
	d.say("Source  a test camera on 127.0.0.1:%d (gst-launch-1.0: moving ball, 640x360 25 fps, H.264 in MPEG-TS over TCP)", port)
	if !d.overlay {
		d.say("        (no timeoverlay: GStreamer's pango plugin is not installed; `apt-get install gstreamer1.0-x` burns a clock into the picture)")
	}
	d.say("Relay   gst-launch-1.0 -m -e reconnectbin source=\"tcpclientsrc ... ! tsdemux ! h264parse ! avdec_h264\" stall-timeout=%v", demoStallTimeout)
	d.say("        ! videoconvert ! videoscale ! 640x360 ! x264enc ! h264parse ! %s", sinkDescription(d.sink))
	d.say("")
	d.say("Timetable for the source (%v):", d.plan.total())
	for _, p := range d.plan {
		what := "up, streaming"
		switch p.State {
		case sourceKilled:
			what = "KILLED: process gone, connection refused -> reconnectbin sees an error/EOS and retries"
		case sourceFrozen:
			what = "FROZEN with SIGSTOP: connection open, no error, no data -> only stall-timeout notices;\n" +
				"                  at the end the hung server is killed and started fresh"
		}
		d.say("  %6s - %6s  %s", secs(p.Start), secs(p.End()), what)
	}
	d.say("")
}

func sinkDescription(s relaySink) string {
	if s.KVSStreamName != "" {
		return "video/x-h264,stream-format=avc,alignment=au ! kvssink stream-name=" + s.KVSStreamName
	}
	return "matroskamux ! filesink location=" + s.MKVPath
}

// run executes the timetable and reports. It returns the exit status.
func (d *demo) run(ctx context.Context) int {
	port, err := freePort()
	if err != nil {
		fmt.Fprintln(d.out, "kvsrelay-demo:", err)
		return exitSetup
	}
	src, err := newFlakySource(sourceOptions{Port: port, Env: d.env, LogPath: filepath.Join(d.tempDir, "source.log"), TimeOverlay: d.overlay}, d.kids)
	if err != nil {
		fmt.Fprintln(d.out, "kvsrelay-demo:", err)
		return exitSetup
	}
	defer src.close()
	d.intro(port)

	if err := src.start(); err != nil {
		fmt.Fprintln(d.out, "kvsrelay-demo:", err)
		return exitSetup
	}
	if err := src.waitListening(ctx, 20*time.Second); err != nil {
		fmt.Fprintln(d.out, "kvsrelay-demo:", err)
		return exitSetup
	}

	begin := time.Now()
	since := func() time.Duration { return time.Since(begin) }
	rel, err := startRelay(d.kids, relayOptions{
		Port: port, StallTimeout: demoStallTimeout, Sink: d.sink, Env: d.env,
		LogPath: filepath.Join(d.tempDir, "relay.log"), Since: since,
	})
	if err != nil {
		fmt.Fprintln(d.out, "kvsrelay-demo:", err)
		return exitSetup
	}

	facts := runFacts{Tracker: &tracker{}, Sink: d.sink, LogDir: d.tempDir}
	faults := d.follow(ctx, src, rel, since, &facts)
	// Keep reading the relay's output while it shuts down: a full pipe would
	// block gst-launch and make it look hung.
	drained := make(chan []relayEvent, 1)
	go func() {
		var evs []relayEvent
		for ev := range rel.events {
			evs = append(evs, ev)
		}
		drained <- evs
	}()

	// Shut down: the relay first (SIGINT -> EOS finishes the MKV), then the
	// source, so the relay's last moments are not an outage.
	if !facts.RelayExitedEarly {
		deadline := 15 * time.Second
		if d.sink.KVSStreamName != "" {
			// kvssink drains its upload at shutdown (stop-stream-timeout).
			deadline = 150 * time.Second
			d.say("%7.1fs  stopping the relay; kvssink may take a while to finish uploading (up to %v)", since().Seconds(), deadline)
		} else {
			d.say("%7.1fs  stopping the relay with SIGINT (gst-launch -e sends EOS so the MKV is finalised)", since().Seconds())
		}
		facts.StopForced, facts.StopTook, facts.StopErr = rel.stop(deadline)
		if facts.StopForced {
			d.say("%7.1fs  the relay did not exit within %v of SIGINT: killed it", since().Seconds(), deadline)
		}
	}
	// What the relay printed on its way out.
	select {
	case evs := <-drained:
		for _, ev := range evs {
			facts.Tracker.apply(ev)
		}
	case <-time.After(5 * time.Second):
		d.say("%7.1fs  (the relay's output did not close; its last messages are not counted)", since().Seconds())
	}
	src.close()
	facts.SourceDied = src.unexpectedExits
	runEnd := since()
	facts.Outcomes, facts.Unprovoked = analyseFaults(faults, facts.Tracker.restarts, facts.Tracker.recoveries, runEnd)

	if facts.Interrupted {
		writeSummary(d.out, facts)
		return exitInterrupted
	}
	if d.sink.KVSStreamName == "" {
		checkCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		rec, err := probeRecording(checkCtx, d.sink.MKVPath)
		if err != nil {
			facts.RecordingErr = err
		} else {
			facts.Recording = &rec
		}
		facts.DecodeProblems, facts.DecodeErr = decodeRecording(checkCtx, d.sink.MKVPath)
		cancel()
	}
	if writeSummary(d.out, facts) {
		// Logs are only worth keeping when something needs explaining.
		os.RemoveAll(d.tempDir)
		return exitPass
	}
	return exitFail
}

// follow runs the timetable, prints events and progress, and returns the
// faults as injected. It ends at the planned end, on Ctrl-C, or when the
// relay exits on its own.
func (d *demo) follow(ctx context.Context, src *flakySource, rel *relay, since func() time.Duration, facts *runFacts) []faultRecord {
	t := facts.Tracker
	var faults []faultRecord
	idx := 0
	nextPhase := time.NewTimer(d.plan[0].End())
	defer nextPhase.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	events := rel.events

	for {
		select {
		case <-ctx.Done():
			d.say("%7.1fs  interrupted: stopping", since().Seconds())
			facts.Interrupted = true
			if d.plan[idx].State != sourceUp && len(faults) > 0 {
				faults[len(faults)-1].End = since()
			}
			return faults

		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			t.apply(ev)
			if line, ok := eventLine(ev, len(t.restarts)); ok && ev.Kind != eventPlaying {
				d.say("%s", line)
			}

		case <-rel.proc.exited():
			facts.RelayExitedEarly = true
			facts.RelayExitAt = since()
			facts.RelayExit = rel.proc.exitDescription()
			facts.RelayTail = rel.tail()
			d.say("%7.1fs  !! the relay's gst-launch-1.0 EXITED (%s); it must run until the end", since().Seconds(), facts.RelayExit)
			if d.plan[idx].State != sourceUp && len(faults) > 0 {
				faults[len(faults)-1].End = since()
			}
			return faults

		case <-nextPhase.C:
			prev := d.plan[idx]
			if idx+1 >= len(d.plan) {
				return faults
			}
			idx++
			cur := d.plan[idx]
			now := since()
			if err := d.enter(src, prev, cur); err != nil {
				d.say("%7.1fs  !! %v", now.Seconds(), err)
			}
			if cur.State != sourceUp {
				faults = append(faults, faultRecord{State: cur.State, Start: now, End: now + cur.Length})
			} else if len(faults) > 0 {
				faults[len(faults)-1].End = now
			}
			d.say("%s", sourceLine(now, prev, cur))
			nextPhase.Reset(cur.End() - now)

		case <-tick.C:
			now := since()
			if d.plan[idx].State == sourceUp && src.diedOnItsOwn() {
				d.say("%7.1fs  !! the test source died on its own (see %s); restarting it", now.Seconds(), src.opts.LogPath)
				if err := src.start(); err != nil {
					d.say("%7.1fs  !! %v", now.Seconds(), err)
				}
			}
			if d.opts.Quiet {
				continue
			}
			snap := progressSnapshot{
				Elapsed: now, Total: d.plan.total(), Source: d.plan[idx].State,
				Relay: t.status(now, false), Restarts: len(t.restarts), OutputBytes: -1,
			}
			snap.LastOutage, snap.HaveOutage = t.lastOutage()
			if d.sink.KVSStreamName == "" {
				if st, err := os.Stat(d.sink.MKVPath); err == nil {
					snap.OutputBytes = st.Size()
				}
			}
			d.say("%s", progressLine(snap))
		}
	}
}

// enter moves the source from one phase to the next.
func (d *demo) enter(src *flakySource, prev, cur phase) error {
	switch {
	case cur.State == sourceKilled:
		return src.kill()
	case cur.State == sourceFrozen:
		return src.freeze()
	case prev.State == sourceKilled:
		return src.start()
	case prev.State == sourceFrozen:
		// A frozen server that is merely continued replays the frames it
		// owes its live clock in one burst, which would push the recording's
		// timeline seconds ahead of the wall clock. A hung camera is
		// power-cycled instead: kill it (SIGKILL works on a stopped
		// process) and start a fresh one.
		if err := src.kill(); err != nil {
			return err
		}
		return src.start()
	}
	return nil
}
