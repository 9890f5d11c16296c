package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticate checks "Authorization: Bearer <key>" against the configured key.
//
// Both keys are hashed with SHA-256 and the digests compared in constant time,
// so neither the comparison's duration nor a length check reveals anything
// about the configured key. The scheme name is case-insensitive (RFC 9110).
func (a *api) authenticate(r *http.Request) error {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return errUnauthorized(`The request has no Authorization header; send "Authorization: Bearer <API key>".`)
	case len(values) > 1:
		return errUnauthorized(`The request has more than one Authorization header; send exactly one "Authorization: Bearer <API key>".`)
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return errUnauthorized(`The Authorization header does not use the Bearer scheme; send "Authorization: Bearer <API key>".`)
	}
	token = strings.Trim(token, " \t")
	if token == "" {
		return errUnauthorized(`The Authorization header has an empty bearer token; send "Authorization: Bearer <API key>".`)
	}
	presented := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(presented[:], a.keyDigest[:]) != 1 {
		return errUnauthorized("The API key is not valid; check the key configured for this cluster.")
	}
	return nil
}
