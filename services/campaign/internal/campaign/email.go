package campaign

import (
	"errors"

	"github.com/heraldmail/herald/libs/email"
)

// MaxEmailLength is the longest email address accepted, in bytes.
const MaxEmailLength = email.MaxLength

// NormalizeEmail trims and lower-cases raw and checks it with the shared address rule
// (libs/email). Errors are *ValidationError for field.
func NormalizeEmail(field, raw string) (string, error) {
	addr, err := email.Normalize(raw)
	var ierr *email.InvalidError
	if errors.As(err, &ierr) {
		return "", invalid(field, ierr.Reason)
	}
	return addr, err
}
