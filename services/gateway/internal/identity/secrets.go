package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// secretBytes is the entropy of refresh tokens, invitation tokens and API key secrets.
const secretBytes = 32

// APIKeyScheme starts every API key: hk_<8 hex prefix>_<32 bytes base64url secret>.
const APIKeyScheme = "hk_"

// apiKeyPrefixHex is the length of the random, visible part of the prefix.
const apiKeyPrefixHex = 8

// apiKeySecretLen is the length of the unpadded base64url encoding of secretBytes bytes.
const apiKeySecretLen = (secretBytes*8 + 5) / 6

// randomToken returns secretBytes random bytes in unpadded base64url.
func randomToken() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails; it aborts the process instead.
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashToken returns the hex SHA-256 of a token: what the database keeps of refresh tokens,
// invitation tokens and API keys. Those secrets carry 256 bits of entropy, so a fast hash is
// enough.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// newAPIKey returns a fresh API key and its visible prefix ("hk_" and 8 hex digits).
func newAPIKey() (key, prefix string) {
	var p [apiKeyPrefixHex / 2]byte
	_, _ = rand.Read(p[:])
	prefix = APIKeyScheme + hex.EncodeToString(p[:])
	return prefix + "_" + randomToken(), prefix
}

// IsAPIKey reports whether a bearer credential looks like an API key rather than a JWT.
func IsAPIKey(bearer string) bool { return strings.HasPrefix(bearer, APIKeyScheme) }

// parseAPIKey returns the prefix of a well-formed API key.
func parseAPIKey(key string) (prefix string, ok bool) {
	plen := len(APIKeyScheme) + apiKeyPrefixHex
	if len(key) != plen+1+apiKeySecretLen || !strings.HasPrefix(key, APIKeyScheme) || key[plen] != '_' {
		return "", false
	}
	if _, err := hex.DecodeString(key[len(APIKeyScheme):plen]); err != nil {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(key[plen+1:]); err != nil {
		return "", false
	}
	return key[:plen], true
}

// equalHashes compares two hex hashes in constant time.
func equalHashes(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
