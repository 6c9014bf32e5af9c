package kvscredprovider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/internal/credsource"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// stopTimeout bounds how long stopping waits for the refresh goroutine.
const stopTimeout = 10 * time.Second

// propertyError is a setting the user must fix; its text names the property.
type propertyError struct{ msg string }

func (e *propertyError) Error() string { return e.msg }

// session is one running credential refresh for one file.
type session struct {
	settings settings // what it was started with
	path     string
	ownDir   string // temporary folder created for the file, removed at stop
	describe string // source description for messages
	keeper   *credrefresh.Keeper
	cancel   context.CancelFunc
	done     chan struct{}
}

// startSession validates s, writes credentials (waiting up to PrimeTimeout)
// and starts the refresh goroutine; base holds the Keeper options that do not
// come from the settings (clock, retry delays: zero in production). seed
// (zero: none) are credentials kept from before a stop: if they have well
// over kvssink's margins left (credrefresh.MinSeedRemaining) they are
// written at once and the source is asked in the background, so a restart
// during an IMDS outage still starts.
// It returns a nil session only when s is unusable; with a session it may
// still return the error of the first fetch, while the refresh keeps trying
// in the background.
func startSession(p *credProvider, s settings, base credrefresh.Options, seed credfile.Credentials) (*session, error) {
	if credrefresh.CheckRefreshBefore(s.refreshBefore) != nil {
		return nil, &propertyError{fmt.Sprintf("%s: property refresh-before is %s (%d ns); it must be at least %s (%d ns): "+
			"kvssink needs the credential file valid for over a minute when it re-reads it",
			p.self.GetName(), s.refreshBefore, int64(s.refreshBefore), MinRefreshBefore, int64(MinRefreshBefore))}
	}
	src, err := credsource.New(credsource.Options{Kind: s.source, Role: s.role, Profile: s.profile})
	if err != nil {
		return nil, &propertyError{fmt.Sprintf("%s: properties source/role/profile: %v", p.self.GetName(), err)}
	}
	path, ownDir, err := credentialPath(s.credentialPath, p.self.GetName())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.self.GetName(), err)
	}
	sess := &session{settings: s, path: path, ownDir: ownDir, describe: src.Describe(), done: make(chan struct{})}
	opts := base
	opts.RefreshBefore = s.refreshBefore
	opts.Transient = credsource.IsTransient
	opts.OnEvent = func(e credrefresh.Event) { p.onEvent(sess, e) }
	opts.Seed = seed
	keeper, err := credrefresh.New(src.Fetch,
		func(c credfile.Credentials, now time.Time) error { return credfile.Write(path, c, now) }, opts)
	if err != nil {
		removeOwnDir(ownDir)
		return nil, &propertyError{fmt.Sprintf("%s: property refresh-before: %v", p.self.GetName(), err)}
	}
	sess.keeper = keeper
	ctx, cancel := context.WithCancel(context.Background())
	sess.cancel = cancel

	cat.LogInfo(fmt.Sprintf("%s: credentials from %s into %s, refreshed %s before expiry",
		p.self.GetName(), sess.describe, path, s.refreshBefore))
	primeCtx, primeCancel := context.WithTimeout(ctx, PrimeTimeout)
	primeErr := keeper.Prime(primeCtx)
	primeCancel()
	if w := credfile.FolderWarning(filepath.Dir(path)); w != "" && p.firstWarning("folder") {
		text := fmt.Sprintf("%s: %s", p.self.GetName(), w)
		cat.LogWarning(text)
		gstshim.PostError(p.self, true, gstshim.ResourceError, gst.ResourceErrorSettings, text, "")
	}
	go func() {
		defer close(sess.done)
		_ = keeper.Run(ctx)
	}()
	if primeErr != nil {
		return sess, fmt.Errorf("%s: no AWS credentials for kvssink (%s, file %s): %w; still trying in the background",
			p.self.GetName(), sess.describe, path, primeErr)
	}
	return sess, nil
}

// stop ends the refresh and removes the file (and a folder made for it).
func (s *session) stop() {
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		cat.LogWarning("credential refresh did not stop in time; removing the file anyway")
	}
	if err := credfile.Remove(s.path); err != nil {
		cat.LogWarning(err.Error())
	} else {
		cat.LogInfo("stopped; credential file " + s.path + " removed")
	}
	removeOwnDir(s.ownDir)
}

func removeOwnDir(dir string) {
	if dir != "" {
		_ = os.Remove(dir) // only if empty: never delete what others put there
	}
}

// credentialPath returns the file to write: explicit, or a name unique to
// this process and element in credfile.DefaultDir. ownDir is set when that
// folder was created just for this element (the temporary fallback).
func credentialPath(explicit, elementName string) (path, ownDir string, err error) {
	if explicit != "" {
		return explicit, "", nil
	}
	fromEnv := false
	getenv := func(k string) string {
		v := os.Getenv(k)
		if v != "" {
			fromEnv = true
		}
		return v
	}
	dir, err := credfile.DefaultDir(getenv)
	if err != nil {
		return "", "", fmt.Errorf("choosing a folder for the credential file (set credential-path): %w", err)
	}
	if !fromEnv {
		ownDir = dir
	}
	return filepath.Join(dir, fmt.Sprintf("credential-%d-%s", os.Getpid(), safeName(elementName))), ownDir, nil
}

// safeName keeps an element name usable as part of a file name.
func safeName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
}

// onEvent turns the Keeper's events into log lines and bus messages. Events
// carry only masked key ids and errors without secrets.
func (p *credProvider) onEvent(sess *session, e credrefresh.Event) {
	name := p.self.GetName()
	switch e.Kind {
	case credrefresh.EventRefreshed:
		cat.LogInfo(fmt.Sprintf("%s: %s (file %s)", name, e, sess.path))
		p.metrics.setExpiry(e.Expires)
		p.postElementMessage(MessageRefreshed, map[string]any{
			"access-key-id": e.KeyID,
			"expiration":    e.Expires.UTC().Format(time.RFC3339),
			"reused":        e.Reused,
		})
		// kvssinks held because the first fetch had failed may start now;
		// the next state change includes them again.
		p.releaseSinks(false)
	case credrefresh.EventUnchanged:
		cat.LogDebug(fmt.Sprintf("%s: %s", name, e))
	case credrefresh.EventRefreshFailed:
		cat.LogWarning(fmt.Sprintf("%s: %s", name, e))
		p.metrics.addFailure()
		reason := "unknown"
		if e.Err != nil {
			reason = e.Err.Error()
		}
		p.postElementMessage(MessageRefreshFailed, map[string]any{
			"reason":    reason,
			"time-left": uint64(e.TimeLeft),
			"attempt":   e.Attempt,
		})
		if e.Attempt == 1 && !e.Expires.IsZero() {
			// One bus WARNING per outage: attempt 1 is the first failure
			// since the last successful write (answers that only repeat
			// the current credentials do not count); the element
			// messages count every attempt.
			gstshim.PostError(p.self, true, gstshim.ResourceError, gst.ResourceErrorRead,
				fmt.Sprintf("Refreshing AWS credentials failed; kvssink keeps using key %s, valid for %s more; retrying: %s",
					e.KeyID, e.TimeLeft.Round(time.Second), reason), sess.describe)
		}
	case credrefresh.EventExpired:
		cat.LogError(fmt.Sprintf("%s: %s", name, e))
		why := "no refresh succeeded"
		if e.Err != nil {
			why = e.Err.Error()
		}
		gstshim.PostError(p.self, false, gstshim.ResourceError, gst.ResourceErrorNotAuthorized,
			fmt.Sprintf("AWS credentials expired: key %s expired at %s and no new credentials could be fetched; "+
				"kvssink can no longer upload: %s", e.KeyID, e.Expires.UTC().Format(time.RFC3339), why), sess.describe)
	}
}
