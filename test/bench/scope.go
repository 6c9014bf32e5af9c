package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// scope is the lifetime of one scenario: it owns temp dirs and cleanups,
// and lets the reusable test servers (which take a testing.TB) run outside
// a test. A server that calls Fatal panics with a scopeFailure, which
// scope.run turns back into an error; anything registered with Cleanup runs
// when the scenario ends, in reverse order, whatever happened.
type scope struct {
	testing.TB // nil: methods the servers do not use are not provided
	name       string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	log      io.Writer
}

type scopeFailure struct{ msg string }

func newScope(name string, log io.Writer) *scope { return &scope{name: name, log: log} }

// run calls f, converting a Fatal inside it into an error, then runs the
// cleanups.
func (s *scope) run(f func() error) (err error) {
	defer s.close()
	defer func() {
		if r := recover(); r != nil {
			sf, ok := r.(scopeFailure)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s: %s", s.name, sf.msg)
		}
	}()
	return f()
}

func (s *scope) close() {
	s.mu.Lock()
	cleanups := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

func (s *scope) Helper()      {}
func (s *scope) Name() string { return s.name }

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *scope) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *scope) fail(msg string) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	panic(scopeFailure{msg: msg})
}

func (s *scope) Fatal(args ...any)                 { s.fail(fmt.Sprint(args...)) }
func (s *scope) Fatalf(format string, args ...any) { s.fail(fmt.Sprintf(format, args...)) }
func (s *scope) FailNow()                          { s.fail("failed") }

func (s *scope) Error(args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	s.Log(args...)
}

func (s *scope) Errorf(format string, args ...any) { s.Error(fmt.Sprintf(format, args...)) }
func (s *scope) Log(args ...any)                   { fmt.Fprintln(s.log, append([]any{"  " + s.name + ":"}, args...)...) }
func (s *scope) Logf(format string, args ...any)   { s.Log(fmt.Sprintf(format, args...)) }

// TempDir makes a directory removed when the scope ends.
func (s *scope) TempDir() string {
	dir, err := os.MkdirTemp("", "kvsrelay-bench-")
	if err != nil {
		s.fail(fmt.Sprintf("create temp dir: %v", err))
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
