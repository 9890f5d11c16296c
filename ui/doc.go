// Package ui is the cluster dashboard every quorumkv node serves at /ui/: an
// HTML page, its stylesheet and its script, embedded in the binary.
//
// It owns the assets, their size budget (Budget) and the security headers
// they are served with (Header). It holds no data and makes no decisions
// about access: the page asks the user for an API key and calls the normal
// HTTP API with it, so every call it makes is authenticated and authorized
// exactly as any client's. httpapi serves the assets without a key (they are
// the same for everyone) on its /ui/ routes.
//
// The page works offline: it loads nothing from another origin (no CDN, web
// font or framework), and its Content-Security-Policy forbids it to.
package ui
