package kvscredprovider

import (
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/internal/sdnotify"
)

// SetKeeperOptions makes the provider el start every credential refresh
// from o (clock, retry delays). Call it before el joins a bin: joining
// starts the first refresh.
func SetKeeperOptions(el *gst.Element, o credrefresh.Options) {
	p := instance(el)
	p.settingsMu.Lock()
	defer p.settingsMu.Unlock()
	p.keeperOptions = o
}

// SetUploadClock makes the provider el's upload watch run on now, ticking
// every tick, and report to notifier (nil: the process's). Call it before
// the pipeline starts.
func SetUploadClock(el *gst.Element, now func() time.Time, tick time.Duration, notifier *sdnotify.Notifier) {
	p := instance(el)
	p.settingsMu.Lock()
	defer p.settingsMu.Unlock()
	p.uploadOpts = uploadOptions{now: now, tick: tick, notifier: notifier}
}
