package tracking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a signed webhook request.
const (
	// HeaderWebhookTimestamp is the time the provider signed the request, in Unix seconds.
	HeaderWebhookTimestamp = "Herald-Webhook-Timestamp"
	// HeaderWebhookSignature is "v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>"; during
	// a rotation the provider may send several, separated by commas, and one valid is enough.
	HeaderWebhookSignature = "Herald-Webhook-Signature"
)

// Errors of webhook verification, both answered 401.
var (
	// ErrWebhookSignature is a missing or wrong signature.
	ErrWebhookSignature = errors.New("invalid webhook signature")
	// ErrWebhookStale is a timestamp missing, malformed or outside the replay window.
	ErrWebhookStale = errors.New("webhook timestamp outside the accepted window")
)

// webhookScheme prefixes a signature of the current scheme.
const webhookScheme = "v1="

// maxWebhookSignatures bounds the signatures looked at in one header.
const maxWebhookSignatures = 4

// SignWebhook returns the HeaderWebhookTimestamp and HeaderWebhookSignature values of body
// sent at ts under secret: what a provider (or its adapter) computes.
func SignWebhook(secret string, ts time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	return timestamp, webhookScheme + hex.EncodeToString(webhookMAC([]byte(secret), timestamp, body))
}

func webhookMAC(secret []byte, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// WebhookVerifier checks the signature and freshness of webhook requests.
type WebhookVerifier struct {
	secrets   [][]byte
	tolerance time.Duration
}

// NewWebhookVerifier accepts requests signed with current or, during a rotation, one of
// previous (empty ones are ignored), whose timestamp is within tolerance of the verifier's
// clock either way. Every secret is at least MinSecretLen bytes.
func NewWebhookVerifier(tolerance time.Duration, current string, previous ...string) (*WebhookVerifier, error) {
	if tolerance <= 0 {
		return nil, errors.New("webhook tolerance: must be positive")
	}
	if len(current) < MinSecretLen {
		return nil, fmt.Errorf("webhook secret: must be at least %d bytes long", MinSecretLen)
	}
	v := &WebhookVerifier{secrets: [][]byte{[]byte(current)}, tolerance: tolerance}
	for _, p := range previous {
		if p == "" {
			continue
		}
		if len(p) < MinSecretLen {
			return nil, fmt.Errorf("previous webhook secret: must be at least %d bytes long", MinSecretLen)
		}
		v.secrets = append(v.secrets, []byte(p))
	}
	return v, nil
}

// Verify checks the headers of a request whose body is body, received at now. It fails with
// ErrWebhookStale or ErrWebhookSignature.
func (v *WebhookVerifier) Verify(timestamp, signature string, body []byte, now time.Time) error {
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || timestamp != strconv.FormatInt(secs, 10) {
		return ErrWebhookStale
	}
	ts := time.Unix(secs, 0)
	if ts.Before(now.Add(-v.tolerance)) || ts.After(now.Add(v.tolerance)) {
		return ErrWebhookStale
	}
	sigs := strings.SplitN(signature, ",", maxWebhookSignatures+1)
	if len(sigs) > maxWebhookSignatures {
		sigs = sigs[:maxWebhookSignatures]
	}
	for _, s := range sigs {
		h, ok := strings.CutPrefix(strings.TrimSpace(s), webhookScheme)
		if !ok {
			continue
		}
		got, err := hex.DecodeString(h)
		if err != nil || len(got) != sha256.Size {
			continue
		}
		for _, secret := range v.secrets {
			if hmac.Equal(got, webhookMAC(secret, timestamp, body)) {
				return nil
			}
		}
	}
	return ErrWebhookSignature
}
