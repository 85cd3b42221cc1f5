package app

import (
	"fmt"
	"net/http"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/libs/tracking"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/gateway/internal/trackingapi"
)

// TrackingConfig configures the public tracking routes (open pixel, click redirect,
// unsubscribe link) and the mail provider's webhook. Each is off while its secret is unset.
type TrackingConfig struct {
	// Secret signs and verifies tracking tokens; the sending side signs the links it embeds
	// with the same secret. Unset turns the tracking routes (and the webhook) off.
	Secret string `env:"TRACKING_SECRET" secret:"true"`
	// SecretPrevious is the secret tokens were signed with before the last rotation: still
	// accepted, never used to sign. Links live in mailboxes for months, so keep it as long
	// as old emails should keep working.
	SecretPrevious string `env:"TRACKING_SECRET_PREVIOUS" secret:"true"`
	// WebhookSecret authenticates the mail provider's webhook requests (HMAC-SHA256 over
	// timestamp and body). Unset turns the webhook route off.
	WebhookSecret string `env:"TRACKING_WEBHOOK_SECRET" secret:"true"`
	// WebhookSecretPrevious is still accepted during a rotation of WebhookSecret.
	WebhookSecretPrevious string `env:"TRACKING_WEBHOOK_SECRET_PREVIOUS" secret:"true"`
	// WebhookTolerance is how far a webhook's timestamp may be from the gateway's clock:
	// the replay window.
	WebhookTolerance time.Duration `env:"TRACKING_WEBHOOK_TOLERANCE" default:"5m"`
}

// Bounds of TRACKING_WEBHOOK_TOLERANCE.
const (
	minWebhookTolerance = 30 * time.Second
	maxWebhookTolerance = time.Hour
)

// Validate checks the secrets' lengths and pairing without echoing them.
func (c *TrackingConfig) Validate() error {
	for _, s := range []struct{ name, value string }{
		{"TRACKING_SECRET", c.Secret}, {"TRACKING_SECRET_PREVIOUS", c.SecretPrevious},
		{"TRACKING_WEBHOOK_SECRET", c.WebhookSecret}, {"TRACKING_WEBHOOK_SECRET_PREVIOUS", c.WebhookSecretPrevious},
	} {
		if s.value != "" && len(s.value) < tracking.MinSecretLen {
			return &config.Error{Var: s.name, Reason: fmt.Sprintf("must be at least %d bytes long (or unset)", tracking.MinSecretLen)}
		}
	}
	switch {
	case c.SecretPrevious != "" && c.Secret == "":
		return &config.Error{Var: "TRACKING_SECRET_PREVIOUS", Reason: "needs TRACKING_SECRET"}
	case c.SecretPrevious != "" && c.SecretPrevious == c.Secret:
		return &config.Error{Var: "TRACKING_SECRET_PREVIOUS", Reason: "must differ from TRACKING_SECRET"}
	case c.WebhookSecret != "" && c.Secret == "":
		return &config.Error{Var: "TRACKING_WEBHOOK_SECRET", Reason: "needs TRACKING_SECRET (webhook events name their message with a tracking token)"}
	case c.WebhookSecret != "" && (c.WebhookSecret == c.Secret || c.WebhookSecret == c.SecretPrevious):
		return &config.Error{Var: "TRACKING_WEBHOOK_SECRET", Reason: "must differ from the tracking secrets (the provider holds it)"}
	case c.WebhookSecretPrevious != "" && c.WebhookSecret == "":
		return &config.Error{Var: "TRACKING_WEBHOOK_SECRET_PREVIOUS", Reason: "needs TRACKING_WEBHOOK_SECRET"}
	case c.WebhookSecretPrevious != "" && c.WebhookSecretPrevious == c.WebhookSecret:
		return &config.Error{Var: "TRACKING_WEBHOOK_SECRET_PREVIOUS", Reason: "must differ from TRACKING_WEBHOOK_SECRET"}
	case c.WebhookTolerance < minWebhookTolerance || c.WebhookTolerance > maxWebhookTolerance:
		return &config.Error{Var: "TRACKING_WEBHOOK_TOLERANCE", Reason: "must be between 30s and 1h"}
	}
	return nil
}

// trackingRoutes returns the mux of the public tracking routes that are on, nil when none is.
func trackingRoutes(cfg TrackingConfig, events eventsv1.EventsIngestServiceClient, signer *tenancy.Signer,
	log *zap.Logger, reg prometheus.Registerer) (*http.ServeMux, error) {
	if cfg.Secret == "" {
		log.Info("tracking routes off: TRACKING_SECRET is not set")
		return nil, nil
	}
	keys, err := tracking.NewKeys(cfg.Secret, cfg.SecretPrevious)
	if err != nil {
		return nil, fmt.Errorf("TRACKING_SECRET: %w", err)
	}
	var webhook *tracking.WebhookVerifier
	if cfg.WebhookSecret != "" {
		if webhook, err = tracking.NewWebhookVerifier(cfg.WebhookTolerance, cfg.WebhookSecret, cfg.WebhookSecretPrevious); err != nil {
			return nil, fmt.Errorf("TRACKING_WEBHOOK_SECRET: %w", err)
		}
	} else {
		log.Info("mail provider webhook off: TRACKING_WEBHOOK_SECRET is not set")
	}
	h, err := trackingapi.New(trackingapi.Options{
		Keys:     keys,
		Webhook:  webhook,
		Events:   events,
		Signer:   signer,
		Log:      log,
		Registry: reg,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return mux, nil
}
