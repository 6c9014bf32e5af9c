package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// Environment that selects the long form (make soak passes them through).
const (
	// EnvDuration is how long faults are injected (a Go duration, "9m").
	EnvDuration = "SOAK_DURATION"
	// EnvFaults asks for this many faults in total instead.
	EnvFaults = "SOAK_FAULTS"
	// EnvSeed replays a run's schedule (printed at the start and in the table).
	EnvSeed = "SOAK_SEED"
	// EnvDocs is the markdown file whose soak section the table replaces
	// (make soak: docs/benchmarks.md).
	EnvDocs = "SOAK_DOCS"
	// EnvHogNice is the CPU hogs' niceness (default 0, 10 in the short form).
	EnvHogNice = "SOAK_HOG_NICE"
)

// stallTimeout is every relay's stall-timeout: short, so frozen sources are
// rebuilt within the soak's gaps.
const stallTimeout = 3 * time.Second

// judgeGrace is how long after a fault is lifted a restart still counts as
// its consequence: a stall is noticed stall-timeout after data stopped.
const judgeGrace = stallTimeout + 3*time.Second

// retireQuiet must exceed plugin/reconnectbin/child.go's retireDelay (5 s,
// how long a stopped source instance stays allocated): the end sample is
// taken only after a relay has had no rebuild for that long, and then
// only once its fd count has stopped falling (so it holds if the delay
// goes away or grows, within the deadline).
const retireQuiet = 8 * time.Second

// config is the run's shape: the short form for make test, or the long
// form that make soak selects through the environment.
type config struct {
	long      bool
	form      string // how the run was asked for
	replay    string // the command that replays it, %d for the seed
	opts      Options
	hogNice   int
	docs      string
	recoverBy time.Duration // deadline for every relay to stream again after its last fault
	fdStable  time.Duration // how long the fd count must not fall before the end sample
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{
		form:      "the short form (make test)",
		replay:    "SOAK_SEED=%d go test -run TestSoak ./test/soak/ (with make test-run's plugin variables)",
		hogNice:   10,
		recoverBy: 90 * time.Second,
		fdStable:  15 * time.Second,
		docs:      os.Getenv(EnvDocs),
		// The short form: a handful of faults per relay in 40 s.
		opts: Options{Window: 40 * time.Second, MinHold: 2 * time.Second, MaxHold: 5 * time.Second,
			MinGap: 6 * time.Second, MaxGap: 12 * time.Second},
	}
	dur, faults := os.Getenv(EnvDuration), os.Getenv(EnvFaults)
	if dur != "" || faults != "" {
		c.long, c.hogNice = true, 0
		c.recoverBy = 2 * time.Minute
		// Go's runtime collects at least every 2 minutes in an idle
		// process: wait that long for the last stopped instances to go.
		c.fdStable = 130 * time.Second
		// Holds reach past stall-timeout and the few segments hlsdemux
		// has buffered, so silent faults (freeze, SIGSTOP) force rebuilds.
		c.opts = Options{MinHold: 3 * time.Second, MaxHold: 12 * time.Second, MinGap: 8 * time.Second, MaxGap: 20 * time.Second}
		if faults != "" {
			n, err := strconv.Atoi(faults)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a fault count above 0", EnvFaults, faults)
			}
			c.opts.Count = n
			c.form = fmt.Sprintf("%s=%d", EnvFaults, n)
			c.replay = "make soak SOAK_SEED=%d " + c.form
		} else {
			d, err := time.ParseDuration(dur)
			if err != nil || d <= 0 {
				t.Fatalf("%s=%q: want a Go duration above 0, such as 9m", EnvDuration, dur)
			}
			c.opts.Window = d
			c.form = fmt.Sprintf("%s=%s", EnvDuration, d)
			c.replay = "make soak SOAK_SEED=%d " + c.form
		}
	}
	if s := os.Getenv(EnvSeed); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer", EnvSeed, s)
		}
		c.opts.Seed = seed
	} else {
		c.opts.Seed = rand.Uint64() % 1_000_000_000
	}
	if s := os.Getenv(EnvHogNice); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 19 {
			t.Fatalf("%s=%q: want a niceness from 0 to 19", EnvHogNice, s)
		}
		c.hogNice = n
	}
	return c
}

// TestSoak runs relays for every protocol side by side under CPU hogs while
// the seeded schedule injects the fault matrix, then checks what must hold
// however loaded the machine is: no relay crashed, every relay's output
// stayed monotonic, and every relay streams again after its last fault. It
// prints (and with SOAK_DOCS writes) the table of faults, crashes,
// recoveries, outages and resources.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs for minutes")
	}
	cfg := loadConfig(t)
	t.Logf("soak seed %d (replay: %s=%d), %s", cfg.opts.Seed, EnvSeed, cfg.opts.Seed, cfg.form)
	fmt.Printf("soak: seed %d, %s\n", cfg.opts.Seed, cfg.form)
	began := time.Now()

	// Background goroutines (relay watchers, fault injectors) end before
	// the test's cleanups kill relays and servers: deferred calls run
	// before cleanups, also after a t.Fatal.
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	defer func() { cancel(); bg.Wait() }()
	relays := startRelays(t, ctx, &bg)
	targets := make([]Target, len(relays))
	for i, r := range relays {
		targets[i] = Target{Name: r.name, Kinds: r.kinds}
	}
	plan, err := Plan(cfg.opts, targets)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range relays {
		if !r.waitAccepted(ctx, 25, 90*time.Second) {
			t.Fatalf("relay %s: the stand-in accepted no frames within 90 s of the start\n%s", r.name, r.stderr())
		}
		r.start = r.sample()
	}
	hogs := startHogs(t, cfg.hogNice)
	t.Logf("%d relays streaming, %d CPU hogs at nice %d; %d faults planned over %v", len(relays), len(hogs), cfg.hogNice,
		len(plan), Span(plan).Round(time.Second))

	// Each relay's faults run in order in their own goroutine; relays run
	// side by side.
	t0 := time.Now()
	injected := make([][]Injected, len(relays))
	var wg sync.WaitGroup
	for i, r := range relays {
		wg.Add(1)
		bg.Add(1)
		go func() {
			defer bg.Done()
			defer wg.Done()
			injected[i] = r.inject(ctx, t0, ForTarget(plan, r.name), cfg.opts.MinGap)
		}()
	}
	wg.Wait()

	// Every relay must stream again after its last fault.
	recovered := make([]bool, len(relays))
	for i, r := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recovered[i] = r.waitBack(ctx, cfg.recoverBy)
		}()
	}
	wg.Wait()
	judgedUntil := time.Now()
	for _, h := range hogs {
		_ = h.Kill()
	}

	// Resources at the end, once stopped instances are freed.
	for _, r := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.end = r.settledSample(ctx, cfg.fdStable)
		}()
	}
	wg.Wait()
	for _, r := range relays {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop() }()
	}
	wg.Wait()

	summary := Summary{Seed: cfg.opts.Seed, Form: cfg.form, Replay: fmt.Sprintf(cfg.replay, cfg.opts.Seed), Elapsed: time.Since(began), Cores: runtime.NumCPU(),
		Hogs: len(hogs), HogNice: cfg.hogNice, Date: time.Now()}
	var allFaults []Injected
	var allOutcomes []Outcome
	for i, r := range relays {
		res, outcomes := r.result(injected[i], judgedUntil)
		summary.Relays = append(summary.Relays, res)
		allFaults = append(allFaults, injected[i]...)
		allOutcomes = append(allOutcomes, outcomes...)
		for _, f := range injected[i] {
			if f.Err != "" {
				summary.Problems = append(summary.Problems, fmt.Sprintf("Fault %d (%s on %s) could not be carried out: %s", f.Index, f.Kind, r.name, f.Err))
			}
		}
		if !recovered[i] {
			summary.Problems = append(summary.Problems, fmt.Sprintf("%s did not stream again within %v of its last fault", r.name, cfg.recoverBy))
		}
	}
	summary.Kinds = ByKind(allFaults, allOutcomes)
	table := summary.Markdown()
	if testing.Verbose() {
		fmt.Println(table) // make soak: the table is the point
	} else {
		t.Log("\n" + table) // make test: shown when the test fails
	}
	if cfg.docs != "" {
		if err := writeSection(cfg.docs, table); err != nil {
			t.Error(err)
		}
	}

	for i, r := range relays {
		res := summary.Relays[i]
		if len(res.Crashes) > 0 {
			t.Errorf("relay %s crashed %d times: %s", r.name, len(res.Crashes), strings.Join(res.Crashes, "; "))
		}
		if !res.Monotonic {
			t.Errorf("relay %s: output not monotonic: %s", r.name, res.MonotonicNote)
		}
		if !recovered[i] {
			t.Errorf("relay %s did not stream again within %v after its last fault\n%s", r.name, cfg.recoverBy, r.stderr())
		}
	}
	for _, f := range allFaults {
		if f.Err != "" {
			t.Errorf("fault %d (%s on %s) could not be carried out: %s", f.Index, f.Kind, f.Target, f.Err)
		}
	}
}

// writeSection replaces the soak section of the markdown file at path.
func writeSection(path, body string) error {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("%s=%s: %w", EnvDocs, path, err)
	}
	doc, err := SpliceSection(string(data), body)
	if err != nil {
		return fmt.Errorf("%s=%s: %w", EnvDocs, path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("%s=%s: %w", EnvDocs, path, err)
	}
	return os.Rename(tmp, path)
}

// startHogs runs one busy loop per CPU, in child processes that Kill (or
// the test's cleanup) ends.
func startHogs(t *testing.T, nice int) []*servers.Process {
	t.Helper()
	var hogs []*servers.Process
	for i := 0; i < runtime.NumCPU(); i++ {
		hogs = append(hogs, servers.StartProcess(t, servers.ProcessOptions{
			Name: fmt.Sprintf("cpu-hog-%d", i),
			Path: "nice",
			Args: []string{"-n", strconv.Itoa(nice), "sh", "-c", "while :; do :; done"},
		}))
	}
	return hogs
}

// faultAction applies or lifts one fault.
type faultAction func() error

// injector applies and lifts each kind a relay's source takes.
type injector map[Kind][2]faultAction

func both(actions ...func()) faultAction {
	return func() error {
		for _, a := range actions {
			a()
		}
		return nil
	}
}

// hlsInjector is the HTTP fault matrix on one HLS origin.
func hlsInjector(s *servers.HLSServer) injector {
	const segmentWait = 30 * time.Second
	return injector{
		ServerKill: {
			func() error { s.StopHTTP(); return s.KillEncoder() },
			func() error {
				// The origin comes back as a whole: a new encoder continuing
				// the numbering, served once it has a segment.
				if err := s.RestartEncoder(false); err != nil {
					return err
				}
				if err := s.WaitSegments(1, segmentWait); err != nil {
					return err
				}
				return s.StartHTTP()
			},
		},
		SIGSTOP:          {s.PauseEncoder, s.ResumeEncoder},
		HTTP404:          {both(func() { s.SegmentStatus(http.StatusNotFound) }), both(func() { s.SegmentStatus(0) })},
		HTTP503:          {both(func() { s.PlaylistStatus(503); s.SegmentStatus(503) }), both(func() { s.PlaylistStatus(0); s.SegmentStatus(0) })},
		PlaylistFreeze:   {both(func() { s.FreezePlaylist(true) }), both(func() { s.FreezePlaylist(false) })},
		HTMLPlaylist:     {both(func() { s.HTMLPlaylist(true) }), both(func() { s.HTMLPlaylist(false) })},
		TruncatedSegment: {both(func() { s.TruncateSegments(true) }), both(func() { s.TruncateSegments(false) })},
		EncoderRenumber: {
			func() error { s.FreezePlaylist(true); return s.RestartEncoder(true) },
			func() error {
				// Unfrozen once the new numbering has two segments, which
				// clients that remember the old sequence see go backwards.
				defer s.FreezePlaylist(false)
				return s.WaitSegments(2, segmentWait)
			},
		},
	}
}

// processInjector kills or freezes a server process.
func processInjector(kill, restart, pause, resume faultAction) injector {
	return injector{ServerKill: {kill, restart}, SIGSTOP: {pause, resume}}
}

// relay is one gst-launch-1.0 relay under soak, restarted (and counted) if
// it crashes.
type relay struct {
	t      *testing.T
	name   string
	source string // the source as the table shows it
	props  []string
	middle string // between reconnectbin and the caps kvssink takes
	kinds  []Kind
	faults injector
	dir    string
	cred   string

	mu         sync.Mutex
	launch     *harness.Launch
	read       int // messages of launch already folded into events
	stopping   bool
	instances  int
	reports    []string
	events     []Event
	down       bool // the current instance's last message was a restart
	restarts   int
	recoveries int
	crashes    []string

	start, end Resources
}

const kvsCaps = "video/x-h264,stream-format=avc,alignment=au"

const encode = "videoconvert ! videoscale ! video/x-raw,width=320,height=240 ! " +
	"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! h264parse"

// startRelays starts one server per relay, then the relays, and a watcher
// per relay that folds its messages into events and restarts it after a
// crash.
func startRelays(t *testing.T, ctx context.Context, bg *sync.WaitGroup) []*relay {
	t.Helper()
	hlsURI := servers.NewHLSServer(t, servers.HLSOptions{StartSegments: 3})
	hlsDesc := servers.NewHLSServer(t, servers.HLSOptions{StartSegments: 3})
	ts := servers.NewTSServer(t, servers.TSOptions{})
	proxy := servers.NewProxy(t, ts.Addr())
	srt := servers.NewSRTSender(t, servers.SRTOptions{})
	rtsp := servers.NewRTSPServer(t, servers.RTSPOptions{})

	tcpFaults := processInjector(ts.Kill, ts.Restart, ts.Pause, ts.Resume)
	clear := both(proxy.Clear)
	tcpFaults[TCPReset] = [2]faultAction{proxy.ResetPeer, clear}
	tcpFaults[TCPTimeout] = [2]faultAction{proxy.Timeout, clear}
	tcpFaults[TCPBandwidth] = [2]faultAction{func() error { return proxy.Bandwidth(1) }, clear}
	tcpFaults[TCPGarbage] = [2]faultAction{proxy.Garbage, clear}

	relays := []*relay{
		{name: "hls-uri", source: "uri=http://…/playlist.m3u8 (uridecodebin3)", props: []string{"uri=" + hlsURI.PlaylistURL()},
			middle: encode, faults: hlsInjector(hlsURI)},
		{name: "hls", source: "souphttpsrc ! hlsdemux ! decodebin",
			props:  []string{"source=souphttpsrc location=" + hlsDesc.PlaylistURL() + " ! hlsdemux ! decodebin"},
			middle: encode, faults: hlsInjector(hlsDesc)},
		{name: "mpegts-tcp", source: "tcpclientsrc (toxiproxy) ! tsdemux ! h264parse",
			props:  []string{fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse", proxy.Port())},
			faults: tcpFaults},
		{name: "srt", source: "srtsrc ! tsdemux ! h264parse",
			props:  []string{"source=srtsrc uri=" + srt.URL() + " ! tsdemux ! h264parse"},
			faults: processInjector(srt.Kill, srt.Restart, srt.Pause, srt.Resume)},
		{name: "rtsp", source: "rtspsrc ! rtph264depay ! h264parse",
			props:  []string{"source=rtspsrc location=" + rtsp.URL() + " latency=200 ! rtph264depay ! h264parse"},
			faults: processInjector(rtsp.Kill, rtsp.Restart, rtsp.Pause, rtsp.Resume)},
	}
	for _, r := range relays {
		r.t = t
		for _, k := range matrixOrder {
			if _, ok := r.faults[k]; ok {
				r.kinds = append(r.kinds, k)
			}
		}
		r.props = append(r.props, "stall-timeout="+strconv.FormatInt(int64(stallTimeout), 10))
		r.dir = harness.PrivateDir(t)
		r.cred = filepath.Join(r.dir, "credential")
		now := time.Now()
		// Valid for the whole run, however long: credentials are not what
		// the soak exercises.
		if err := credfile.Write(r.cred, credfile.Credentials{AccessKeyID: "AKIASOAKRELAY00001", SecretAccessKey: "soak-secret",
			SessionToken: "soak-token", Expires: now.Add(48 * time.Hour)}, now); err != nil {
			t.Fatal(err)
		}
		r.launchInstance()
		bg.Add(1)
		go func() { defer bg.Done(); r.watch(ctx) }()
	}
	return relays
}

// launchInstance starts (or restarts) the relay's gst-launch-1.0.
func (r *relay) launchInstance() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.instances++
	report := filepath.Join(r.dir, fmt.Sprintf("kvssink-%d.json", r.instances))
	args := append([]string{"reconnectbin"}, r.props...)
	if r.middle != "" {
		args = append(append(args, "!"), strings.Fields(r.middle)...)
	}
	args = append(args, "!", kvsCaps, "!", "kvssink", "stream-name=soak-"+r.name, "credential-path="+r.cred, "report="+report)
	r.launch = harness.StartLaunch(r.t, harness.Env(r.t), args...)
	r.read = 0
	r.down = false // a new instance starts up, not in an outage
	r.reports = append(r.reports, report)
}

// watch folds new messages into events every 200 ms, and restarts the
// relay when it crashed or quit by itself, the way systemd's
// Restart=always would.
func (r *relay) watch(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		l := r.launch
		for _, m := range l.MessagesSince(r.read) {
			r.read++
			switch {
			case harness.Element("reconnectbin-restart")(m):
				r.events = append(r.events, Event{At: m.At, Restart: true})
				r.down = true
				r.restarts++
			case harness.Element("reconnectbin-recovered")(m):
				r.events = append(r.events, Event{At: m.At})
				r.down = false
				r.recoveries++
			}
		}
		stopping := r.stopping
		r.mu.Unlock()
		if stopping {
			return
		}
		crash := l.Crash()
		if crash == "" && l.Exited() {
			crash = describeExit(l)
		}
		if crash == "" {
			continue
		}
		l.Kill()
		r.mu.Lock()
		r.crashes = append(r.crashes, time.Now().Format("15:04:05")+" "+crash)
		r.mu.Unlock()
		r.t.Logf("relay %s crashed (%s); starting it again\nstderr tail:\n%s", r.name, crash, l.Stderr())
		r.launchInstance()
	}
}

func (r *relay) current() (*harness.Launch, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.launch, r.reports[len(r.reports)-1]
}

func (r *relay) stderr() string {
	l, _ := r.current()
	return l.Stderr()
}

// accepted is how many frames the current instance's stand-in accepted.
func (r *relay) accepted() uint64 {
	_, report := r.current()
	rep, err := kvssinkstandin.ReadReport(report)
	if err != nil {
		return 0
	}
	return rep.TotalAccepted()
}

// waitAccepted waits until the current instance's stand-in accepted n
// frames.
func (r *relay) waitAccepted(ctx context.Context, n uint64, timeout time.Duration) bool {
	return waitUntil(ctx, timeout, func() bool { return r.accepted() >= n })
}

// waitBack waits until the relay streams again after its last fault: no
// rebuild pending (its last message is not a restart) and 25 frames
// accepted since it was last seen down. A relay restarted after a crash
// counts from its new stand-in's 0.
func (r *relay) waitBack(ctx context.Context, timeout time.Duration) bool {
	from := r.accepted()
	return waitUntil(ctx, timeout, func() bool {
		r.mu.Lock()
		down := r.down
		r.mu.Unlock()
		got := r.accepted()
		if down || got < from {
			from = got
			return false
		}
		return got >= from+25
	})
}

// sample reads the current instance's /proc figures.
func (r *relay) sample() Resources {
	l, _ := r.current()
	s, err := harness.SampleProcess(l.PID())
	if err != nil {
		r.t.Logf("relay %s: %v", r.name, err)
		return Resources{}
	}
	return Resources{Valid: true, RSSKiB: s.RSSKiB, FDs: s.FDs, Threads: s.Threads}
}

// settledSample waits until the relay has had no rebuild for retireQuiet
// and its fd count has not fallen for stable, then samples it. Both waits
// have deadlines: a relay that keeps rebuilding is sampled anyway.
func (r *relay) settledSample(ctx context.Context, stable time.Duration) Resources {
	waitUntil(ctx, time.Minute, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.events) == 0 || time.Since(r.events[len(r.events)-1].At) > retireQuiet
	})
	low := r.sample()
	lowAt := time.Now()
	waitUntil(ctx, stable+time.Minute, func() bool {
		s := r.sample()
		if s.Valid && (!low.Valid || s.FDs < low.FDs) {
			low, lowAt = s, time.Now()
		}
		return time.Since(lowAt) >= stable
	})
	if s := r.sample(); s.Valid {
		return s
	}
	return low
}

// inject carries out one relay's faults in order: each starts at its
// planned time (or minGap after the previous one was lifted, if lifting
// ran late), is held, and lifted.
func (r *relay) inject(ctx context.Context, t0 time.Time, faults []Fault, minGap time.Duration) []Injected {
	var out []Injected
	var prevEnd time.Time
	for _, f := range faults {
		at := t0.Add(f.Start)
		if earliest := prevEnd.Add(minGap); at.Before(earliest) {
			at = earliest
		}
		if !sleepUntil(ctx, at) {
			break
		}
		in := Injected{Fault: f, Began: time.Now()}
		actions := r.faults[f.Kind]
		err := actions[0]()
		if err == nil && !sleepUntil(ctx, time.Now().Add(f.Hold)) {
			err = ctx.Err()
		}
		// Lifted even when applying failed half-way: the server must serve
		// again for the next fault.
		if lerr := actions[1](); err == nil {
			err = lerr
		}
		if err != nil {
			in.Err = err.Error()
		}
		in.Ended = time.Now()
		prevEnd = in.Ended
		out = append(out, in)
		r.t.Logf("fault %d: %s on %s, %v (planned hold %v)%s", f.Index, f.Kind, r.name,
			in.Ended.Sub(in.Began).Round(100*time.Millisecond), f.Hold.Round(100*time.Millisecond), errSuffix(in.Err))
	}
	return out
}

func errSuffix(err string) string {
	if err == "" {
		return ""
	}
	return ": " + err
}

// describeExit says how a relay process ended by itself: the signal (a
// GLib assertion aborts) or exit code, and its last line on stderr.
func describeExit(l *harness.Launch) string {
	how := fmt.Sprintf("gst-launch-1.0 exited %d", l.ExitCode())
	if sig := l.ExitSignal(); sig != 0 {
		how = fmt.Sprintf("gst-launch-1.0 killed by signal %d (%v)", int(sig), sig)
	}
	lines := strings.Split(strings.TrimSpace(l.Stderr()), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		how += `, last on stderr: "` + last + `"`
	}
	return how
}

// stop ends the relay the operator's way (EOS), recording a crash on the
// way down too.
func (r *relay) stop() {
	r.mu.Lock()
	r.stopping = true
	l := r.launch
	r.mu.Unlock()
	if l.Exited() {
		return // the watcher saw it (or is about to)
	}
	l.Interrupt()
	if !waitUntil(context.Background(), 30*time.Second, l.Exited) {
		l.Kill()
		r.mu.Lock()
		r.crashes = append(r.crashes, "gst-launch-1.0 did not exit within 30 s of EOS (SIGINT)")
		r.mu.Unlock()
		return
	}
	crash := l.Crash()
	if crash == "" && l.ExitCode() != 0 {
		crash = describeExit(l) + " after EOS"
	}
	if crash != "" {
		r.mu.Lock()
		r.crashes = append(r.crashes, "at the end: "+crash)
		r.mu.Unlock()
	}
}

// result judges the relay's faults and reads its stand-in reports.
func (r *relay) result(faults []Injected, judgedUntil time.Time) (RelayResult, []Outcome) {
	r.mu.Lock()
	events := append([]Event(nil), r.events...)
	res := RelayResult{Name: r.name, Source: r.source, Faults: len(faults), Crashes: append([]string(nil), r.crashes...),
		Restarts: r.restarts, Recoveries: r.recoveries, Start: r.start, End: r.end, Monotonic: true}
	reports := append([]string(nil), r.reports...)
	r.mu.Unlock()

	outcomes := make([]Outcome, len(faults))
	for i, f := range faults {
		until := judgedUntil
		if i+1 < len(faults) {
			until = faults[i+1].Began
		}
		o := Judge(f, events, until, judgeGrace)
		outcomes[i] = o
		if o.Rebuilt {
			res.Rebuilt++
		}
		if !o.Recovered {
			res.Unrecovered++
		}
		res.LongestBeyond = max(res.LongestBeyond, o.Beyond)
	}
	var notes []string
	for _, path := range reports {
		rep, err := kvssinkstandin.ReadReport(path)
		if err != nil {
			res.Monotonic = false
			notes = append(notes, err.Error())
			continue
		}
		res.Accepted += rep.TotalAccepted()
		if rep.RunningTimeViolations != 0 || rep.Dropped(kvssinkstandin.DropBackwards) != 0 {
			res.Monotonic = false
			notes = append(notes, fmt.Sprintf("%d frames went backwards in running time", rep.Dropped(kvssinkstandin.DropBackwards)))
		}
	}
	res.MonotonicNote = strings.Join(notes, "; ")
	return res, outcomes
}

// waitUntil polls cond every 250 ms until it holds (true), the timeout
// passes or ctx ends (false).
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// sleepUntil waits for the moment at (a fault's planned start or the end
// of its hold: the schedule itself, not a stand-in for a condition). It
// returns false if ctx ended first.
func sleepUntil(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
