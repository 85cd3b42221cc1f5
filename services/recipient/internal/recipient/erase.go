package recipient

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// MinHashKeyLength is the shortest key an EmailHasher accepts, in bytes.
const MinHashKeyLength = 32

// EmailHasher turns a normalised address into the keyed hash kept in place of an erased
// recipient: HMAC-SHA256 under a server secret. A plain SHA-256 would not do: addresses are
// guessable, so anyone who could read the suppression table could confirm an address by
// hashing it. With the key kept out of the database, the table reveals nothing on its own.
// The key can rotate: hashes made with the previous key are still recognised.
type EmailHasher struct {
	current  hashKey
	previous []hashKey
}

type hashKey struct {
	id  string
	key []byte
}

// NewEmailHasher returns a hasher that hashes with current and also recognises hashes made
// with any of previous (empty ones are ignored). Keys are at least MinHashKeyLength bytes.
func NewEmailHasher(current string, previous ...string) (*EmailHasher, error) {
	if len(current) < MinHashKeyLength {
		return nil, errors.New("email hash key must be at least 32 bytes")
	}
	h := &EmailHasher{current: newHashKey(current)}
	for _, p := range previous {
		if p == "" {
			continue
		}
		if len(p) < MinHashKeyLength {
			return nil, errors.New("previous email hash key must be at least 32 bytes")
		}
		h.previous = append(h.previous, newHashKey(p))
	}
	return h, nil
}

func newHashKey(secret string) hashKey {
	id := sha256.Sum256([]byte("herald-erasure-kid:" + secret))
	return hashKey{id: hex.EncodeToString(id[:8]), key: []byte(secret)}
}

// Hash returns the hash of email under the current key and that key's id.
func (h *EmailHasher) Hash(email string) (keyID string, sum []byte) {
	return h.current.id, h.current.sum(email)
}

// Candidates returns the hashes of email under every key, current first: a suppression made
// with any of them matches one.
func (h *EmailHasher) Candidates(email string) [][]byte {
	out := [][]byte{h.current.sum(email)}
	for _, k := range h.previous {
		out = append(out, k.sum(email))
	}
	return out
}

func (k hashKey) sum(email string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(email))
	return m.Sum(nil)
}
