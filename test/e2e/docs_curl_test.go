//go:build unix

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/httpapi"
)

// docBlock is one fenced shell block of a Markdown file.
type docBlock struct {
	file string
	line int    // of the opening fence
	text string // the commands
	skip string // why it is not run, from a "<!-- docs-test: skip: ... -->" line just before the fence
}

// shellBlocks returns the fenced sh/bash blocks of src.
func shellBlocks(file, src string) []docBlock {
	var out []docBlock
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if fence != "```sh" && fence != "```bash" {
			continue
		}
		b := docBlock{file: file, line: i + 1}
		if i > 0 {
			if m := regexp.MustCompile(`^<!-- docs-test: skip: (.+) -->$`).FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				b.skip = m[1]
			}
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		b.text = strings.Join(body, "\n")
		out = append(out, b)
	}
	return out
}

// commands returns the block's commands: continuation lines joined, comment
// lines and trailing comments dropped.
func commands(text string) []string {
	var out []string
	var cur string
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if cur == "" && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if strings.HasSuffix(t, `\`) {
			cur += strings.TrimSuffix(t, `\`) + " "
			continue
		}
		out = append(out, cur+t)
		cur = ""
	}
	return out
}

// curlOnly: the block's every command is curl, grep or a variable
// assignment, so it needs nothing but a cluster.
var curlOnly = regexp.MustCompile(`^(curl |grep |[A-Z_]+=)`)

// TestDocsCurlExamplesRun runs every curl block of README.md and docs/*.md,
// in order, against a real three-node cluster started by scripts/cluster.sh,
// with the documented ports mapped to the cluster's. A block fails when a
// command exits non-zero (pipelines included: an expected header that is
// missing fails its grep) or when the server answers a request as malformed,
// unauthenticated, forbidden, unrouted, too large or failed (400, 401, 403,
// 404 outside a route, 405, 413, 5xx); 404 for a missing key and 412 for a
// failed condition are what some examples show. Blocks that also need other
// tools (docker, kvnode, kubectl) are listed and not run.
func TestDocsCurlExamplesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real three-node cluster; skipped with -short")
	}
	for _, tool := range []string{"curl", "jq", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH (%v): scripts/test.sh installs it", tool, err)
		}
	}
	root := repoRoot(t)
	var run []docBlock
	for _, file := range markdownDocs(t, root) {
		if file == "CHANGELOG.md" || strings.HasPrefix(file, "deploy/") {
			continue
		}
		src, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range shellBlocks(file, string(src)) {
			cmds := commands(b.text)
			hasCurl := false
			var other []string
			for _, c := range cmds {
				if strings.HasPrefix(c, "curl ") {
					hasCurl = true
				}
				if !curlOnly.MatchString(c) {
					other = append(other, strings.Fields(c)[0])
				}
			}
			switch {
			case !hasCurl:
			case b.skip != "":
				t.Logf("%s:%d not run: %s", b.file, b.line, b.skip)
			case len(other) > 0:
				t.Logf("%s:%d not run: it also runs %s", b.file, b.line, strings.Join(other, ", "))
			default:
				run = append(run, b)
			}
		}
	}
	if len(run) < 6 {
		t.Fatalf("only %d curl blocks found in the docs: the extraction no longer matches them", len(run))
	}

	const httpBase, peerBase = 25080, 25180
	work := t.TempDir()
	script := clusterScript(t, filepath.Join(work, ".cluster"), httpBase, peerBase, "docs-curl-key-0123456789")
	script("start")

	// A route template as a pattern of escaped paths.
	var routes []*regexp.Regexp
	for _, rt := range httpapi.Routes() {
		routes = append(routes, regexp.MustCompile("^"+regexp.MustCompile(`\\\{[a-z]+\\\}`).ReplaceAllString(regexp.QuoteMeta(rt.Template), "[^/]+")+"$"))
	}
	isRoute := func(path string) bool {
		for _, re := range routes {
			if re.MatchString(path) {
				return true
			}
		}
		return false
	}
	ports := regexp.MustCompile(`127\.0\.0\.1:80(8[1-9])`)
	report := regexp.MustCompile(`(?m)^DOCS-CURL (\d{3}) (\S+) (\S+)$`)
	const prelude = `set -euo pipefail
KEY=$(cat .cluster/api-key); A="Authorization: Bearer $KEY"; H="$A"
curl() { command curl "$@" -w '%{stderr}DOCS-CURL %{http_code} %{method} %{url_effective}\n'; }
`
	requests := 0
	for _, b := range run {
		text := ports.ReplaceAllStringFunc(b.text, func(s string) string {
			return fmt.Sprintf("127.0.0.1:%d", httpBase+int(s[len(s)-1]-'0'))
		})
		cmd := exec.Command("bash", "-c", prelude+text)
		cmd.Dir = work
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		where := fmt.Sprintf("%s:%d", b.file, b.line)
		if err != nil {
			t.Errorf("%s: the block failed (%v):\n%s\nstdout:\n%s\nstderr:\n%s", where, err, text, stdout.String(), stderr.String())
			continue
		}
		for _, m := range report.FindAllStringSubmatch(stderr.String(), -1) {
			requests++
			code, method, url := m[1], m[2], m[3]
			path := url
			if i := strings.Index(url, "://"); i >= 0 {
				path = url[i+3:]
				if j := strings.IndexByte(path, '/'); j >= 0 {
					path = path[j:]
				}
			}
			path, _, _ = strings.Cut(path, "?")
			switch {
			case code == "404" && isRoute(path), code == "412", code[0] == '2':
			case code == "404":
				t.Errorf("%s: %s %s answered 404: no route serves %s", where, method, url, path)
			default:
				t.Errorf("%s: %s %s answered %s: the server refused the documented request\nstdout:\n%s", where, method, url, code, stdout.String())
			}
		}
	}
	if requests < 30 {
		t.Errorf("only %d requests reported by the docs' curl commands: the curl wrapper no longer sees them", requests)
	}
	t.Logf("ran %d curl blocks, %d requests", len(run), requests)
}
