// Package gvalue reads the GValues that GObject hands a SetProperty
// implementation, the same way for every kvsrelay element.
package gvalue

import (
	"math"
	"time"

	"github.com/go-gst/go-glib/glib"
)

// String is a string property's value ("" for NULL).
func String(v *glib.Value) string {
	if v == nil {
		return ""
	}
	s, _ := v.GetString()
	return s
}

// Duration is a guint64 nanosecond property's value, capped at the longest
// time.Duration.
func Duration(v *glib.Value) time.Duration {
	if v == nil {
		return 0
	}
	gv, err := v.GoValue()
	if err != nil {
		return 0
	}
	u, _ := gv.(uint64)
	if u > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(u)
}
