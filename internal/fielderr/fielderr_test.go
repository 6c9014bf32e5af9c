package fielderr

import (
	"errors"
	"fmt"
	"testing"
)

func TestRename(t *testing.T) {
	names := map[string]string{"Initial": "RetryDelay", "Max": "MaxRetryDelay"}
	other := errors.New("not a field")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil stays nil", nil, ""},
		{"field and the field its problem names", New("Max", "1s", "must be >= Initial (2s)"), "MaxRetryDelay 1s: must be >= RetryDelay (2s)"},
		{"unmapped field stays", New("Jitter", 1.5, "must be between 0 and 1"), "Jitter 1.5: must be between 0 and 1"},
		{"joined errors each renamed", errors.Join(New("Initial", "-1s", "must not be negative"), other),
			"RetryDelay -1s: must not be negative\nnot a field"},
		{"other errors pass through", other, "not a field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Rename(tc.err, names)
			if tc.err == nil {
				if got != nil {
					t.Fatalf("Rename(nil) = %v", got)
				}
				return
			}
			if got.Error() != tc.want {
				t.Fatalf("Rename = %q, want %q", got, tc.want)
			}
		})
	}
	var fe *Error
	if err := Rename(fmt.Errorf("ctx: %w", New("Max", 1, "x")), names); !errors.As(err, &fe) || fe.Field != "Max" {
		t.Fatalf("a wrapped error is passed through as it is, got %v", err)
	}
}
