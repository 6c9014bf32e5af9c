package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credsource"
	"github.com/kvsrelay/kvsrelay/test/kvsendpoint"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// The network scenario (issue #14 part 5): the network between kvssink and
// KVS goes away for 30 s, 1 min and 2 min while the camera keeps making
// frames, then comes back. What reached KVS? Two contenders per cut, side
// by side (started together, cut together, against one local KVS endpoint
// behind one toxiproxy):
//
//   - kvsrelay: kvscredprovider, reconnectbin around the live source, the
//     encoder, kvssink sized as the recipes size it (pipelines/common.sh
//     kvssink_buffer_props at the default OUTAGE_BUDGET_S=120 and the
//     stream's bitrate: buffer-duration=150, storage-size=128,
//     replay-duration=150), run as the kvs-relay@ unit runs it:
//     Restart=always, RestartSec=5, WatchdogSec=30
//     through a NOTIFY_SOCKET the bench serves. kvscredprovider's upload
//     watch holds the watchdog pings off only once nothing was acknowledged
//     for max(ack-timeout, buffer-duration), so a cut shorter than kvssink's
//     buffer never restarts the process and kvssink resends what it held.
//   - restart-the-process: the incident report's line (the same source and
//     encoder, kvssink at its defaults, credentials in the environment as
//     its EnvironmentFile gives them), under the same Restart=always,
//     RestartSec=5 and a 30 s watchdog judged on acknowledged fragments
//     (the stock line sends no WATCHDOG=1; the incident report's unit has
//     only Restart=always, which never restarts a process that hangs on a
//     dead connection: the watchdog is the most this approach can do). A
//     restart loses whatever kvssink held in memory.
//
// The cut is toxiproxy's timeout toxic in front of putMedia only (kvsendpoint
// SetDataEndpoint, as TestRealKVSSinkNetworkCut cuts it): data is dropped
// and connections hang, as when a route goes away. The control-plane calls
// (describeStream, getDataEndpoint) go direct, which favours the restarting
// contender: a restart during a real cut would fail those too.
//
// Needs the real kvssink (the stand-in uploads nothing): KVSSINK_PLUGIN_DIR,
// else make kvssink's cache; without it, and with -quick (the cuts are the
// point and last minutes), the scenario says in one line that it skipped.

const (
	netFPS          = 25
	netBitrateKbps  = 400
	netWatchdog     = 30 * time.Second // kvs-relay@.service's WatchdogSec
	netRestartSec   = 5 * time.Second  // kvs-relay@.service's and the incident unit's RestartSec
	netBefore       = 10 * time.Second // of the window before the cut
	netAfter        = 20 * time.Second // of the window after the network is back
	netDrainBound   = 4 * time.Minute  // how long after the network is back the backlog may take
	netStartBound   = 90 * time.Second // until both contenders have persisted fragments
	netOutageBudget = 120              // pipelines/common.sh's default OUTAGE_BUDGET_S
)

// netCuts are the cuts of the full run. 30 s is as long as the watchdog
// of both contenders: whether restart-the-process is killed during it
// depends on where in a fragment the cut fell; 1 min is past it whatever
// the phase.
var netCuts = []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute}

func netSourceChain() string {
	return fmt.Sprintf("videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=%d/1", netFPS)
}

func netEncoder() []string {
	return []string{"x264enc", "tune=zerolatency", "speed-preset=ultrafast", fmt.Sprintf("key-int-max=%d", netFPS),
		fmt.Sprintf("bitrate=%d", netBitrateKbps), "!", "h264parse", "!", "video/x-h264,stream-format=avc,alignment=au", "!"}
}

// realKVSSinkDir is the real kvssink's folder: KVSSINK_PLUGIN_DIR, else
// the newest build of make kvssink (scripts/build-kvssink.sh's cache,
// ${XDG_CACHE_HOME:-~/.cache}/kvsrelay/kvssink-*/plugin).
func realKVSSinkDir() (string, bool) {
	if dir := os.Getenv("KVSSINK_PLUGIN_DIR"); dir != "" {
		return dir, true
	}
	root := os.Getenv("XDG_CACHE_HOME")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", false
		}
		root = filepath.Join(home, ".cache")
	}
	libs, _ := filepath.Glob(filepath.Join(root, "kvsrelay", "kvssink-*", "plugin", "libgstkvssink.so"))
	best, bestAt := "", time.Time{}
	for _, lib := range libs {
		if st, err := os.Stat(lib); err == nil && st.ModTime().After(bestAt) {
			best, bestAt = filepath.Dir(lib), st.ModTime()
		}
	}
	return best, best != ""
}

// recipeKVSSinkSizing asks pipelines/common.sh how the recipes size
// kvssink for an outage budget at a bitrate.
func recipeKVSSinkSizing(budget, kbps int) ([]string, error) {
	script, err := repoFile(filepath.Join("pipelines", "common.sh"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("bash", "-c", `. "$1" && SINK= && kvssink_buffer_props && printf '%s' "$SINK"`, "bash", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("OUTAGE_BUDGET_S=%d", budget), fmt.Sprintf("STREAM_KBPS=%d", kbps)}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s kvssink_buffer_props: %w: %s", script, err, lastLine(string(out)))
	}
	props := strings.Fields(string(out))
	if len(props) != 3 {
		return nil, fmt.Errorf("%s kvssink_buffer_props gave %q, want buffer-duration, storage-size and replay-duration", script, out)
	}
	return props, nil
}

// repoFile finds a file of the repository from the working directory or
// one of its parents (go run ./test/bench runs at the root, the tests in
// test/bench).
func repoFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found in %s or above", rel, dir)
		}
		dir = parent
	}
}

// fakeSystemd receives a unit's notifications (NOTIFY_SOCKET) and keeps
// the moment of the last WATCHDOG=1.
type fakeSystemd struct {
	conn *net.UnixConn
	path string
	mu   sync.Mutex
	last time.Time
}

func listenNotify(path string) (*fakeSystemd, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	f := &fakeSystemd{conn: conn, path: path}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line == "WATCHDOG=1" {
					f.mu.Lock()
					f.last = time.Now()
					f.mu.Unlock()
				}
			}
		}
	}()
	return f, nil
}

func (f *fakeSystemd) lastPing() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *fakeSystemd) close() { _ = f.conn.Close() }

// netUnit is one contender run as a systemd unit with Restart=always, its
// RestartSec and a watchdog: the process is killed (SIGKILL: nothing of
// what it held survives, as with systemd's SIGABRT) when alive has said
// nothing for longer than the watchdog since the process started.
type netUnit struct {
	name  string
	args  []string
	env   func() ([]string, error) // the environment of each start
	alive func() time.Time

	mu       sync.Mutex
	restarts map[string]int // by reason
	messages map[string]int // kvscredprovider upload messages
	lastErr  string
}

func (u *netUnit) count(reason string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.restarts[reason]++
}

func (u *netUnit) summary() (restarts int, why, messages string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var reasons, kinds []string
	for r, n := range u.restarts {
		restarts += n
		reasons = append(reasons, fmt.Sprintf("%s x%d", r, n))
	}
	for k, n := range u.messages {
		kinds = append(kinds, fmt.Sprintf("%s x%d", k, n))
	}
	slices.Sort(reasons)
	slices.Sort(kinds)
	return restarts, strings.Join(reasons, ", "), strings.Join(kinds, ", ")
}

// run starts the process and restarts it until ctx ends.
func (u *netUnit) run(ctx context.Context) {
	for {
		reason, err := u.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			u.mu.Lock()
			u.lastErr = err.Error()
			u.mu.Unlock()
		}
		u.count(reason)
		if sleepCtx(ctx, netRestartSec) != nil {
			return
		}
	}
}

// once runs the process until it exits, the watchdog fires or ctx ends,
// and says which.
func (u *netUnit) once(ctx context.Context) (string, error) {
	env, err := u.env()
	if err != nil {
		return "start failed", err
	}
	cmd := exec.Command("gst-launch-1.0", append([]string{"-m"}, u.args...)...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &tailWriter{max: 2 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "start failed", err
	}
	if err := cmd.Start(); err != nil {
		return "start failed", err
	}
	started := time.Now()
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if ev, ok := parseGstLaunchEvent(sc.Text(), 0); ok && ev.Kind == "message" {
				u.mu.Lock()
				u.messages[ev.Text]++
				u.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	kill := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			kill()
			<-exited
			return "", nil
		case err := <-exited:
			return "exited", fmt.Errorf("gst-launch-1.0 exited (%v): %s", err, lastLine(stderr.String()))
		case now := <-tick.C:
			if watchdogExpired(started, u.alive(), now, netWatchdog) {
				kill()
				<-exited
				return "watchdog", nil
			}
		}
	}
}

// netContender is one contender's run in a cut.
type netContender struct {
	label  string
	stream string
	unit   *netUnit
}

// netCutResult is one cut's rows.
type netCutResult struct {
	cut      time.Duration
	outcomes []netOutcome
	sessions []int
	errors   []string // ERROR acknowledgements by id, putMedia calls ended by an error other than the client's
	cutAt    time.Time
	units    []*netContender
	bounded  bool // both drained within the bound
}

// networkScenario runs every cut, the cuts at once (each its own endpoint
// and proxy, both contenders of a cut side by side).
func (b *Bench) networkScenario(s *scope) ([]Table, error) {
	title := "Network cut between kvssink and KVS: frames lost and time to drain"
	skipped := func(why string) []Table { return []Table{{Title: title, Text: "Skipped: " + why + "."}} }
	if b.cfg.Quick {
		return skipped("-quick runs no network cut (the cuts last 30 s and 2 min; `go run ./test/bench -only network` runs them)"), nil
	}
	kvsDir, ok := realKVSSinkDir()
	if !ok {
		return skipped("no real kvssink (set KVSSINK_PLUGIN_DIR or run make kvssink): the test build's stand-in uploads nothing, and what reaches KVS is what this scenario measures"), nil
	}
	k, err := b.realKVSSink(s, kvsDir, "network-registry.bin")
	if err != nil {
		return nil, err
	}
	sizing, err := recipeKVSSinkSizing(netOutageBudget, netBitrateKbps)
	if err != nil {
		return nil, err
	}
	imdsSource, err := credsource.New(credsource.Options{Kind: credsource.KindIMDS, Endpoint: k.imds.URL()})
	if err != nil {
		return nil, err
	}
	type cutSetup struct {
		cut   time.Duration
		ep    *kvsendpoint.Server
		proxy *servers.Proxy
		env   []string
	}
	var setups []cutSetup
	for _, cut := range netCuts {
		ep, err := k.newEndpoint()
		if err != nil {
			return nil, err
		}
		s.Cleanup(ep.Close)
		proxy := servers.NewProxy(s, strings.TrimPrefix(ep.URL(), "http://"))
		ep.SetDataEndpoint("http://" + proxy.Addr())
		// The later CONTROL_PLANE_URI wins (os/exec keeps the last).
		setups = append(setups, cutSetup{cut: cut, ep: ep, proxy: proxy, env: append(slices.Clone(k.env), "CONTROL_PLANE_URI="+ep.URL())})
	}
	results := make([]netCutResult, len(setups))
	errs := make([]error, len(setups))
	var wg sync.WaitGroup
	for i, cs := range setups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = b.networkCut(k, cs.cut, cs.ep, cs.proxy, cs.env, sizing, imdsSource)
		}()
	}
	wg.Wait()
	table := Table{
		Title: title,
		Columns: []string{"Cut", "Contender", "frames made in window (count)", "frames persisted (count)", "frames lost (count)", "frames lost (%)",
			"longest hole (s)", "drained after network back (s)", "putMedia sessions (count)", "process restarts (count)"},
	}
	var notes []string
	for _, r := range results {
		for i, c := range r.units {
			if i >= len(r.outcomes) {
				break
			}
			o := r.outcomes[i]
			drain := ">" + secs(netDrainBound)
			if o.Drained {
				drain = fmt.Sprintf("%.1f", o.Drain.Seconds())
			}
			restarts, why, messages := c.unit.summary()
			lostPct := naCell
			if o.Slots > 0 {
				lostPct = fmt.Sprintf("%.1f", float64(o.Lost)*100/float64(o.Slots))
			}
			table.AddRow(secs(r.cut)+" s", c.label, fmt.Sprint(o.Slots), fmt.Sprint(o.Persisted), fmt.Sprint(o.Lost), lostPct,
				fmt.Sprintf("%.2f", o.LongestHole.Seconds()), drain, fmt.Sprint(r.sessions[i]), fmt.Sprint(restarts))
			if why == "" {
				why = "none"
			}
			if messages == "" {
				messages = "none"
			}
			hole := "none"
			if o.LongestHole > time.Second {
				hole = fmt.Sprintf("from %.1f s to %.1f s after the cut began", o.HoleFrom.Sub(r.cutAt).Seconds(), o.HoleFrom.Add(o.LongestHole).Sub(r.cutAt).Seconds())
			}
			notes = append(notes, fmt.Sprintf("%s s cut, %s: restarts: %s; kvscredprovider upload messages: %s; at the endpoint: %s; longest hole: %s.", secs(r.cut), c.label, why, messages, r.errors[i], hole))
		}
	}
	table.Notes = append([]string{
		fmt.Sprintf("Source: videotestsrc is-live 320x240 at %d fps, x264enc ultrafast zerolatency bitrate=%d key-int-max=%d (a fragment a second), h264parse, kvssink's caps. Both contenders of a cut start together and upload to one local KVS endpoint (test/kvsendpoint, in the bench process) through one toxiproxy in front of putMedia only; the cut is toxiproxy's timeout toxic (data dropped, connections left hanging), removed after the cut's length. All cuts run at the same time, each with its own endpoint and proxy.", netFPS, netBitrateKbps, netFPS),
		fmt.Sprintf("kvsrelay: kvscredprovider ! reconnectbin source=\"videotestsrc ...\" ! x264enc ... ! kvssink %s (pipelines/common.sh kvssink_buffer_props for OUTAGE_BUDGET_S=%d at %d kb/s), credentials from a fake IMDS through kvscredprovider; run as kvs-relay@.service runs it: Restart=always, RestartSec=%s, WatchdogSec=%s through a NOTIFY_SOCKET the bench serves (WATCHDOG_USEC set), killed when no WATCHDOG=1 came for %s s.",
			strings.Join(sizing, " "), netOutageBudget, netBitrateKbps, secs(netRestartSec), secs(netWatchdog), secs(netWatchdog)),
		fmt.Sprintf("restart-the-process: the incident report's approach: the same source and encoder straight into kvssink at its defaults (buffer-duration 120 s, storage-size 128 MiB; the incident's storage-size=512 would change nothing here, as neither limit is reached at this bitrate: what is lost is what a restart throws away), credentials fetched from the same fake IMDS at every start and passed in the environment (its EnvironmentFile), Restart=always, RestartSec=%s, and a watchdog that kills the process when no fragment was acknowledged for %s s (the stock line sends no WATCHDOG=1; Restart=always alone never restarts a process hanging on a dead connection). A kill loses what kvssink held in memory.", secs(netRestartSec), secs(netWatchdog)),
		fmt.Sprintf("Window: from %s s before the cut to %s s after the network came back, %d frame slots a second. Frames made: the slots of the window (the camera makes a frame in each, whether or not a relay process is running). Persisted: distinct frames of fragments the endpoint acknowledged PERSISTED, from the fragments' block timecodes (kvssink's absolute timecodes follow the wall clock). Lost: slots without a persisted frame (persisted may exceed the frames made by one or two where kvssink's millisecond timecodes put two frames in one slot). Longest hole: the longest span of the window without a persisted frame (0.04 s is continuous video).", secs(netBefore), secs(netAfter), netFPS),
		fmt.Sprintf("Drained: from the network's return until the first fragment made after it is persisted and every fragment before it that ever was (kvssink sends in order); for a contender that lost the backlog that is just its first new fragment. \">%s\": not within %s s. The run ends when both contenders persisted a fragment past the window's end, or at that bound. putMedia sessions: the calls the endpoint saw for the contender's stream over the whole run. No ratio column: a contender that loses nothing would make it infinite.", secs(netDrainBound), secs(netDrainBound)),
		"kvssink is " + k.label + ".",
	}, notes...)
	return []Table{table}, errors.Join(errs...)
}

// networkCut runs the two contenders of one cut side by side.
func (b *Bench) networkCut(k *densitySink, cut time.Duration, ep *kvsendpoint.Server, proxy *servers.Proxy, env, sizing []string, imds *credsource.Source) (netCutResult, error) {
	res := netCutResult{cut: cut}
	tag := strings.ReplaceAll(secs(cut), ".", "_") + "s"
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()

	logConfig := func(name string) (string, error) {
		return writeKVSSinkLogConfig(k.dir, "network-"+tag+"-"+name)
	}
	relayLog, err := logConfig("kvsrelay")
	if err != nil {
		return res, err
	}
	baseLog, err := logConfig("restart")
	if err != nil {
		return res, err
	}
	notify, err := listenNotify(filepath.Join(k.dir, "notify-"+tag))
	if err != nil {
		return res, err
	}
	defer notify.close()

	relayStream, baseStream := "kvsrelay-network-"+tag+"-relay", "kvsrelay-network-"+tag+"-restart"
	relayArgs := append([]string{"kvscredprovider", "credential-path=" + filepath.Join(k.dir, "credential-network-"+tag),
		"reconnectbin", "name=relay", `source="` + netSourceChain() + `"`, "!"}, netEncoder()...)
	relayArgs = append(relayArgs, "kvssink", "stream-name="+relayStream, "aws-region="+densityRegion, "log-config="+relayLog)
	relayArgs = append(relayArgs, sizing...)
	baseArgs := append(append(strings.Fields(netSourceChain()), "!"), netEncoder()...)
	baseArgs = append(baseArgs, "kvssink", "stream-name="+baseStream, "aws-region="+densityRegion, "log-config="+baseLog)

	fragments := func(stream string) []netFragment { return netFragmentsOf(ep.Fragments(stream)) }
	relay := &netContender{label: "kvsrelay", stream: relayStream, unit: &netUnit{
		name: "kvsrelay", args: relayArgs,
		env: func() ([]string, error) {
			return append(slices.Clone(env), "NOTIFY_SOCKET="+notify.path, fmt.Sprintf("WATCHDOG_USEC=%d", netWatchdog.Microseconds())), nil
		},
		alive:    notify.lastPing,
		restarts: map[string]int{}, messages: map[string]int{},
	}}
	base := &netContender{label: "restart-the-process", stream: baseStream, unit: &netUnit{
		name: "restart-the-process", args: baseArgs,
		env: func() ([]string, error) {
			c, err := imds.Fetch(ctx)
			if err != nil {
				return nil, fmt.Errorf("credentials from the fake IMDS: %w", err)
			}
			return append(slices.Clone(env), "AWS_ACCESS_KEY_ID="+c.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+c.SecretAccessKey, "AWS_SESSION_TOKEN="+c.SessionToken), nil
		},
		alive:    func() time.Time { return lastAck(fragments(baseStream)) },
		restarts: map[string]int{}, messages: map[string]int{},
	}}
	res.units = []*netContender{relay, base}
	var wg sync.WaitGroup
	for _, c := range res.units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.unit.run(ctx)
		}()
	}
	defer wg.Wait()
	defer cancel()

	b.progress("network: %s s cut: starting both contenders", secs(cut))
	persistedFragments := func(stream string) int {
		n := 0
		for _, f := range fragments(stream) {
			if f.Persisted {
				n++
			}
		}
		return n
	}
	if !waitFor(ctx, netStartBound, func() bool {
		return persistedFragments(relayStream) >= 3 && persistedFragments(baseStream) >= 3
	}) {
		return res, fmt.Errorf("%s s cut: not both contenders persisted 3 fragments within %s s (kvsrelay %d, restart-the-process %d): %s; %s",
			secs(cut), secs(netStartBound), persistedFragments(relayStream), persistedFragments(baseStream), relay.unit.lastError(), base.unit.lastError())
	}
	from := time.Now()
	// The window's part before the cut: the scenario's length.
	if err := sleepCtx(ctx, netBefore); err != nil {
		return res, err
	}
	if err := proxy.Timeout(); err != nil {
		return res, err
	}
	res.cutAt = time.Now()
	b.progress("network: %s s cut: network cut", secs(cut))
	if err := sleepCtx(ctx, cut); err != nil {
		return res, err
	}
	proxy.Clear()
	restored := time.Now()
	to := restored.Add(netAfter)
	b.progress("network: %s s cut: network back, waiting for both backlogs", secs(cut))
	res.bounded = waitFor(ctx, netAfter+netDrainBound, func() bool {
		return time.Now().After(to) && drainedPast(fragments(relayStream), to) && drainedPast(fragments(baseStream), to)
	})
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	cancel()
	wg.Wait()
	for _, c := range res.units {
		res.outcomes = append(res.outcomes, measureCut(fragments(c.stream), from, to, restored, netFPS))
		res.sessions = append(res.sessions, len(ep.Sessions(c.stream)))
		res.errors = append(res.errors, endpointErrors(ep, c.stream))
	}
	for i, c := range res.units {
		o := res.outcomes[i]
		b.progress("network: %s s cut: %s lost %d of %d frames, longest hole %.2f s, drained %v after %.1f s",
			secs(cut), c.label, o.Lost, o.Slots, o.LongestHole.Seconds(), o.Drained, o.Drain.Seconds())
	}
	return res, nil
}

func (u *netUnit) lastError() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.lastErr == "" {
		return u.name + ": no error"
	}
	return u.name + ": " + u.lastErr
}

// endpointErrors says which ERROR acknowledgements the endpoint sent for
// the stream, and how many putMedia calls ended otherwise than by the
// client closing them ("unexpected EOF": kvssink dropped the connection,
// or the process died).
func endpointErrors(ep *kvsendpoint.Server, stream string) string {
	acks := map[int]int{}
	for _, f := range ep.Fragments(stream) {
		if f.ErrorID != 0 {
			acks[f.ErrorID]++
		}
	}
	ended := map[string]int{}
	for _, s := range ep.Sessions(stream) {
		if s.Err != "" && s.Err != "unexpected EOF" {
			ended[s.Err]++
		}
	}
	var parts []string
	for id, n := range acks {
		parts = append(parts, fmt.Sprintf("ERROR ack %d x%d", id, n))
	}
	for e, n := range ended {
		parts = append(parts, fmt.Sprintf("putMedia ended %q x%d", e, n))
	}
	if len(parts) == 0 {
		return "no ERROR ack"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
