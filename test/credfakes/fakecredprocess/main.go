// Command fakecredprocess is a credential_process program for tests: it
// issues rotating credentials from the state folder named by its argument
// (see credfakes.Process), or fails the way that folder says.
package main

import (
	"os"

	"github.com/kvsrelay/kvsrelay/test/credfakes"
)

func main() {
	dir := ""
	if len(os.Args) == 2 {
		dir = os.Args[1]
	}
	os.Exit(credfakes.RunProcess(dir, os.Stdout, os.Stderr))
}
