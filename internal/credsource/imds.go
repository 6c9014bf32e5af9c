package credsource

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
)

// credentialsPath is the IMDS metadata path listing the instance's roles;
// the role's credentials live one level below.
const credentialsPath = "iam/security-credentials/"

// maxBody bounds what is read from IMDS (a real answer is ~1.5 KiB).
const maxBody = 64 << 10

// imdsCredentials is the JSON document IMDS serves for a role.
type imdsCredentials struct {
	Code            string
	Message         string
	Type            string
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	Token           string
	Expiration      string
}

func (s *Source) fetchIMDS(ctx context.Context) (credfile.Credentials, error) {
	ctx, tr := withTokenTrace(ctx)
	role := s.opts.Role
	if role == "" {
		var err error
		if role, err = s.firstRole(ctx, tr); err != nil {
			return credfile.Credentials{}, err
		}
	}
	op := fmt.Sprintf("IMDS credentials for role %q", role)
	body, err := s.get(ctx, credentialsPath+role)
	if err != nil {
		if statusOf(err) == 404 {
			return credfile.Credentials{}, &Error{Op: op, Err: fmt.Errorf("%w: IMDS has no role %q (404)", ErrNoRole, role)}
		}
		return credfile.Credentials{}, classify(ctx, op, err, tr)
	}
	var doc imdsCredentials
	if err := json.Unmarshal(body, &doc); err != nil {
		// Describe the problem without echoing the body, which holds
		// secrets when it is only slightly broken.
		what := "not valid JSON"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			what = fmt.Sprintf("not valid JSON (syntax error at byte %d of %d)", se.Offset, len(body))
		} else if len(body) > 0 && body[0] != '{' {
			what = "not a JSON object"
		}
		return credfile.Credentials{}, &Error{Op: op, Transient: true, Err: fmt.Errorf("%w: answer is %s", ErrMalformed, what)}
	}
	if !strings.EqualFold(doc.Code, "Success") {
		return credfile.Credentials{}, &Error{Op: op, Err: fmt.Errorf("IMDS answered Code %q: %s", doc.Code, oneLine(doc.Message))}
	}
	if doc.AccessKeyID == "" || doc.SecretAccessKey == "" {
		return credfile.Credentials{}, &Error{Op: op, Transient: true, Err: fmt.Errorf("%w: answer lacks AccessKeyId or SecretAccessKey", ErrMalformed)}
	}
	if doc.Expiration == "" {
		return credfile.Credentials{}, &Error{Op: op, Transient: true, Err: fmt.Errorf("%w: answer has no Expiration", ErrMalformed)}
	}
	exp, err := time.Parse(time.RFC3339, doc.Expiration)
	if err != nil {
		return credfile.Credentials{}, &Error{Op: op, Transient: true, Err: fmt.Errorf("%w: Expiration %q is not RFC 3339", ErrMalformed, oneLine(doc.Expiration))}
	}
	return credfile.Credentials{
		AccessKeyID:     doc.AccessKeyID,
		SecretAccessKey: doc.SecretAccessKey,
		SessionToken:    doc.Token,
		Expires:         exp,
	}, nil
}

// firstRole returns the first role IMDS lists, like the SDK's ec2rolecreds
// provider. (ec2rolecreds itself is not used for IMDS because it caps the
// expiration at now+1h and hides the Code field.)
func (s *Source) firstRole(ctx context.Context, tr *tokenTrace) (string, error) {
	const op = "IMDS role list"
	body, err := s.get(ctx, credentialsPath)
	if err != nil {
		if statusOf(err) == 404 {
			return "", &Error{Op: op, Err: fmt.Errorf("%w: no IAM role is attached to this instance (404)", ErrNoRole)}
		}
		return "", classify(ctx, op, err, tr)
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if r := strings.TrimSpace(sc.Text()); r != "" {
			return r, nil
		}
	}
	return "", &Error{Op: op, Err: fmt.Errorf("%w: IMDS lists no IAM role for this instance", ErrNoRole)}
}

// get reads one metadata path through the SDK's IMDS client (which does the
// IMDSv2 token exchange and the bounded retries).
func (s *Source) get(ctx context.Context, path string) ([]byte, error) {
	out, err := s.imds.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return nil, err
	}
	defer out.Content.Close()
	body, err := io.ReadAll(io.LimitReader(out.Content, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, &Error{Op: "IMDS " + path, Transient: true, Err: fmt.Errorf("%w: answer larger than %d bytes", ErrMalformed, maxBody)}
	}
	return body, nil
}

// oneLine shortens a server-provided string for an error message.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
