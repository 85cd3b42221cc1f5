package mail

import "github.com/heraldmail/herald/libs/flags"

func gated(p interface {
	Enabled(flags.Flag, flags.Scope) bool
}) bool {
	return p.Enabled(flags.Live, flags.Scope{})
}
