package kvsendpoint

import (
	"fmt"
	"time"

	"github.com/kvsrelay/kvsrelay/test/imdsfake"
)

// ValidateIssued is an Options.Validate that accepts only credentials srv
// issued: a known access key id, the session token issued with it, and a
// request time before its expiry.
func ValidateIssued(srv *imdsfake.Server) func(accessKeyID, sessionToken string, at time.Time) error {
	return func(accessKeyID, sessionToken string, at time.Time) error {
		is, ok := srv.Lookup(accessKeyID)
		if !ok {
			return fmt.Errorf("access key %s was never issued by the fake IMDS: %w", MaskKey(accessKeyID), ErrUnrecognizedClient)
		}
		if sessionToken != is.Token {
			return fmt.Errorf("access key %s: the session token is not the one issued with it: %w", MaskKey(accessKeyID), ErrUnrecognizedClient)
		}
		if !at.Before(is.Expiration) {
			return fmt.Errorf("access key %s expired at %s, request at %s: %w", MaskKey(accessKeyID),
				is.Expiration.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), ErrExpiredToken)
		}
		return nil
	}
}

// SecretIssued is an Options.Secret that knows the secrets srv issued, so
// the endpoint verifies signatures made with them.
func SecretIssued(srv *imdsfake.Server) func(accessKeyID string) (string, bool) {
	return func(accessKeyID string) (string, bool) {
		is, ok := srv.Lookup(accessKeyID)
		return is.SecretAccessKey, ok
	}
}
