package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/plugin/kvsrelay"
)

var (
	initOnce sync.Once
	// registryDir is the removed registry folder, for the harness's tests.
	registryDir string
)

// InitGStreamer initialises GStreamer in this (Go) process with an isolated
// registry and registers kvsrelay's elements statically, plus any extra
// registrations (the kvssink stand-in). This process never loads
// libgstkvsrelay.so: the system plugin path is restricted to GStreamer's own
// folder and GST_PLUGIN_PATH is cleared. Call it from TestMain.
//
// It exits the process with a message when GStreamer's system plugin folder
// holds a real kvssink (see CheckSystemPluginDir). The registry file lives
// in a temp folder that is removed as soon as gst_init has read and written
// it: GStreamer keeps the registry in memory from then on, and children
// started through Env get registries of their own.
func InitGStreamer(extra ...func(*gst.Plugin) bool) {
	initOnce.Do(func() {
		if problem := kvssinkInSystemPluginDir(); problem != "" {
			fmt.Fprintln(os.Stderr, "harness: "+problem)
			os.Exit(2)
		}
		dir, err := os.MkdirTemp("", "kvsrelay-registry-*")
		if err != nil {
			panic(err)
		}
		os.Setenv("GST_REGISTRY", filepath.Join(dir, "registry.bin"))
		os.Setenv("GST_PLUGIN_SYSTEM_PATH_1_0", SystemPluginDir())
		os.Unsetenv("GST_PLUGIN_PATH")
		os.Unsetenv("GST_PLUGIN_PATH_1_0")
		gst.Init(nil)
		os.RemoveAll(dir)
		registryDir = dir
		if !kvsrelay.Register(nil) {
			panic("registering kvsrelay's elements failed")
		}
		for _, register := range extra {
			if !register(nil) {
				panic("registering a test element failed")
			}
		}
	})
}

// Pipeline is an in-process pipeline whose bus messages are collected.
type Pipeline struct {
	*gst.Pipeline
	tb testing.TB

	mu      sync.Mutex
	msgs    []*gst.Message
	changed chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// NewPipeline parses a gst-launch description into a pipeline and starts
// collecting its bus messages. The pipeline is stopped with the test.
func NewPipeline(tb testing.TB, desc string) *Pipeline {
	tb.Helper()
	p, err := gst.NewPipelineFromString(desc)
	if err != nil {
		tb.Fatalf("parsing %q: %v", desc, err)
	}
	pl := &Pipeline{Pipeline: p, tb: tb, changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go pl.collect()
	tb.Cleanup(func() {
		_ = p.SetState(gst.StateNull)
		close(pl.stop)
		<-pl.done
	})
	return pl
}

func (p *Pipeline) collect() {
	defer close(p.done)
	bus := p.GetPipelineBus()
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		msg := bus.TimedPop(gst.ClockTime(50 * time.Millisecond))
		if msg == nil {
			continue
		}
		// A kept message holds a reference to the object that posted it;
		// state-changed and the like from rebuilt source instances would keep
		// every removed instance alive and hide real leaks.
		switch msg.Type() {
		case gst.MessageError, gst.MessageWarning, gst.MessageInfo, gst.MessageEOS,
			gst.MessageElement, gst.MessageStreamStart, gst.MessageApplication:
		default:
			continue
		}
		p.mu.Lock()
		p.msgs = append(p.msgs, msg)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// Start sets the pipeline to PLAYING, failing the test if that fails.
func (p *Pipeline) Start() {
	p.tb.Helper()
	if err := p.SetState(gst.StatePlaying); err != nil {
		var errs []string
		bus := p.GetPipelineBus()
		for m := bus.Pop(); m != nil; m = bus.Pop() {
			if t := ErrorText(m); t != "" {
				errs = append(errs, t)
			}
		}
		for _, m := range p.Messages() {
			if t := ErrorText(m); t != "" {
				errs = append(errs, t)
			}
		}
		p.tb.Fatalf("setting the pipeline to PLAYING: %v %v", err, errs)
	}
}

// Messages returns every message collected so far.
func (p *Pipeline) Messages() []*gst.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*gst.Message(nil), p.msgs...)
}

// WaitFor waits until the n-th message matching match has been posted and
// returns it, failing the test at the deadline.
func (p *Pipeline) WaitFor(timeout time.Duration, n int, what string, match func(*gst.Message) bool) *gst.Message {
	p.tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		seen := 0
		for _, m := range p.msgs {
			if match(m) {
				seen++
				if seen == n {
					p.mu.Unlock()
					return m
				}
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			p.tb.Fatalf("waiting for %s: timed out after %v with %d of %d", what, timeout, seen, n)
			return nil
		}
	}
}

// ElementMessage matches element messages whose structure has the given name.
func ElementMessage(name string) func(*gst.Message) bool {
	return func(m *gst.Message) bool {
		if m.Type() != gst.MessageElement {
			return false
		}
		st := m.GetStructure()
		return st != nil && st.Name() == name
	}
}

// MessageOfType matches messages of one type.
func MessageOfType(t gst.MessageType) func(*gst.Message) bool {
	return func(m *gst.Message) bool { return m.Type() == t }
}

// WaitUntil polls cond every 20 ms until it holds, failing the test at the
// deadline. For state that has no message of its own (a property, a file).
func WaitUntil(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waiting for %s: timed out after %v", what, timeout)
		}
		<-tick.C
	}
}

// ErrorText formats an ERROR message for test failures.
func ErrorText(m *gst.Message) string {
	if m == nil || m.Type() != gst.MessageError {
		return ""
	}
	e := m.ParseError()
	return fmt.Sprintf("%s: %s (%s)", m.Source(), e.Error(), e.DebugString())
}
