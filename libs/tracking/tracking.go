// Package tracking signs and verifies the tokens of Herald's public tracking links: the open
// pixel, the click redirect, the one-click unsubscribe link and the message reference a mail
// provider echoes back in its webhooks. A token carries everything the gateway needs to
// record an event (the tenant partition, the campaign, the recipient, what the link is for
// and, for a click, the target URL) under an HMAC-SHA256 tag, so the gateway needs no look-up
// and trusts nothing a client can change.
//
// A token is the unpadded base64url encoding of
//
//	version (1 byte, 1) | key id (4) | purpose (1) | company, workspace, domain, campaign,
//	recipient ids (16 bytes each) | target URL (clicks only, the rest) | tag (16)
//
// where tag is HMAC-SHA256(secret, "herald-tracking-v1\x00" || everything before the tag),
// truncated to 128 bits. The key id names the secret that signed the token, so a token signed
// before a rotation stays valid while the previous secret is configured. Anything tampered
// with, truncated, of another purpose or signed with an unknown secret is ErrInvalid.
package tracking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/uuid"
)

// Purpose is what a token is for. A token of one purpose is invalid for every other.
type Purpose byte

// Purposes of a token.
const (
	// PurposeOpen is the open pixel.
	PurposeOpen Purpose = 1
	// PurposeClick is the click redirect; the token carries the target URL.
	PurposeClick Purpose = 2
	// PurposeUnsubscribe is the List-Unsubscribe link (RFC 8058 one-click).
	PurposeUnsubscribe Purpose = 3
	// PurposeMessage names a message towards a mail provider, which echoes it back in its
	// delivery, bounce and complaint webhooks.
	PurposeMessage Purpose = 4
)

// String names the purpose.
func (p Purpose) String() string {
	switch p {
	case PurposeOpen:
		return "open"
	case PurposeClick:
		return "click"
	case PurposeUnsubscribe:
		return "unsubscribe"
	case PurposeMessage:
		return "message"
	default:
		return fmt.Sprintf("purpose(%d)", byte(p))
	}
}

func (p Purpose) valid() bool { return p >= PurposeOpen && p <= PurposeMessage }

// Limits of a token.
const (
	// MaxURLLen is the longest click target accepted, in bytes. Longer links are rare and
	// some mail clients truncate them anyway.
	MaxURLLen = 2048
	// MinSecretLen is the shortest secret accepted, in bytes.
	MinSecretLen = 32
	// tagLen is the length of the truncated HMAC-SHA256 tag: 128 bits.
	tagLen = 16
	// version of the encoding.
	version = 1
	// kidLen is the length of the key id.
	kidLen = 4
	// headerLen is version, key id, purpose and the five ids.
	headerLen = 1 + kidLen + 1 + 5*16
	// MaxTokenLen is the longest token text that can be valid: a click token with the
	// longest URL.
	MaxTokenLen = (headerLen + MaxURLLen + tagLen + 2) / 3 * 4
)

// macContext separates the tags of tracking tokens from any other HMAC under the same secret.
const macContext = "herald-tracking-v1\x00"

// ErrInvalid is every token that does not verify: malformed, truncated, tampered with, of the
// wrong purpose or signed with a secret that is not configured. Callers answer it as not
// found and record nothing.
var ErrInvalid = errors.New("invalid tracking token")

// Message identifies one email: who sent it (the tenant partition), for which campaign, to
// which recipient. Every id is required.
type Message struct {
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
	DomainID    uuid.UUID
	CampaignID  uuid.UUID
	RecipientID uuid.UUID
}

func (m Message) validate() error {
	for _, f := range []struct {
		name string
		id   uuid.UUID
	}{
		{"company id", m.CompanyID}, {"workspace id", m.WorkspaceID}, {"domain id", m.DomainID},
		{"campaign id", m.CampaignID}, {"recipient id", m.RecipientID},
	} {
		if f.id == uuid.Nil {
			return fmt.Errorf("tracking token: the %s is required", f.name)
		}
	}
	return nil
}

// Token is the content of a verified token.
type Token struct {
	Message
	Purpose Purpose
	// URL is the click target, exactly as signed; empty for every other purpose.
	URL string
}

// KeyID derives the 4-byte key id of a secret: a hash prefix, so a rotation needs no extra
// configuration and the id reveals nothing about the secret.
func KeyID(secret string) [kidLen]byte {
	sum := sha256.Sum256([]byte("herald-tracking-kid:" + secret))
	var id [kidLen]byte
	copy(id[:], sum[:kidLen])
	return id
}

// Keys signs tokens with the current secret and verifies them against the current and the
// previous ones.
type Keys struct {
	current [kidLen]byte
	keys    map[[kidLen]byte][]byte
}

// NewKeys returns the keys of current (which signs) and previous (still accepted during a
// rotation; empty ones are ignored). Every secret is at least MinSecretLen bytes and no two
// are the same.
func NewKeys(current string, previous ...string) (*Keys, error) {
	if len(current) < MinSecretLen {
		return nil, fmt.Errorf("tracking secret: must be at least %d bytes long", MinSecretLen)
	}
	k := &Keys{current: KeyID(current), keys: map[[kidLen]byte][]byte{KeyID(current): []byte(current)}}
	for _, p := range previous {
		if p == "" {
			continue
		}
		if len(p) < MinSecretLen {
			return nil, fmt.Errorf("previous tracking secret: must be at least %d bytes long", MinSecretLen)
		}
		id := KeyID(p)
		if _, dup := k.keys[id]; dup {
			return nil, errors.New("previous tracking secret: must differ from the current one and from each other")
		}
		k.keys[id] = []byte(p)
	}
	return k, nil
}

// CheckURL reports whether raw may be a click target: an absolute http or https URL with a
// host, no user information (https://bank.example@evil.example reads as a bank's link), no
// whitespace or control characters, at most MaxURLLen bytes. Only such URLs are ever signed,
// so the redirect can never be turned into an open redirect.
func CheckURL(raw string) error {
	if raw == "" {
		return errors.New("click target: is required")
	}
	if len(raw) > MaxURLLen {
		return fmt.Errorf("click target: must be at most %d bytes long", MaxURLLen)
	}
	for i := range len(raw) {
		if c := raw[i]; c <= ' ' || c == 0x7f {
			return errors.New("click target: must not contain whitespace or control characters")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("click target: must be a valid URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return errors.New("click target: must be an http or https URL")
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return errors.New("click target: must be an absolute URL with a host")
	}
	if u.User != nil {
		return errors.New("click target: must not carry user information (user@host)")
	}
	return nil
}

// Sign returns the token of m for purpose, signed with the current secret. target is the
// click target (see CheckURL) for PurposeClick and must be empty for every other purpose.
func (k *Keys) Sign(m Message, purpose Purpose, target string) (string, error) {
	if !purpose.valid() {
		return "", fmt.Errorf("tracking token: unknown purpose %d", byte(purpose))
	}
	if err := m.validate(); err != nil {
		return "", err
	}
	if purpose == PurposeClick {
		if err := CheckURL(target); err != nil {
			return "", err
		}
	} else if target != "" {
		return "", fmt.Errorf("tracking token: a %s token carries no URL", purpose)
	}
	buf := make([]byte, 0, headerLen+len(target)+tagLen)
	buf = append(buf, version)
	buf = append(buf, k.current[:]...)
	buf = append(buf, byte(purpose))
	for _, id := range []uuid.UUID{m.CompanyID, m.WorkspaceID, m.DomainID, m.CampaignID, m.RecipientID} {
		buf = append(buf, id[:]...)
	}
	buf = append(buf, target...)
	buf = append(buf, tag(k.keys[k.current], buf)...)
	return encoding.EncodeToString(buf), nil
}

// encoding is unpadded base64url that rejects non-canonical input, so a token has exactly one
// text.
var encoding = base64.RawURLEncoding.Strict()

func tag(key, data []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(macContext))
	mac.Write(data)
	return mac.Sum(nil)[:tagLen]
}

// Verify checks token and returns its content when it is a valid token of purpose. Every
// failure is ErrInvalid.
func (k *Keys) Verify(token string, purpose Purpose) (Token, error) {
	if len(token) == 0 || len(token) > MaxTokenLen {
		return Token{}, ErrInvalid
	}
	raw, err := encoding.DecodeString(token)
	if err != nil || len(raw) < headerLen+tagLen || raw[0] != version {
		return Token{}, ErrInvalid
	}
	var kid [kidLen]byte
	copy(kid[:], raw[1:1+kidLen])
	key, ok := k.keys[kid]
	if !ok {
		return Token{}, ErrInvalid
	}
	body, got := raw[:len(raw)-tagLen], raw[len(raw)-tagLen:]
	if !hmac.Equal(got, tag(key, body)) {
		return Token{}, ErrInvalid
	}
	// Authentic from here on; the checks below hold against tokens of an older release.
	t := Token{Purpose: Purpose(body[1+kidLen])}
	if t.Purpose != purpose {
		return Token{}, ErrInvalid
	}
	ids := body[2+kidLen : headerLen]
	for i, dst := range []*uuid.UUID{&t.CompanyID, &t.WorkspaceID, &t.DomainID, &t.CampaignID, &t.RecipientID} {
		copy(dst[:], ids[i*16:(i+1)*16])
	}
	if t.validate() != nil {
		return Token{}, ErrInvalid
	}
	t.URL = string(body[headerLen:])
	if purpose == PurposeClick {
		if CheckURL(t.URL) != nil {
			return Token{}, ErrInvalid
		}
	} else if t.URL != "" {
		return Token{}, ErrInvalid
	}
	return t, nil
}
