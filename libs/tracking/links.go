package tracking

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/heraldmail/herald/libs/email"
)

// Paths of the gateway's public tracking routes; the token follows the prefix.
const (
	PathOpen        = "/track/open/"
	PathClick       = "/track/click/"
	PathUnsubscribe = "/track/unsubscribe/"
	// PathWebhook receives the signed event batches of a mail provider (see webhook.go).
	PathWebhook = "/webhooks/email"
)

// OneClickBody is the body of an RFC 8058 one-click unsubscribe request, and the value of the
// List-Unsubscribe-Post header that announces it.
const OneClickBody = "List-Unsubscribe=One-Click"

// Links builds the tracking URLs the sending side embeds in an email.
type Links struct {
	base string
	keys *Keys
}

// NewLinks returns the builder of links to the gateway at baseURL (scheme, host and an
// optional path prefix, e.g. https://t.example.com), signed with keys.
func NewLinks(baseURL string, keys *Keys) (*Links, error) {
	if keys == nil {
		return nil, errors.New("tracking links: keys are required")
	}
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("tracking base URL: must be an http or https URL with a host and no query, such as https://t.example.com")
	}
	return &Links{base: strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), keys: keys}, nil
}

func (l *Links) link(path string, m Message, purpose Purpose, target string) (string, error) {
	tok, err := l.keys.Sign(m, purpose, target)
	if err != nil {
		return "", err
	}
	return l.base + path + tok, nil
}

// Open returns the URL of the open pixel of m.
func (l *Links) Open(m Message) (string, error) { return l.link(PathOpen, m, PurposeOpen, "") }

// Click returns the URL that records a click of m and redirects to target, an absolute http
// or https URL (see CheckURL).
func (l *Links) Click(m Message, target string) (string, error) {
	return l.link(PathClick, m, PurposeClick, target)
}

// Unsubscribe returns the List-Unsubscribe URL of m: a POST with OneClickBody unsubscribes,
// a GET shows a page that asks first.
func (l *Links) Unsubscribe(m Message) (string, error) {
	return l.link(PathUnsubscribe, m, PurposeUnsubscribe, "")
}

// MessageRef returns the reference of m to hand to the mail provider as message metadata,
// which it echoes back in its webhooks (the "message" field of a webhook event).
func (l *Links) MessageRef(m Message) (string, error) { return l.keys.Sign(m, PurposeMessage, "") }

// Headers are the unsubscribe headers of one email.
type Headers struct {
	// ListUnsubscribe is the value of the List-Unsubscribe header (RFC 2369): the
	// unsubscribe URL and, when given, a mailto address, each in angle brackets.
	ListUnsubscribe string
	// ListUnsubscribePost is the value of List-Unsubscribe-Post (RFC 8058), OneClickBody;
	// empty when the links are not https, since RFC 8058 one-click needs an https URI.
	ListUnsubscribePost string
}

// Headers returns the unsubscribe headers of m. mailto is an optional address that also
// unsubscribes (empty for none). The email must be DKIM-signed over both headers for mail
// providers to offer one-click unsubscribe (RFC 8058 section 4).
func (l *Links) Headers(m Message, mailto string) (Headers, error) {
	u, err := l.Unsubscribe(m)
	if err != nil {
		return Headers{}, err
	}
	h := Headers{ListUnsubscribe: "<" + u + ">"}
	if mailto != "" {
		addr, err := email.Normalize(mailto)
		if err != nil {
			return Headers{}, fmt.Errorf("unsubscribe mailto: %w", err)
		}
		h.ListUnsubscribe += ", <mailto:" + addr + "?subject=unsubscribe>"
	}
	if strings.HasPrefix(l.base, "https://") {
		h.ListUnsubscribePost = OneClickBody
	}
	return h, nil
}

// namespace of the event ids derived from tokens (UUIDv5).
var namespace = uuid.MustParse("6f1c3c2e-2b1a-4b4e-9a43-5d0f3f7d8e21")

// Widths of the time buckets of event ids.
const (
	// HitBucket is the bucket of opens and clicks.
	HitBucket = time.Second
	// UnsubscribeBucket is the bucket of unsubscribes.
	UnsubscribeBucket = time.Hour
)

// Event returns the id and the time of the event the gateway records for token t used at
// time at. Both are fixed by the token and a time bucket, so a retry carries the same id and
// the same time and events-ingest stores it once (its idempotency key may include the time).
// The time is the start of the bucket.
//
// Opens and clicks fall in one-second buckets (HitBucket): a pixel or link loaded again within
// the same second (a retry, a double click, a prefetch racing the real load) is one event,
// loads in different seconds are distinct events, so total opens count every distinct load.
// A click's id covers its URL, so two links of one email clicked in the same second are two
// clicks. Unsubscribes fall in one-hour buckets (UnsubscribeBucket): a mail client retrying
// its one-click POST, or a person pressing the button twice, is one event.
func Event(t Token, at time.Time) (uuid.UUID, time.Time) {
	bucket := HitBucket
	if t.Purpose == PurposeUnsubscribe {
		bucket = UnsubscribeBucket
	}
	start := at.UTC().Truncate(bucket)
	name := make([]byte, 0, headerLen+len(t.URL)+8)
	name = append(name, byte(t.Purpose))
	for _, id := range []uuid.UUID{t.CompanyID, t.WorkspaceID, t.DomainID, t.CampaignID, t.RecipientID} {
		name = append(name, id[:]...)
	}
	name = binary.BigEndian.AppendUint64(name, uint64(start.Unix())) //nolint:gosec // the bits of the bucket are what matter, not the sign
	name = append(name, t.URL...)
	return uuid.NewSHA1(namespace, name), start
}

// ProviderEventID derives the id of an event a mail provider reported for the message of t:
// the same provider event delivered twice (providers retry webhooks) is one event.
func ProviderEventID(t Token, eventType, providerEventID string) uuid.UUID {
	name := make([]byte, 0, headerLen+len(eventType)+len(providerEventID)+2)
	name = append(name, byte(PurposeMessage))
	for _, id := range []uuid.UUID{t.CompanyID, t.WorkspaceID, t.DomainID, t.CampaignID, t.RecipientID} {
		name = append(name, id[:]...)
	}
	name = append(name, eventType...)
	name = append(name, 0)
	name = append(name, providerEventID...)
	return uuid.NewSHA1(namespace, name)
}
