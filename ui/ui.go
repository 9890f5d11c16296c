package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"sort"
)

// Budget is the most the embedded assets may weigh together, in bytes. The
// dashboard is one page served by every node, loaded over slow links too:
// 200 KB keeps it a quick first load with no build step or minifier, and
// TestAssetsWithinBudget fails a change that outgrows it.
const Budget = 200 << 10

// ContentSecurityPolicy is sent with every asset. The page runs only its
// own script and style from this origin, talks only to this origin, cannot
// be framed, and has no inline script or style for an injected string to
// turn into code.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed assets
var embedded embed.FS

// Asset is one embedded file as it is served.
type Asset struct {
	Name        string // file name under /ui/
	ContentType string
	Body        []byte
}

// contentTypes are the asset types, fixed here rather than read from the
// system's MIME tables, which vary between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

var assets = load()

func load() map[string]Asset {
	out := map[string]Asset{}
	err := fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fs.ErrInvalid // a file type with no declared content type
		}
		out[name] = Asset{Name: name, ContentType: ct, Body: body}
		return nil
	})
	if err != nil { // the files are compiled in: a failure here is a build defect
		panic("ui: reading embedded assets: " + err.Error())
	}
	return out
}

// Lookup returns the asset served at /ui/<name>; "" is the page itself
// (index.html). Names are single path segments: anything else is not found.
func Lookup(name string) (Asset, bool) {
	if name == "" {
		name = "index.html"
	}
	a, ok := assets[name]
	return a, ok
}

// Names lists the assets in name order.
func Names() []string {
	out := make([]string, 0, len(assets))
	for n := range assets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Size is the assets' total size in bytes, the figure Budget bounds.
func Size() int {
	n := 0
	for _, a := range assets {
		n += len(a.Body)
	}
	return n
}

// Header returns the security headers every asset response carries (a new
// map each call, for the caller to extend).
func Header() http.Header {
	return http.Header{
		"Content-Security-Policy":      {ContentSecurityPolicy},
		"X-Content-Type-Options":       {"nosniff"},
		"X-Frame-Options":              {"DENY"},
		"Referrer-Policy":              {"no-referrer"},
		"Cross-Origin-Opener-Policy":   {"same-origin"},
		"Cross-Origin-Resource-Policy": {"same-origin"},
		"Permissions-Policy":           {"camera=(), microphone=(), geolocation=(), payment=(), usb=()"},
	}
}
