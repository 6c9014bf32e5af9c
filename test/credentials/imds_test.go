// Package credentials holds the integration tests of the credential side of
// kvsrelay: the credsource/credfile/credrefresh packages against AWS's own
// IMDS emulator (ec2-metadata-mock), the kvscredfile CLI against the
// rotating fake IMDS, and the default chain's other sources (container
// endpoints, IRSA, credential_process) against test/credfakes.
package credentials

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/internal/credsource"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
)

// TestAgainstEC2MetadataMock runs the element's path (source -> keeper ->
// file) against AWS's IMDS emulator in IMDSv2-only mode: token flow, role
// discovery, and the file written in kvssink's exact format.
func TestAgainstEC2MetadataMock(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	want := aemmCredentials{
		Role:        "kvsrelay-relay-role",
		AccessKeyID: "ASIAAEMMTESTKEY01234",
		Secret:      "aemm/Secret+Key0123456789abcdefghijKLMN",
		Token:       "IQoJb3JpZ2luX2VjEAEMMtoken+/0123456789==",
		Expiration:  time.Now().Add(6 * time.Hour).UTC().Truncate(time.Second),
	}
	url := startAEMM(t, want)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)

	for _, role := range []string{"", want.Role} {
		name := "discovered role"
		if role != "" {
			name = "explicit role"
		}
		t.Run(name, func(t *testing.T) {
			src, err := credsource.New(credsource.Options{Kind: credsource.KindIMDS, Role: role})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "kvs", "credential")
			var events []credrefresh.Event
			k, err := credrefresh.New(src.Fetch,
				func(c credfile.Credentials, now time.Time) error { return credfile.Write(path, c, now) },
				credrefresh.Options{Transient: credsource.IsTransient, OnEvent: func(e credrefresh.Event) { events = append(events, e) }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := k.Prime(ctx); err != nil {
				t.Fatalf("Prime against ec2-metadata-mock: %v", err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			wantLine := "CREDENTIALS " + want.AccessKeyID + " " + want.Expiration.Format("2006-01-02T15:04:05Z") + " " + want.Secret + " " + want.Token + "\n"
			if string(data) != wantLine {
				t.Fatalf("file content differs from kvssink format (lengths %d vs %d)", len(data), len(wantLine))
			}
			if k.Status() != credrefresh.StatusValid || !k.Expiration().Equal(want.Expiration) || k.KeyID() != "****1234" {
				t.Fatalf("keeper status %s, expiration %s, key %s", k.Status(), k.Expiration(), k.KeyID())
			}
			if len(events) != 1 || events[0].Kind != credrefresh.EventRefreshed {
				t.Fatalf("events %v, want one refreshed", events)
			}
			st, err := os.Stat(path)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("file mode %v, %v", st.Mode(), err)
			}
		})
	}
}

// TestIMDSv1OnlyRefusedByDefault: an IMDS that refuses session tokens is a
// configuration error, and no file is written.
func TestIMDSv1OnlyRefusedByDefault(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	srv.SetFault(imdsfake.FaultIMDSv1Only)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL())

	src, err := credsource.New(credsource.Options{Kind: credsource.KindIMDS})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "credential")
	k, err := credrefresh.New(src.Fetch,
		func(c credfile.Credentials, now time.Time) error { return credfile.Write(path, c, now) },
		credrefresh.Options{Transient: credsource.IsTransient})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = k.Prime(ctx)
	if !errors.Is(err, credsource.ErrIMDSv1Only) || credsource.IsTransient(err) {
		t.Fatalf("Prime = %v, want a permanent IMDSv1-only error", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a credential file exists after the refusal: %v", err)
	}
	if len(srv.Issued()) != 0 {
		t.Fatal("credentials were requested without IMDSv2")
	}

	// The same server is accepted when IMDSv1 is explicitly allowed.
	src, err = credsource.New(credsource.Options{Kind: credsource.KindIMDS, AllowIMDSv1: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(ctx); err != nil {
		t.Fatalf("Fetch with AllowIMDSv1: %v", err)
	}
}
