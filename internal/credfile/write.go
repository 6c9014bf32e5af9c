package credfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MinRemaining is the least lifetime credentials must have left for Write to
// accept them. kvssink rejects credentials with under 30 s left and re-reads
// the file when now+38 s passes the cached expiration, so a file whose
// credentials have less than ~40 s left is useless to it. Two minutes adds
// room for clock skew between the writer and AWS and for the time the
// pipeline needs to reach its next re-read, so anything with 2 minutes or
// less left is refused rather than handed to kvssink.
const MinRemaining = 2 * time.Minute

// DirMode is the mode of folders Write creates; FileMode the mode of the file.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// Write replaces the file at path with c, atomically: the bytes go to a
// temporary file in the same folder (mode 0600), which is fsynced and then
// renamed over path, and the folder is fsynced so the rename survives a crash.
// A reader therefore sees either the old file or the new one, never half a
// file, and on any error the old file is left as it was.
//
// Write refuses credentials that are invalid (see Encode) or that have
// MinRemaining or less left at now; those errors wrap ErrRefused. A missing
// parent folder is created with mode 0700. An existing folder that group or
// other users may write to is refused, since they could replace or remove
// the file kvssink reads (one they may only list is used: see
// FolderWarning). An error naming the folder is returned if it cannot be
// written. Every error names path or its folder and never contains the
// secret or the token.
func Write(path string, c Credentials, now time.Time) error {
	if path == "" {
		return errors.New("credfile: credential path is empty")
	}
	data, err := Encode(c)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if left := c.Expires.Sub(now); left <= MinRemaining {
		if left <= 0 {
			return fmt.Errorf("writing %s: %w: %s already expired %s ago", path, ErrRefused, MaskKeyID(c.AccessKeyID), (-left).Round(time.Second))
		}
		return fmt.Errorf("writing %s: %w: %s expire in %s, need more than %s (kvssink rejects credentials with under 30s left)", path, ErrRefused, MaskKeyID(c.AccessKeyID), left.Round(time.Second), MinRemaining)
	}

	dir := filepath.Dir(path)
	if err := ensureDir(dir); err != nil {
		return err
	}

	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("credential folder %s is not writable: %w", dir, err)
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()

	// CreateTemp already uses 0600; Chmod makes it explicit and independent
	// of the umask.
	if err := tmp.Chmod(FileMode); err != nil {
		return fmt.Errorf("writing %s: setting mode of temporary file: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: fsync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("writing %s: replacing file: %w", path, err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		// The new file is in place; only its durability across a power
		// loss is in doubt. Report it anyway so it is not silently lost.
		return fmt.Errorf("writing %s: fsync of folder %s: %w", path, dir, err)
	}
	return nil
}

// ensureDir creates dir (0700, with parents) if it does not exist, and
// refuses an existing one that others may write to.
func ensureDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("credential folder %s is not a folder", dir)
	case err == nil:
		if perm := st.Mode().Perm(); perm&0o022 != 0 {
			return fmt.Errorf("credential folder %s has mode %04o: group or other users can write to it, so they could "+
				"replace or remove the credential file kvssink reads; use a folder only this user can write "+
				"(mode 0700; under systemd RuntimeDirectoryMode=0700)", dir, perm)
		}
		return nil
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, DirMode); err != nil {
			return fmt.Errorf("creating credential folder %s: %w", dir, err)
		}
		return nil
	default:
		return fmt.Errorf("credential folder %s: %w", dir, err)
	}
}

// FolderWarning returns a warning when group or other users may list or
// enter dir (read or search permission), "" otherwise (or when dir cannot
// be examined: Write reports that). Such a folder is used: the credential
// file itself is 0600, so its content stays private, but the intended
// layout is a 0700 folder. (Write refuses folders they may write to.)
// Note that systemd creates a RuntimeDirectory= with mode 0755 unless
// RuntimeDirectoryMode= says otherwise.
func FolderWarning(dir string) string {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return ""
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("credential folder %s has mode %04o: other users can see which files it holds (the credential "+
			"file itself is 0600); make it 0700 (under systemd RuntimeDirectoryMode=0700)", dir, perm)
	}
	return ""
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Remove deletes the credential file, so that no credentials stay on disk
// after the relay stops. A file that does not exist is not an error.
func Remove(path string) error {
	if path == "" {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing credential file %s: %w", path, err)
	}
	return nil
}

// DefaultFileName is the file name used inside DefaultDir.
const DefaultFileName = "credential"

// DefaultDir picks the folder for the credential file when the user gave
// none, preferring folders that live in RAM and belong to this service:
//
//  1. $RUNTIME_DIRECTORY, set by systemd for units with RuntimeDirectory=
//     (a colon-separated list when several are configured: the first one is
//     used). systemd creates and removes it with the unit.
//  2. $XDG_RUNTIME_DIR/kvsrelay (per-user tmpfs, 0700); the kvsrelay folder
//     is created with mode 0700 by Write when missing.
//  3. A fresh folder from os.MkdirTemp("", "kvsrelay-cred-*"), mode 0700. The
//     caller owns it and should remove it when done.
//
// getenv is usually os.Getenv; it is a parameter so tests control it.
func DefaultDir(getenv func(string) string) (string, error) {
	if v := getenv("RUNTIME_DIRECTORY"); v != "" {
		for _, d := range strings.Split(v, ":") {
			if d != "" {
				return d, nil
			}
		}
	}
	if v := getenv("XDG_RUNTIME_DIR"); v != "" {
		return filepath.Join(v, "kvsrelay"), nil
	}
	d, err := os.MkdirTemp("", "kvsrelay-cred-*")
	if err != nil {
		return "", fmt.Errorf("creating a temporary credential folder: %w", err)
	}
	return d, nil
}
