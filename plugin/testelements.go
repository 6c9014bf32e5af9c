//go:build kvsrelay_testelements

package main

import "github.com/kvsrelay/kvsrelay/test/kvssinkstandin"

// The test build of libgstkvsrelay.so (build-test/) also carries the
// kvssink stand-in, so test pipelines are the very lines users run. It can not
// be a second Go .so: two Go runtimes in one process crash.
func init() { extraElements = append(extraElements, kvssinkstandin.Register) }
