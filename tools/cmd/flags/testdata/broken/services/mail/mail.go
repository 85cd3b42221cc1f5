package mail

import ff "github.com/heraldmail/herald/libs/flags"

func gated(p interface{ Enabled(ff.Flag, ff.Scope) bool }) bool {
	return p.Enabled(ff.Live, ff.Scope{}) || p.Enabled(ff.Missing, ff.Scope{}) || p.Enabled(ff.NewFlag("adhoc"), ff.Scope{})
}

const rawKey = "ff:ghost_flag:company:0c9b0f5e-4f5b-4d8e-9a43-6b1f3a4f9a10"
