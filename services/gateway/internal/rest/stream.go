package rest

import (
	"context"
	"net/http"
	"time"
)

// StreamTimeout bounds a request on a streamed route (Options.StreamRoutes): an upload of a
// large file, a long download. It replaces RequestTimeout and the server's read and write
// deadlines for those routes only.
const StreamTimeout = 2 * time.Hour

// withTimeouts bounds every request by d, except those of the streamed routes, which get
// StreamTimeout instead: their bodies take longer to send than any other request's.
func withTimeouts(d time.Duration, streams bodyLimits, next http.Handler) http.Handler {
	timed := withTimeout(d, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if streams.of(r) <= 0 {
			timed.ServeHTTP(w, r)
			return
		}
		deadline := time.Now().Add(StreamTimeout)
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(deadline)  // every writer on the way unwraps to the server's
		_ = rc.SetWriteDeadline(deadline) // (ErrNotSupported only under a test recorder)
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// withStreamLimits adds the body limits of the streamed routes to the per-route table.
func withStreamLimits(routes, streams map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(routes)+len(streams))
	for k, v := range routes {
		out[k] = v
	}
	for k, v := range streams {
		out[k] = v
	}
	return out
}
