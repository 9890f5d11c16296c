package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/quorumkv/quorumkv/httpapi"
)

// credentials are the API's keys as configured by flags: the single admin
// key (--api-key, --api-key-file, or the generated one), the scoped keys of
// --api-keys-file (reloadable), or no authentication at all, explicitly.
type credentials struct {
	apiKey   string
	keys     *httpapi.Keyring
	keysFile string
	insecure bool
}

func loadCredentials(o options, logger *slog.Logger, stderr io.Writer) (credentials, error) {
	if o.insecureNoAuth {
		if o.apiKey != "" || o.apiKeyFile != "" || o.apiKeysFile != "" {
			return credentials{}, errors.New("--insecure-no-auth cannot be combined with API keys")
		}
		return credentials{insecure: true}, nil
	}
	var c credentials
	if o.apiKeysFile != "" {
		keys, err := readKeysFile(o.apiKeysFile)
		if err != nil {
			return credentials{}, err
		}
		if c.keys, err = httpapi.NewKeyring(keys); err != nil {
			return credentials{}, fmt.Errorf("--api-keys-file %s: %w", o.apiKeysFile, err)
		}
		c.keysFile = o.apiKeysFile
		logger.Info("loaded API keys", "file", o.apiKeysFile, "keys", c.keys.Len())
		if o.apiKey == "" && o.apiKeyFile == "" {
			return c, nil
		}
	}
	key, generated, err := resolveAPIKey(o)
	if err != nil {
		return credentials{}, err
	}
	if generated {
		fmt.Fprintf(stderr, "kvnode: no API key configured; generated one and saved it in %s/%s (shown only now):\n%s\n", o.dataDir, apiKeyFileName, key)
		logger.Warn("generated a new API key", "file", o.dataDir+"/"+apiKeyFileName)
	}
	c.apiKey = key
	return c, nil
}

func readKeysFile(path string) ([]httpapi.APIKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--api-keys-file: %w", err)
	}
	keys, err := httpapi.ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("--api-keys-file %s: %w", path, err)
	}
	return keys, nil
}

// reload re-reads --api-keys-file (on SIGHUP). A file that does not parse
// leaves the current keys in place.
func (c credentials) reload(logger *slog.Logger) {
	if c.keys == nil {
		logger.Info("SIGHUP: no --api-keys-file configured; nothing to reload")
		return
	}
	keys, err := readKeysFile(c.keysFile)
	if err == nil {
		err = c.keys.Replace(keys)
	}
	if err != nil {
		logger.Error("SIGHUP: API keys NOT reloaded; the previous keys stay in force", "file", c.keysFile, "err", err)
		return
	}
	logger.Info("SIGHUP: reloaded API keys", "file", c.keysFile, "keys", len(keys))
}
