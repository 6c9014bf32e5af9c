// Package kvscredprovider implements the kvscredprovider element: a padless
// element that fetches AWS credentials (IMDSv2 first, the SDK's default chain
// where asked) and keeps every kvssink in its pipeline supplied with fresh
// ones through kvssink's credential-path file, long before they expire.
package kvscredprovider

import (
	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"
)

// FactoryName is the name gst-launch-1.0 and gst_element_factory_make use.
const FactoryName = "kvscredprovider"

var cat = gst.NewDebugCategory(FactoryName, gst.DebugColorNone, "kvsrelay kvscredprovider: credential refresh for kvssink")

// Register registers kvscredprovider with plugin, or statically when plugin is nil.
func Register(plugin *gst.Plugin) bool {
	return gst.RegisterElement(plugin, FactoryName, gst.RankNone, &credProvider{}, gst.ExtendsElement)
}

type credProvider struct{}

func (p *credProvider) New() glib.GoObjectSubclass { return &credProvider{} }

func (p *credProvider) ClassInit(klass *glib.ObjectClass) {
	class := gst.ToElementClass(klass)
	class.SetMetadata(
		"KVS credential provider",
		"Generic",
		"Fetches AWS credentials (IMDSv2 or the AWS default chain) and keeps every kvssink in the pipeline "+
			"supplied with fresh ones through its credential-path file",
		"kvsrelay developers <kvsrelay@users.noreply.github.com>",
	)
}
