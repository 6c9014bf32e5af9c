package kvscredprovider

import (
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
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
