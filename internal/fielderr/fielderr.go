// Package fielderr is the one error type kvsrelay's plain Go packages
// return for a bad setting: the setting is named by its Go field
// (supervisor.Config.MaxRetryDelay, credrefresh.Options.RefreshBefore),
// never by a GObject property or a command-line flag. Elements and commands
// find it with errors.As and say it in their users' words (the property
// name), the way aws-sdk-go-v2's ParamError names an input field.
package fielderr

import (
	"errors"
	"fmt"
	"strings"
)

// Error reports one invalid field.
type Error struct {
	Field   string // the Go field, e.g. "MaxRetryDelay"
	Value   string // the offending value as Go prints it, e.g. "1s"
	Problem string // what is wrong, e.g. "must be >= RetryDelay (2s)"
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Field, e.Value, e.Problem)
}

// New returns an *Error for field holding value.
func New(field string, value any, problem string) *Error {
	return &Error{Field: field, Value: fmt.Sprint(value), Problem: problem}
}

// Rename returns err with every *Error in it (err itself, or joined with
// errors.Join) naming its field, and any field its Problem mentions, by
// names[field] instead; names it does not map stay. Other errors pass
// through as they are. A package validating a struct it builds from its own
// (supervisor.Config into backoff.Policy) uses it to speak of its own
// fields; elements use it to speak of their properties.
func Rename(err error, names map[string]string) error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range joined.Unwrap() {
			errs = append(errs, Rename(e, names))
		}
		return errors.Join(errs...)
	}
	fe, ok := err.(*Error)
	if !ok {
		return err
	}
	out := *fe
	if n, ok := names[fe.Field]; ok {
		out.Field = n
	}
	words := strings.Split(fe.Problem, " ")
	for i, w := range words {
		if n, ok := names[w]; ok {
			words[i] = n
		}
	}
	out.Problem = strings.Join(words, " ")
	return &out
}
