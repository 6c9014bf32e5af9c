// Package healthserver answers orchestrators over HTTP where systemd's
// watchdog is not there to judge the relay (Kubernetes, ECS, Nomad):
// /healthz says 200 only under the rule behind WATCHDOG=1 (every source
// delivered or is retrying, no push into kvssink blocked, no upload wedged),
// and /metrics carries the CloudWatch EMF metrics in Prometheus text format.
//
// The rule is judged over fixed windows (Options.Interval) by a ticker, not
// per request: a probe every second and a human's curl must not shorten the
// window and turn a quiet-but-healthy second into a 503.
package healthserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/ticker"
)

// DefaultInterval is the window /healthz judges by: Kubernetes probes every
// 10 s by default, and a relay that moved nothing for 10 s while not
// retrying is wedged.
const DefaultInterval = 10 * time.Second

// Ticker is a tick source; tests pass their own.
type Ticker = ticker.Ticker

// Options configures a Server.
type Options struct {
	// Check judges the window since the last healthy check (see
	// sdnotify.Observer.Check). Required.
	Check func() (healthy bool, reason string)
	// Metrics writes the Prometheus text exposition (emf.Recorder's
	// WritePrometheus). Nil: /metrics carries only kvsrelay_healthy.
	Metrics func(io.Writer) error
	// Interval between checks. Default DefaultInterval.
	Interval time.Duration
	// NewTicker makes the check ticker. Default time.NewTicker.
	NewTicker func(time.Duration) Ticker
}

// Server holds the latest verdict and serves it.
type Server struct {
	opts Options

	mu      sync.Mutex
	checked bool
	healthy bool
	reason  string
}

// New returns a Server; call Run to start judging.
func New(opts Options) (*Server, error) {
	if opts.Check == nil {
		return nil, errors.New("health server: Check is nil")
	}
	if opts.Interval < 0 {
		return nil, fmt.Errorf("health server: interval %v is negative", opts.Interval)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.NewTicker == nil {
		opts.NewTicker = ticker.New
	}
	return &Server{opts: opts}, nil
}

// Run checks once per interval until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := s.opts.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			s.checkNow()
		}
	}
}

func (s *Server) checkNow() {
	healthy, reason := s.opts.Check()
	s.mu.Lock()
	s.checked, s.healthy, s.reason = true, healthy, reason
	s.mu.Unlock()
}

// verdict is the latest check's outcome; before the first one the relay is
// "starting", which is not healthy (a startup probe covers it).
func (s *Server) verdict() (healthy bool, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.checked:
		return false, fmt.Sprintf("starting: the first check is %s after the relay started", s.opts.Interval)
	case s.healthy:
		return true, "ok"
	default:
		return false, "unhealthy: " + s.reason
	}
}

// Handler serves /healthz and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.HandleFunc("/metrics", s.serveMetrics)
	return mux
}

func allowRead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
	return false
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r) {
		return
	}
	healthy, text := s.verdict()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if healthy {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	io.WriteString(w, strings.ReplaceAll(text, "\n", " ")+"\n")
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r) {
		return
	}
	var body bytes.Buffer
	if s.opts.Metrics != nil {
		if err := s.opts.Metrics(&body); err != nil {
			http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	healthy, _ := s.verdict()
	v := 0
	if healthy {
		v = 1
	}
	fmt.Fprintf(&body, "# HELP kvsrelay_healthy 1 while /healthz answers 200 (the rule behind systemd's WATCHDOG=1), else 0.\n"+
		"# TYPE kvsrelay_healthy gauge\nkvsrelay_healthy %d\n", v)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body.Bytes())
}
