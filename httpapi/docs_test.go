package httpapi

import (
	"os"
	"regexp"
	"testing"
)

// TestDocsListEveryRoute checks the route table in docs/api.md against the
// router's: every route and method with its scope, and nothing else.
func TestDocsListEveryRoute(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| ([A-Z]+) \\| `(/[^`]*)` \\| ([a-z]+)")
	listed := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		listed[m[1]+" "+m[2]] = m[3]
	}
	for _, rt := range Routes() {
		name := rt.Method + " " + rt.Template
		want := scopeFor(rt.Method, rt.Template).String()
		if rt.Public {
			want = "public"
		}
		got, ok := listed[name]
		switch {
		case !ok:
			t.Errorf("docs/api.md does not list the route %s: add the row \"| %s | `%s` | %s |\" to its Routes table", name, rt.Method, rt.Template, want)
		case got != want:
			t.Errorf("docs/api.md lists %s with scope %s; the server needs %s", name, got, want)
		}
		delete(listed, name)
	}
	for name := range listed {
		t.Errorf("docs/api.md lists %s, which the router does not serve", name)
	}
}
