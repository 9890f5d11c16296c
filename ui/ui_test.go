package ui

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestAssetsWithinBudget keeps the dashboard small: every byte is served by
// every node to every browser that opens it.
func TestAssetsWithinBudget(t *testing.T) {
	size := Size()
	t.Logf("dashboard assets: %d bytes in %d files (budget %d)", size, len(Names()), Budget)
	if size > Budget {
		t.Fatalf("the dashboard's assets weigh %d bytes, over the %d-byte budget: make them smaller, or raise ui.Budget with a reason", size, Budget)
	}
	if size == 0 {
		t.Fatal("no assets embedded")
	}
}

func TestLookup(t *testing.T) {
	idx, ok := Lookup("")
	if !ok || idx.Name != "index.html" || idx.ContentType != "text/html; charset=utf-8" {
		t.Fatalf(`Lookup("") = %+v %v, want index.html`, idx.Name, ok)
	}
	for _, name := range []string{"app.js", "app.css", "favicon.svg"} {
		if a, ok := Lookup(name); !ok || len(a.Body) == 0 {
			t.Errorf("Lookup(%q) missing", name)
		}
	}
	for _, name := range []string{"assets/app.js", "../ui.go", "ui.go", "nope.js", "/app.js"} {
		if _, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) found something", name)
		}
	}
}

// externalRef matches a reference to another origin in markup, style or
// script: the page must work offline and its policy would block it anyway.
var externalRef = regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(\s*["'\x60]https?:`)

// TestAssetsAreSelfContained checks what the Content-Security-Policy relies
// on: no reference to another origin, no inline script or style (which the
// policy would refuse to run), and no code built from strings.
func TestAssetsAreSelfContained(t *testing.T) {
	for _, name := range Names() {
		a, _ := Lookup(name)
		if name == "favicon.svg" {
			continue // its xmlns is a name, not a fetch
		}
		if m := externalRef.Find(a.Body); m != nil {
			t.Errorf("%s refers to another origin: %q", name, m)
		}
		for _, bad := range []string{"eval(", "new Function", "innerHTML", "document.write", "localStorage", "document.cookie"} {
			if bytes.Contains(a.Body, []byte(bad)) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
	idx, _ := Lookup("")
	html := string(idx.Body)
	if regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`).MatchString(html) {
		t.Error("index.html has an inline script")
	}
	if strings.Contains(html, "<style") || strings.Contains(html, " style=") || strings.Contains(html, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(html) {
		t.Error("index.html has inline style or event handler attributes")
	}
	if !strings.Contains(html, `lang="en"`) || !strings.Contains(html, `<label for="key">`) {
		t.Error("index.html lacks its language or the API key field's label")
	}
}

// TestBothColourSchemes checks the stylesheet follows the system's light or
// dark preference.
func TestBothColourSchemes(t *testing.T) {
	css, _ := Lookup("app.css")
	if !bytes.Contains(css.Body, []byte("prefers-color-scheme: dark")) {
		t.Fatal("app.css has no dark scheme")
	}
}

func TestHeaderIsAFreshCopy(t *testing.T) {
	h := Header()
	h.Set("Content-Security-Policy", "changed")
	if Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
		t.Fatal("Header shares its map between calls")
	}
}
