package gstshim

import "sync"

// handles maps the ids that C signal handlers carry as user data to the Go
// functions they stand for: the one registry of Go callbacks in the
// package. runtime/cgo.Handle would do the same bookkeeping, but its Value
// panics for a deleted handle, and a signal emission that began in another
// thread can still reach a handler after it was disconnected; here a late
// call finds nothing and does nothing (a panic inside a plugin kills the
// host).
var handles struct {
	mu   sync.Mutex
	next uintptr
	fns  map[uintptr]any
}

// newHandle registers fn and returns its id (never 0).
func newHandle(fn any) uintptr {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	if handles.fns == nil {
		handles.fns = map[uintptr]any{}
	}
	handles.next++
	handles.fns[handles.next] = fn
	return handles.next
}

// handleValue returns what id stands for, or nil once it was deleted.
func handleValue(id uintptr) any {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	return handles.fns[id]
}

// deleteHandle forgets id.
func deleteHandle(id uintptr) {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	delete(handles.fns, id)
}

// NewHandle registers fn for a C handler outside this package (an
// element's own cgo file) and returns the id to pass as its user data;
// HandleValue finds it (nil once deleted), DeleteHandle forgets it. The
// same registry, so that a late call after DeleteHandle finds nothing
// there too.
func NewHandle(fn any) uintptr { return newHandle(fn) }

// HandleValue returns what id stands for, or nil once it was deleted.
func HandleValue(id uintptr) any { return handleValue(id) }

// DeleteHandle forgets id.
func DeleteHandle(id uintptr) { deleteHandle(id) }
