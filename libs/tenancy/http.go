package tenancy

import (
	"net/http"
	"strings"
)

// Middleware verifies the bearer token of every request that public does not exempt and puts
// the principal in the request context; unauthenticated requests go to deny.
func Middleware(v *Verifier, public func(*http.Request) bool, deny func(http.ResponseWriter, *http.Request), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public != nil && public(r) {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(tok) == "" {
			deny(w, r)
			return
		}
		p, err := v.Verify(strings.TrimSpace(tok))
		if err != nil {
			deny(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}
