package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// markdownDocs lists the Markdown files the docs tests cover, relative to
// the repository root.
func markdownDocs(t *testing.T, root string) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md", "CHANGELOG.md", "deploy/kubernetes/README.md"}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, rel)
	}
	return files
}

// proseLines returns the file's lines outside fenced code blocks, with
// inline code spans blanked (a link inside backticks is not a link).
func proseLines(src string) []string {
	var out []string
	fenced := false
	code := regexp.MustCompile("`[^`]*`")
	for _, line := range strings.Split(src, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, code.ReplaceAllString(line, "``"))
		}
	}
	return out
}

// anchors returns the heading anchors GitHub generates for a Markdown file:
// lower case, punctuation dropped, spaces turned into hyphens, repeats
// numbered.
func anchors(src string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range proseLines(src) {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			out[slug+"-"+itoa(int64(n))] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// TestMarkdownLinksResolve checks every relative link in README.md,
// CHANGELOG.md and docs/: the file exists and, for a #fragment into a
// Markdown file, the heading does. External links are not fetched.
func TestMarkdownLinksResolve(t *testing.T) {
	root := repoRoot(t)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, file := range markdownDocs(t, root) {
		src, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range proseLines(string(src)) {
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, frag, _ := strings.Cut(target, "#")
				dest := filepath.Join(root, file)
				if path != "" {
					dest = filepath.Join(root, filepath.Dir(file), path)
					if _, err := os.Stat(dest); err != nil {
						t.Errorf("%s (prose line %d): link %q: no such file %s", file, n+1, target, dest)
						continue
					}
				}
				if frag == "" || !strings.HasSuffix(dest, ".md") {
					continue
				}
				destSrc, err := os.ReadFile(dest)
				if err != nil {
					t.Errorf("%s: link %q: %v", file, target, err)
					continue
				}
				if !anchors(string(destSrc))[frag] {
					t.Errorf("%s (prose line %d): link %q: %s has no heading with the anchor #%s", file, n+1, target, dest, frag)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d relative links found: the link pattern no longer matches the docs", checked)
	}
}
