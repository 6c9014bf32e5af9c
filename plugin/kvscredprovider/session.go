package kvscredprovider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/internal/credsource"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// stopTimeout bounds how long stopping waits for the refresh goroutine.
const stopTimeout = 10 * time.Second

// settingProperties names the properties behind the credrefresh and
// credsource fields a user sets, so that their validation errors (each a
// *fielderr.Error) speak of what the user sets.
var settingProperties = map[string]string{
	"RefreshBefore": "refresh-before",
	"Kind":          "source",
	"Role":          "role",
	"Profile":       "profile",
	"AckTimeout":    "ack-timeout",
}

// settingError says err, a problem with this element's settings, in the
// user's words: "cp: property 'refresh-before' (1m0s) must be at least ...".
// It stays a *fielderr.Error, which is how postStartError tells a setting
// the user must fix from a credential source that failed.
func settingError(name string, err error) error {
	var fe *fielderr.Error
	if !errors.As(fielderr.Rename(err, settingProperties), &fe) {
		return fmt.Errorf("%s: %w", name, err)
	}
	out := *fe
	if fe.Field == "refresh-before" || fe.Field == "ack-timeout" {
		// gst-launch takes it in nanoseconds, the message speaks Go durations.
		out.Problem += "; the property is in nanoseconds (2m30s = 150000000000)"
	}
	out.Field = fmt.Sprintf("%s: property '%s'", name, fe.Field)
	return &out
}

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
	if err := credrefresh.CheckRefreshBefore(s.refreshBefore); err != nil {
		return nil, settingError(p.self.GetName(), err)
	}
	src, err := credsource.New(credsource.Options{Kind: s.source, Role: s.role, Profile: s.profile})
	if err != nil {
		return nil, settingError(p.self.GetName(), err)
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
		return nil, settingError(p.self.GetName(), err)
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
