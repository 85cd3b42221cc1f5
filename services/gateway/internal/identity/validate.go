package identity

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/heraldmail/herald/libs/email"
)

// Length limits of names, in characters.
const (
	MaxNameLength   = 200
	maxDomainLength = 253
	maxLabelLength  = 63
)

// DefaultWorkspaceName names the first workspace when sign-up gives none.
const DefaultWorkspaceName = "Default"

// normalizeEmail trims and lower-cases an address and checks it with the shared address rule
// (libs/email).
func normalizeEmail(field, s string) (string, error) {
	addr, err := email.Normalize(s)
	var ierr *email.InvalidError
	if errors.As(err, &ierr) {
		return "", invalid(field, ierr.Reason)
	}
	return addr, err
}

// checkName trims a display name and checks its length and characters; required names may
// not be empty.
func checkName(field, s string, required bool) (string, error) {
	n := strings.TrimSpace(s)
	switch {
	case !utf8.ValidString(n):
		return "", invalid(field, "must be valid UTF-8")
	case n == "" && required:
		return "", invalid(field, "is required")
	case utf8.RuneCountInString(n) > MaxNameLength:
		return "", invalid(field, fmt.Sprintf("must be at most %d characters", MaxNameLength))
	case strings.IndexFunc(n, unicode.IsControl) >= 0:
		return "", invalid(field, "must not contain control characters")
	}
	return n, nil
}

// normalizeDomain lower-cases a DNS name, drops a trailing dot and checks it: at least two
// labels of letters, digits and inner hyphens, 1 to 63 characters each, 253 in all.
func normalizeDomain(field, s string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	const hint = "must be a domain name such as mail.example.com"
	if d == "" {
		return "", invalid(field, "is required")
	}
	if len(d) > maxDomainLength {
		return "", invalid(field, fmt.Sprintf("must be at most %d characters", maxDomainLength))
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", invalid(field, hint)
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabelLength || l[0] == '-' || l[len(l)-1] == '-' {
			return "", invalid(field, hint)
		}
		for _, c := range []byte(l) {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return "", invalid(field, hint)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", invalid(field, hint)
	}
	return d, nil
}
