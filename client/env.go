package client

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The environment variables FromEnv reads; kvctl reads the same ones (its
// flags override them).
const (
	EnvEndpoints             = "KV_ENDPOINTS"                // comma-separated node URLs
	EnvAPIKey                = "KV_API_KEY"                  // the API key
	EnvAPIKeyFile            = "KV_API_KEY_FILE"             // a file whose first line is the API key
	EnvCACert                = "KV_CACERT"                   // TLSConfig.CAFile
	EnvCert                  = "KV_CERT"                     // TLSConfig.CertFile
	EnvKey                   = "KV_KEY"                      // TLSConfig.KeyFile
	EnvTLSServerName         = "KV_TLS_SERVER_NAME"          // TLSConfig.ServerName
	EnvInsecureSkipTLSVerify = "KV_INSECURE_SKIP_TLS_VERIFY" // TLSConfig.InsecureSkipVerify: true or 1
)

// FromEnv returns the Config described by the environment: KV_ENDPOINTS
// (required), KV_API_KEY or KV_API_KEY_FILE, and the TLS settings KV_CACERT,
// KV_CERT, KV_KEY, KV_TLS_SERVER_NAME and KV_INSECURE_SKIP_TLS_VERIFY (any
// of them turns TLS on: endpoints without a scheme then get https://). The
// caller may adjust the result before passing it to New.
func FromEnv() (Config, error) { return ConfigFromLookup(os.Getenv) }

// ConfigFromLookup is FromEnv reading variables through getenv.
func ConfigFromLookup(getenv func(string) string) (Config, error) {
	var c Config
	for _, e := range strings.Split(getenv(EnvEndpoints), ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.Endpoints = append(c.Endpoints, e)
		}
	}
	if len(c.Endpoints) == 0 {
		return c, fmt.Errorf("client: %s is not set; give the node URLs, comma-separated, e.g. https://10.0.0.1:8080,https://10.0.0.2:8080", EnvEndpoints)
	}
	key, err := ReadAPIKey(getenv(EnvAPIKey), getenv(EnvAPIKeyFile))
	if err != nil {
		return c, err
	}
	c.APIKey = key
	t := TLSConfig{CAFile: getenv(EnvCACert), CertFile: getenv(EnvCert), KeyFile: getenv(EnvKey), ServerName: getenv(EnvTLSServerName)}
	if v := getenv(EnvInsecureSkipTLSVerify); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("client: %s=%q: want true or false", EnvInsecureSkipTLSVerify, v)
		}
		t.InsecureSkipVerify = b
	}
	if t != (TLSConfig{}) {
		c.TLS = &t
	}
	return c, nil
}

// ReadAPIKey returns key, or else the first line of file (trimmed), or ""
// when both are empty.
func ReadAPIKey(key, file string) (string, error) {
	if key != "" || file == "" {
		return key, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("client: reading the API key: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if first = strings.TrimSpace(first); first == "" {
		return "", fmt.Errorf("client: the API key file %s is empty", file)
	}
	return first, nil
}
