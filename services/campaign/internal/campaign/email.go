package campaign

import (
	"net/mail"
	"strings"
)

// MaxEmailLength is the longest email address accepted, in bytes (RFC 5321's path limit less
// the angle brackets).
const MaxEmailLength = 254

// NormalizeEmail trims and lower-cases raw and checks that it is one bare address (no display
// name, no angle brackets, no list) of at most MaxEmailLength bytes whose domain has a dot.
// Errors are *ValidationError for field.
func NormalizeEmail(field, raw string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(raw))
	if email == "" {
		return "", invalid(field, "is required")
	}
	if len(email) > MaxEmailLength {
		return "", invalid(field, "must be at most 254 bytes long")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil {
		return "", invalid(field, "must be a valid email address such as name@example.com")
	}
	if addr.Name != "" || addr.Address != email {
		return "", invalid(field, "must be a bare email address such as name@example.com, without a display name or angle brackets")
	}
	at := strings.LastIndexByte(email, '@')
	domain := email[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", invalid(field, "must have a domain with a dot, such as example.com")
	}
	return email, nil
}
