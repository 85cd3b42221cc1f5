// Package email normalizes and validates the email addresses every service accepts, so a
// recipient, a campaign's sender and a user account follow one rule.
package email

import (
	"net/mail"
	"strings"
)

// MaxLength is the longest address accepted, in bytes (RFC 5321's path limit less the angle
// brackets).
const MaxLength = 254

// InvalidError says what is wrong with an address, in words a client can act on.
type InvalidError struct {
	Reason string
}

func (e *InvalidError) Error() string { return e.Reason }

// Normalize trims and lower-cases raw and checks that it is one bare address (no display name,
// no angle brackets, no list) of at most MaxLength bytes whose domain has a dot. Errors are
// *InvalidError.
func Normalize(raw string) (string, error) {
	addr := strings.ToLower(strings.TrimSpace(raw))
	if addr == "" {
		return "", &InvalidError{Reason: "is required"}
	}
	if len(addr) > MaxLength {
		return "", &InvalidError{Reason: "must be at most 254 bytes long"}
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil {
		return "", &InvalidError{Reason: "must be a valid email address such as name@example.com"}
	}
	if parsed.Name != "" || parsed.Address != addr {
		return "", &InvalidError{Reason: "must be a bare email address such as name@example.com, without a display name or angle brackets"}
	}
	domain := addr[strings.LastIndexByte(addr, '@')+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", &InvalidError{Reason: "must have a domain with a dot, such as example.com"}
	}
	return addr, nil
}
