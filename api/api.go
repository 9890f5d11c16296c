// Package api owns the machine-readable contract of the HTTP API: the
// OpenAPI 3.1 document openapi.yaml, which every node serves at
// GET /openapi.yaml and which a conformance test (openapi_test.go) checks
// against the real router, route by route, request and response.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the HTTP API, in YAML.
//
//go:embed openapi.yaml
var OpenAPI []byte
