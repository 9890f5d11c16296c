package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/quorumkv/quorumkv/httpapi"
)

// adminKeyName is the name the single admin key (--api-key, --api-key-file
// or the generated one) has in logs and metrics.
const adminKeyName = "default"

// credentials are the API's keys as configured by flags: the single admin
// key (--api-key, --api-key-file, or the generated one) and the scoped keys
// of --api-keys-file, all in one keyring the HTTP API reads on every request,
// or no authentication at all, explicitly.
//
// What SIGHUP (reload) does:
//   - with --api-keys-file, the keys file becomes the only source of keys:
//     the single admin key gives way to it and stops working (unless the file
//     itself lists the same secret). That is how a key given by --api-key is
//     revoked without a restart.
//   - without it, the single admin key is read again from its file
//     (--api-key-file, or <data-dir>/api-key for a generated key), so
//     replacing the file rotates the key. A key given literally by --api-key
//     or KV_API_KEY cannot change; the reload says so.
//
// A reload that fails (unreadable or invalid file) keeps the keys in force.
type credentials struct {
	// apiKey is the single admin key as started with; --join authenticates
	// to the cluster with it.
	apiKey string
	// apiKeySource is the file the single admin key was read from ("" when
	// it came from --api-key or KV_API_KEY).
	apiKeySource string
	keys         *httpapi.Keyring
	keysFile     string
	insecure     bool
}

func loadCredentials(o options, logger *slog.Logger, stderr io.Writer) (credentials, error) {
	if o.insecureNoAuth {
		if o.apiKey != "" || o.apiKeyFile != "" || o.apiKeysFile != "" {
			return credentials{}, errors.New("--insecure-no-auth cannot be combined with API keys")
		}
		return credentials{insecure: true}, nil
	}
	var c credentials
	var fileKeys []httpapi.APIKey
	if o.apiKeysFile != "" {
		var err error
		if fileKeys, err = readKeysFile(o.apiKeysFile); err != nil {
			return credentials{}, err
		}
		c.keysFile = o.apiKeysFile
	}
	if o.apiKeysFile == "" || o.apiKey != "" || o.apiKeyFile != "" {
		key, generated, err := resolveAPIKey(o)
		if err != nil {
			return credentials{}, err
		}
		if err := checkAdminKey(key); err != nil {
			return credentials{}, err
		}
		if o.apiKeyOnCommandLine {
			logger.Warn("--api-key on the command line is visible to every local user (ps, /proc/<pid>/cmdline); pass it with --api-key-file or KV_API_KEY instead")
		}
		switch {
		case o.apiKeyFile != "":
			c.apiKeySource = o.apiKeyFile
		case o.apiKey == "":
			c.apiKeySource = filepath.Join(o.dataDir, apiKeyFileName)
		}
		if generated {
			// The path, never the key: stderr and logs are collected and shipped.
			fmt.Fprintf(stderr, "kvnode: no API key configured; generated one and saved it in %s (mode 0600; read it from there)\n", c.apiKeySource)
			logger.Warn("generated a new API key", "file", c.apiKeySource)
		}
		c.apiKey = key
	}
	keys, err := c.withAdminKey(fileKeys)
	if err != nil {
		return credentials{}, err
	}
	if c.keys, err = httpapi.NewKeyring(keys); err != nil {
		if c.keysFile != "" {
			return credentials{}, fmt.Errorf("--api-keys-file %s: %w", c.keysFile, err)
		}
		return credentials{}, err
	}
	if c.keysFile != "" {
		logger.Info("loaded API keys", "file", c.keysFile, "keys", len(fileKeys))
		if c.apiKey != "" {
			logger.Info("the single admin key (--api-key or --api-key-file) is accepted until the first reload; after SIGHUP only the keys file's keys are", "keys_file", c.keysFile)
		}
	}
	return c, nil
}

// checkAdminKey applies the rule httpapi applies to any bearer secret.
func checkAdminKey(key string) error {
	if strings.IndexFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return errors.New("the API key must not contain whitespace or control characters")
	}
	return nil
}

// withAdminKey returns fileKeys plus the single admin key, if there is one
// and the file does not already hold its secret. A file key named like the
// admin key is refused: logs and metrics could not tell them apart.
func (c credentials) withAdminKey(fileKeys []httpapi.APIKey) ([]httpapi.APIKey, error) {
	if c.apiKey == "" {
		return fileKeys, nil
	}
	admin := httpapi.NewAPIKey(adminKeyName, httpapi.ScopeAdmin, c.apiKey)
	for _, k := range fileKeys {
		if k.Digest == admin.Digest {
			return fileKeys, nil
		}
		if k.Name == adminKeyName {
			return nil, fmt.Errorf("--api-keys-file %s names a key %q, the name of the --api-key/--api-key-file key; rename it", c.keysFile, adminKeyName)
		}
	}
	return append(append([]httpapi.APIKey(nil), fileKeys...), admin), nil
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

// reload runs on SIGHUP; see credentials for what it changes. A node without
// authentication has nothing to reload.
func (c *credentials) reload(logger *slog.Logger) {
	switch {
	case c.insecure:
		logger.Info("SIGHUP: authentication is disabled (--insecure-no-auth); nothing to reload")
	case c.keysFile != "":
		c.reloadKeysFile(logger)
	case c.apiKeySource != "":
		c.reloadAdminKey(logger)
	default:
		logger.Info("SIGHUP: the API key comes from --api-key or KV_API_KEY and cannot be reloaded; to revoke it, configure --api-keys-file and send SIGHUP again after a restart, or restart with another key")
	}
}

func (c *credentials) reloadKeysFile(logger *slog.Logger) {
	keys, err := readKeysFile(c.keysFile)
	if err == nil {
		err = c.keys.Replace(keys)
	}
	if err != nil {
		logger.Error("SIGHUP: API keys NOT reloaded; the previous keys stay in force", "file", c.keysFile, "err", err)
		return
	}
	if c.apiKey != "" {
		kept := false
		d := sha256.Sum256([]byte(c.apiKey))
		for _, k := range keys {
			kept = kept || k.Digest == d
		}
		if !kept {
			logger.Warn("SIGHUP: the --api-key/--api-key-file key is no longer accepted; the keys file is now the only source of keys", "file", c.keysFile)
		}
		c.apiKey = "" // once revoked, it stays revoked on later reloads
	}
	logger.Info("SIGHUP: reloaded API keys", "file", c.keysFile, "keys", len(keys))
}

func (c *credentials) reloadAdminKey(logger *slog.Logger) {
	key, err := readKeyFile(c.apiKeySource)
	if err == nil {
		err = checkAdminKey(key)
	}
	if err == nil {
		err = c.keys.Replace([]httpapi.APIKey{httpapi.NewAPIKey(adminKeyName, httpapi.ScopeAdmin, key)})
	}
	if err != nil {
		logger.Error("SIGHUP: API key NOT reloaded; the previous key stays in force", "file", c.apiKeySource, "err", err)
		return
	}
	logger.Info("SIGHUP: reloaded the API key", "file", c.apiKeySource)
}
