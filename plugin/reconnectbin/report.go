package reconnectbin

import (
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/emf"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/sdnotify"
)

// report forwards what the bin does to systemd (sd_notify: READY, STATUS,
// a watchdog that pings only while data moves) and to CloudWatch Embedded
// Metric Format lines. Both are process-wide and inert unless NOTIFY_SOCKET
// or KVSRELAY_METRICS are set; a nil report (stopped bin) does nothing.
type report struct {
	notify  *sdnotify.Source
	metrics *emf.Stream
}

// newReport registers the bin with the process's notifier and recorder.
// The metrics stream is named after the pipeline's kvssink stream-name when
// there is exactly one, else after the bin.
func newReport(bin *gst.Bin) *report {
	r := &report{}
	if n, err := sdnotify.Default(); err == nil && n != nil {
		r.notify = n.Register(bin.GetName())
	} else if err != nil {
		cat.LogWarning("sd_notify disabled: " + err.Error())
	}
	if on, err := emf.StartDefaultFromEnv(); err != nil {
		cat.LogWarning("metrics disabled: " + err.Error())
	} else if on {
		r.metrics = emf.Default().Stream(metricsName(bin))
	}
	return r
}

func metricsName(bin *gst.Bin) string {
	top := gstshim.TopLevel(bin.Object)
	if topBin := gst.ToGstBin(top); topBin != nil {
		if elements, err := topBin.GetElementsRecursive(); err == nil {
			var names []string
			for _, el := range elements {
				if f := el.GetFactory(); f != nil && f.GetName() == "kvssink" {
					if v, err := el.GetProperty("stream-name"); err == nil {
						if s, ok := v.(string); ok {
							names = append(names, s)
						}
					}
				}
			}
			if len(names) == 1 {
				return names[0]
			}
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
		// The previous push returned (the same thread is back with a new
		// buffer); this one starts. A push that never returns is a wedged sink.
		r.notify.PushFinished()
		r.notify.PushStarted()
		r.notify.DataOut()
	}
	if r.metrics != nil {
		r.metrics.AddFramesOut(1)
	}
}

// sourceStopped says no push is in flight any more: the instance that pushed
// was torn down, so its thread is out of downstream.
func (r *report) sourceStopped() {
	if r != nil && r.notify != nil {
		r.notify.PushFinished()
	}
}

func (r *report) restart(reason string, status string) {
	if r == nil {
		return
	}
	if r.notify != nil {
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
