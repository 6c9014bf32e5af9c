package reconnectbin

import (
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/emf"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/healthserver"
	"github.com/kvsrelay/kvsrelay/internal/sdnotify"
)

// report forwards what the bin does to systemd (sd_notify: READY, STATUS,
// a watchdog that pings only while data moves), to CloudWatch Embedded
// Metric Format lines and to the /healthz and /metrics endpoint. All are
// process-wide and inert unless NOTIFY_SOCKET, KVSRELAY_METRICS or
// KVSRELAY_HEALTH_ADDR are set; a nil report (stopped bin) does nothing.
type report struct {
	notify  *sdnotify.Source
	metrics *emf.Stream
	// started is set by the first buffer out, which also sends the first
	// STATUS= line (restarts and recoveries send the later ones).
	started atomic.Bool
}

// newReport registers the bin with the process's notifier and recorder.
// The metrics stream is named after the pipeline's kvssink stream-name when
// there is exactly one, else after the bin. blocked reports the oldest push
// out of the bin still in flight, for the watchdog.
func newReport(bin *gst.Bin, blocked func() (time.Duration, bool)) *report {
	r := &report{}
	if n, err := sdnotify.Default(); err == nil && n != nil {
		r.notify = n.Register(bin.GetName())
		r.notify.WatchPushes(blocked)
	} else if err != nil {
		cat.LogWarning("sd_notify disabled: " + err.Error())
	}
	// The health server first: it turns recording on for /metrics.
	if _, err := healthserver.StartDefaultFromEnv(); err != nil {
		cat.LogWarning("health server disabled: " + err.Error())
	}
	on, err := emf.StartDefaultFromEnv()
	if err != nil {
		cat.LogWarning("metrics lines disabled: " + err.Error())
	}
	if on {
		r.metrics = emf.Default().Stream(metricsName(bin))
	}
	return r
}

func metricsName(bin *gst.Bin) string {
	top := gstshim.TopLevel(bin.Object)
	if topBin := gst.ToGstBin(top); topBin != nil {
		var names []string
		for _, el := range gstshim.ElementsMadeBy(topBin, "kvssink") {
			if v, err := el.GetProperty("stream-name"); err == nil {
				if s, ok := v.(string); ok {
					names = append(names, s)
				}
			}
		}
		if len(names) == 1 {
			return names[0]
		}
	}
	return bin.GetName()
}

// dataOut runs per buffer (real or fallback): atomics only.
func (r *report) dataOut() {
	if r == nil {
		return
	}
	if r.notify != nil {
		r.notify.DataOut()
		if !r.started.Load() && r.started.CompareAndSwap(false, true) {
			r.notify.SetStatus(statusLine("running", 0, 0))
		}
	}
	if r.metrics != nil {
		r.metrics.AddFramesOut(1)
	}
}

func (r *report) restart(reason string, status string) {
	if r == nil {
		return
	}
	if r.notify != nil {
		r.started.Store(true) // the status line is this one from now on
		r.notify.Retrying(true)
		r.notify.SetStatus(status)
	}
	if r.metrics != nil {
		r.metrics.AddRestart()
		if reason == "stall" {
			r.metrics.AddStall()
		}
		r.metrics.SetOutage(true)
	}
}

func (r *report) recovered(status string) {
	if r == nil {
		return
	}
	if r.notify != nil {
		r.started.Store(true)
		r.notify.Retrying(false)
		r.notify.SetStatus(status)
	}
	if r.metrics != nil {
		r.metrics.SetOutage(false)
	}
}

func (r *report) fallback(active bool) {
	if r != nil && r.metrics != nil {
		r.metrics.SetFallback(active)
	}
}

func (r *report) close() {
	if r != nil && r.notify != nil {
		r.notify.Close()
	}
}

func statusLine(status string, restarts uint64, lastOutage time.Duration) string {
	return sdnotify.FormatStatus(status, restarts, lastOutage)
}
