package kvscredprovider

import (
	"sync"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/emf"
	"github.com/kvsrelay/kvsrelay/internal/healthserver"
)

// metrics records CredentialSecondsToExpiry and CredentialRefreshFailures
// into the process's CloudWatch EMF recorder (internal/emf), in the stream
// of every kvssink this element supplies: emf.Default().Stream(<kvssink
// stream-name>), the same stream reconnectbin records into when it feeds
// that kvssink, so one line per stream carries both. Inert unless
// KVSRELAY_METRICS or KVSRELAY_HEALTH_ADDR is set (startRecording).
type metrics struct {
	mu      sync.Mutex
	checked bool // StartDefaultFromEnv was called
	on      bool
	streams map[string]*emf.Stream
	expiry  time.Time // of the credentials in the file; zero when none
}

// start turns recording on if KVSRELAY_METRICS asks for it (once).
func (m *metrics) start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checked {
		return
	}
	m.checked = true
	m.on = startRecording()
}

// startRecording starts the process's health server and EMF lines where the
// environment asks for them (each once per process) and reports whether
// metrics are recorded. The health server goes first: it turns recording on
// for /metrics.
func startRecording() bool {
	if _, err := healthserver.StartDefaultFromEnv(); err != nil {
		cat.LogWarning("health server disabled: " + err.Error())
	}
	on, err := emf.StartDefaultFromEnv()
	if err != nil {
		cat.LogWarning("metrics lines disabled: " + err.Error())
	}
	return on
}

// addSink records into the stream of kvssink el from now on; expiry is
// when the credentials now in the file expire (zero: none yet).
func (m *metrics) addSink(el *gst.Element, expiry time.Time) {
	name := ""
	if v, err := el.GetProperty("stream-name"); err == nil {
		name, _ = v.(string)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.on {
		return
	}
	if m.streams == nil {
		m.streams = map[string]*emf.Stream{}
	}
	st := emf.Default().Stream(name)
	if _, ok := m.streams[st.Name()]; ok {
		return
	}
	m.streams[st.Name()] = st
	if !expiry.IsZero() {
		m.expiry = expiry
	}
	if !m.expiry.IsZero() {
		st.SetCredentialExpiry(m.expiry)
	}
}

// setExpiry records new credentials in the file.
func (m *metrics) setExpiry(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expiry = t
	for _, st := range m.streams {
		st.SetCredentialExpiry(t)
	}
}

// clearExpiry records that the file is gone (the element stopped): the
// gauge is left out of the lines until credentials are written again.
func (m *metrics) clearExpiry() { m.setExpiry(time.Time{}) }

// addFailure counts one failed refresh attempt.
func (m *metrics) addFailure() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range m.streams {
		st.AddCredentialRefreshFailure()
	}
}
