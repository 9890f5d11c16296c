package httpapi

import (
	"net/http"
	"strings"
)

// routeScopes is the scope each authenticated route and method needs, keyed
// "METHOD template". A route missing here needs admin (fail closed), and
// TestEveryRouteHasAScope fails until it is classified.
var routeScopes = map[string]Scope{
	"GET /cluster/status":           ScopeRead,
	"GET /metrics":                  ScopeRead,
	"GET /kv/items/{key}":           ScopeRead,
	"GET /kv/items":                 ScopeRead,
	"GET /kv/watch":                 ScopeRead,
	"GET /kv/items/":                ScopeRead,
	"PUT /kv/items/":                ScopeWrite,
	"DELETE /kv/items/":             ScopeWrite,
	"PUT /kv/items/{key}":           ScopeWrite,
	"PATCH /kv/items/{key}":         ScopeWrite,
	"DELETE /kv/items/{key}":        ScopeWrite,
	"POST /kv/items/{key}/incr":     ScopeWrite,
	"DELETE /kv/items":              ScopeWrite,
	"POST /kv/txn":                  ScopeWrite,
	"GET /debug/state":              ScopeAdmin,
	"GET /cluster/nodes":            ScopeRead,
	"POST /cluster/nodes":           ScopeAdmin,
	"DELETE /cluster/nodes/{id}":    ScopeAdmin,
	"POST /cluster/leader/transfer": ScopeAdmin,
	"GET /cluster/overview":         ScopeRead,
	"GET /auth/whoami":              ScopeRead,
	"GET /admin/snapshot":           ScopeAdmin,
	"POST /admin/restore":           ScopeAdmin,
}

func scopeFor(method, template string) Scope {
	if s, ok := routeScopes[method+" "+template]; ok {
		return s
	}
	return ScopeAdmin
}

// anonymous is the identity of every request when authentication is off.
var anonymous = APIKey{Name: "anonymous", Scope: ScopeAdmin}

// authenticate checks "Authorization: Bearer <key>" against the configured
// keys and returns the matching key.
//
// The presented key is hashed with SHA-256 and the digest compared in
// constant time with every configured digest, so neither the comparison's
// duration nor a length check reveals anything about a configured key. The
// scheme name is case-insensitive (RFC 9110).
func (a *api) authenticate(r *http.Request) (APIKey, error) {
	if a.cfg.InsecureNoAuth {
		return anonymous, nil
	}
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return APIKey{}, errUnauthorized(`The request has no Authorization header; send "Authorization: Bearer <API key>".`)
	case len(values) > 1:
		return APIKey{}, errUnauthorized(`The request has more than one Authorization header; send exactly one "Authorization: Bearer <API key>".`)
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return APIKey{}, errUnauthorized(`The Authorization header does not use the Bearer scheme; send "Authorization: Bearer <API key>".`)
	}
	token = strings.Trim(token, " \t")
	if token == "" {
		return APIKey{}, errUnauthorized(`The Authorization header has an empty bearer token; send "Authorization: Bearer <API key>".`)
	}
	key, ok := a.keys.lookup(token)
	if !ok {
		return APIKey{}, errUnauthorized("The API key is not valid; check the key configured for this cluster.")
	}
	return key, nil
}

// authorize checks that key's scope covers method on the route template.
func authorize(key APIKey, method, template string) error {
	need := scopeFor(method, template)
	if key.Scope >= need {
		return nil
	}
	return &apiError{
		status: http.StatusForbidden, code: "forbidden",
		message: "The API key \"" + key.Name + "\" has the " + key.Scope.String() + " scope; " + method + " on this route needs " + need.String() + ". Use a key with that scope.",
	}
}
