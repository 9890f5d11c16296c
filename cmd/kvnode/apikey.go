package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// apiKeyFileName is the generated key's file in the data dir. Its path is
// printed and logged; the key itself never is.
const apiKeyFileName = "api-key"

// loadOrCreateKey keeps a node from ever running open: without a configured key
// it uses the one in dataDir/api-key, creating a random one (mode 0600) once.
func loadOrCreateKey(dataDir string) (string, bool, error) {
	path := filepath.Join(dataDir, apiKeyFileName)
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", false, fmt.Errorf("%s is empty; delete it to generate a new key", path)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("read API key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("create data dir: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("generate API key: %w", err)
	}
	key := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("save API key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("save API key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("save API key: %w", err)
	}
	return key, true, nil
}

// readKeyFile reads a single-key file as --api-key-file and the generated
// key are read: the first line, trimmed, which must not be empty.
func readKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	key, _, _ := strings.Cut(string(b), "\n")
	if key = strings.TrimSpace(key); key == "" {
		return "", fmt.Errorf("%s: first line is empty", path)
	}
	return key, nil
}
