package main

import (
	"fmt"
	"strings"
)

// envAssignment is one KEY=VALUE of an EnvironmentFile, with the line its
// key starts on (1-based) so that messages can point at it.
type envAssignment struct {
	Key   string
	Value string
	Line  int
}

// envFileProblem is a line systemd would ignore or misread.
type envFileProblem struct {
	Line int
	Text string
}

func (p envFileProblem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Text) }

// parseEnvFile reads systemd EnvironmentFile= syntax (systemd.exec(5)):
// newline-separated KEY=VALUE; empty lines, lines without "=" and lines
// starting with # or ; are ignored; leading and trailing whitespace around
// an unquoted value is dropped; a trailing backslash continues a line;
// '...' is literal and may span lines; "..." may span lines and honours
// \" \\ \` \$ and backslash-newline. Later assignments of a key win, as in
// systemd; all are returned so a caller can name every line.
func parseEnvFile(data string) ([]envAssignment, []envFileProblem) {
	const (
		preKey = iota
		inKey
		preValue
		inValue
		valueEscape
		singleQuote
		doubleQuote
		doubleQuoteEscape
		comment
		commentEscape
	)
	var (
		out      []envAssignment
		problems []envFileProblem
		state    = preKey
		line     = 1
		keyLine  int
		key      strings.Builder
		value    strings.Builder
		// trimTo is the value length without trailing unquoted whitespace.
		trimTo     int
		quoteStart int
	)
	isSpace := func(c rune) bool { return c == ' ' || c == '\t' }
	isNewline := func(c rune) bool { return c == '\n' || c == '\r' }
	emit := func() {
		k := strings.TrimRight(key.String(), " \t")
		v := value.String()[:trimTo]
		if validEnvName(k) {
			out = append(out, envAssignment{Key: k, Value: v, Line: keyLine})
		} else {
			problems = append(problems, envFileProblem{keyLine, fmt.Sprintf("%q is not a valid variable name; systemd ignores this assignment", k)})
		}
		key.Reset()
		value.Reset()
		trimTo = 0
	}
	appendValue := func(c rune, quoted bool) {
		value.WriteRune(c)
		if quoted || !isSpace(c) {
			trimTo = value.Len()
		}
	}

	for _, c := range data {
		switch state {
		case preKey:
			switch {
			case c == '#' || c == ';':
				state = comment
			case isSpace(c) || isNewline(c):
			default:
				state, keyLine = inKey, line
				key.WriteRune(c)
			}
		case inKey:
			switch {
			case isNewline(c):
				problems = append(problems, envFileProblem{keyLine, "no \"=\" sign; systemd ignores this line"})
				key.Reset()
				state = preKey
			case c == '=':
				state = preValue
			default:
				key.WriteRune(c)
			}
		case preValue:
			switch {
			case isNewline(c):
				emit()
				state = preKey
			case isSpace(c):
			case c == '\'':
				state, quoteStart = singleQuote, line
			case c == '"':
				state, quoteStart = doubleQuote, line
			case c == '\\':
				state = valueEscape
			default:
				appendValue(c, false)
				state = inValue
			}
		case inValue:
			switch {
			case isNewline(c):
				emit()
				state = preKey
			case c == '\\':
				state = valueEscape
			default:
				appendValue(c, false)
			}
		case valueEscape:
			if !isNewline(c) {
				appendValue(c, true)
			}
			state = inValue
		case singleQuote:
			if c == '\'' {
				state = preValue
			} else {
				appendValue(c, true)
			}
		case doubleQuote:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleQuoteEscape
			default:
				appendValue(c, true)
			}
		case doubleQuoteEscape:
			switch {
			case strings.ContainsRune("\"\\`$", c):
				appendValue(c, true)
			case isNewline(c):
			default:
				appendValue('\\', true)
				appendValue(c, true)
			}
			state = doubleQuote
		case comment:
			switch {
			case c == '\\':
				state = commentEscape
			case isNewline(c):
				state = preKey
			}
		case commentEscape:
			state = comment
		}
		if c == '\n' {
			line++
		}
	}

	switch state {
	case inKey:
		problems = append(problems, envFileProblem{keyLine, "no \"=\" sign; systemd ignores this line"})
	case preValue, inValue, valueEscape:
		emit()
	case singleQuote, doubleQuote, doubleQuoteEscape:
		problems = append(problems, envFileProblem{quoteStart, "quote opened here is never closed"})
		emit()
	}
	return out, problems
}

// validEnvName is systemd's rule for variable names in environment files.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
