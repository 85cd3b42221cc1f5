package rest

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Rate limit headers of an authenticated response.
const (
	HeaderRetryAfter         = "Retry-After"
	HeaderRateLimitRemaining = "X-RateLimit-Remaining"
)

// bearer returns the credential of an "Authorization: Bearer <credential>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(scheme):])
	return tok, tok != ""
}

// withAuthentication lets requests for public routes through as they are (a credential they
// carry is ignored) and answers 401 to any other request without a valid credential.
func withAuthentication(log *zap.Logger, bodyLimit int64, a Authenticator, next http.Handler) http.Handler {
	fail := WriteStatus(log, bodyLimit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Public(r) {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := bearer(r)
		if !ok {
			writeUnauthenticated(w, r)
			return
		}
		ctx, err := a.Authenticate(r.Context(), tok)
		if err != nil {
			if status.Code(err) == codes.Unauthenticated {
				writeUnauthenticated(w, r)
				return
			}
			fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// withRateLimit meters authenticated requests: every metered answer says what is left of the
// budget, and a request over it is answered 429 with Retry-After.
func withRateLimit(l Limiter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := l.Allow(r)
		if !d.Applies {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set(HeaderRateLimitRemaining, strconv.Itoa(max(0, d.Remaining)))
		if !d.Allowed {
			secs := retryAfterSeconds(d.RetryAfter)
			w.Header().Set(HeaderRetryAfter, secs)
			WriteError(w, r, http.StatusTooManyRequests, "resource_exhausted",
				"too many requests for this company; retry in "+secs+" seconds", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}
