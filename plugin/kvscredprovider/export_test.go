package kvscredprovider

import "github.com/kvsrelay/kvsrelay/internal/credrefresh"

// SetKeeperOptionsForTest adjusts every Keeper started from now on (clock,
// retry delays) until the returned restore function is called.
func SetKeeperOptionsForTest(f func(*credrefresh.Options)) (restore func()) {
	keeperOptionsHook = f
	return func() { keeperOptionsHook = nil }
}
