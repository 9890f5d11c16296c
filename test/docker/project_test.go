package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// projectPrefix starts every compose project and image tag this test creates.
// The rest of the name is the creation time (Unix seconds) and a random
// suffix, so a later run can tell leftovers of a crashed run (old) from a run
// in progress (recent) without asking anyone.
const projectPrefix = "qkvtest-"

// staleAfter is how old a leftover project must be before it is removed. A
// whole run takes well under two minutes.
const staleAfter = 10 * time.Minute

const imageRepo = "quorumkv/kvnode"

// project is one compose project of docker-compose.yml.
type project struct {
	t     *testing.T
	root  string // repository root
	name  string
	image string
	key   string
	ports map[string]int // service → host port of its HTTP API
}

func newProject(t *testing.T, root string) *project {
	t.Helper()
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s%d-%s", projectPrefix, time.Now().Unix(), hex.EncodeToString(suffix))
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	p := &project{t: t, root: root, name: name, image: imageRepo + ":" + name, key: hex.EncodeToString(key), ports: map[string]int{}}
	for _, svc := range services {
		p.ports[svc] = freePort(t)
	}
	return p
}

var services = []string{"n1", "n2", "n3"}

// env is the environment docker-compose runs with: the caller's, minus any
// KV_ settings that would change the file's meaning, plus this project's.
func (p *project) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KV_") && !strings.HasPrefix(kv, "COMPOSE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "KV_IMAGE="+p.image, "KV_API_KEY="+p.key)
	for i, svc := range services {
		env = append(env, fmt.Sprintf("KV_N%d_PORT=%d", i+1, p.ports[svc]))
	}
	return env
}

// compose runs docker-compose on this project and returns its combined output.
func (p *project) compose(timeout time.Duration, args ...string) (string, error) {
	return runIn(p.root, p.env(), timeout, "docker-compose", append([]string{"-p", p.name, "-f", filepath.Join(p.root, "docker-compose.yml")}, args...)...)
}

// mustCompose is compose that fails the test on error.
func (p *project) mustCompose(timeout time.Duration, args ...string) string {
	p.t.Helper()
	out, err := p.compose(timeout, args...)
	if err != nil {
		p.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// container returns the id of the container running svc.
func (p *project) container(svc string) string {
	p.t.Helper()
	id := strings.TrimSpace(p.mustCompose(30*time.Second, "ps", "-q", svc))
	if id == "" {
		p.t.Fatalf("no container for service %s", svc)
	}
	return id
}

func (p *project) url(svc, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.ports[svc], path)
}

// down removes the project's containers, network and volumes, then its image.
// It logs instead of failing: it runs in t.Cleanup, and what it could not
// remove the next run removes as stale.
func (p *project) down() {
	if p.t.Failed() {
		if out, err := p.compose(30*time.Second, "logs", "--no-color", "--tail", "40"); err == nil {
			p.t.Logf("container logs (last 40 lines each):\n%s", out)
		}
	}
	if out, err := p.compose(2*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
		p.t.Logf("docker-compose down: %v\n%s", err, out)
	}
	if out, err := runIn(p.root, nil, time.Minute, "docker", "rmi", "-f", p.image); err != nil {
		p.t.Logf("docker rmi %s: %v\n%s", p.image, err, out)
	}
}

// removeStale removes compose projects and images left by earlier runs that
// crashed before their cleanup, judged by the creation time in their name.
func removeStale(t *testing.T, root string) {
	t.Helper()
	names := map[string]bool{}
	for _, args := range [][]string{
		{"ps", "-a", "--filter", "label=com.docker.compose.project", "--format", `{{.Label "com.docker.compose.project"}}`},
		{"volume", "ls", "--filter", "label=com.docker.compose.project", "--format", `{{.Label "com.docker.compose.project"}}`},
		{"network", "ls", "--filter", "label=com.docker.compose.project", "--format", `{{.Label "com.docker.compose.project"}}`},
		{"images", imageRepo, "--format", "{{.Tag}}"},
	} {
		out, err := runIn(root, nil, 30*time.Second, "docker", args...)
		if err != nil {
			t.Logf("listing leftovers (docker %s): %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		for _, name := range strings.Fields(out) {
			if isStale(name, time.Now()) {
				names[name] = true
			}
		}
	}
	for name := range names {
		t.Logf("removing leftovers of an earlier run: %s", name)
		stale := &project{t: t, root: root, name: name, image: imageRepo + ":" + name, key: "stale", ports: map[string]int{"n1": 1, "n2": 1, "n3": 1}}
		stale.down()
	}
}

// isStale reports whether name was made by this test more than staleAfter
// before now.
func isStale(name string, now time.Time) bool {
	rest, ok := strings.CutPrefix(name, projectPrefix)
	if !ok {
		return false
	}
	secs, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	return err == nil && now.Sub(time.Unix(n, 0)) > staleAfter
}

// runIn runs a command in dir with env (nil: the caller's) and a deadline,
// returning its combined output.
func runIn(dir string, env []string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not finish within %s: %w", name, timeout, err)
	}
	return out.String(), err
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// requireDocker fails the test with a clear message when docker, its daemon
// or docker-compose is not usable.
func requireDocker(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not on PATH (%v); this test needs Docker Engine and docker-compose (Debian: apt-get install docker.io docker-compose)", bin, err)
		}
	}
	if out, err := runIn("", nil, 20*time.Second, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker daemon is unreachable: %v\n%s\nstart it (systemctl start docker) or point DOCKER_HOST at one; skip this test only with -short", err, out)
	}
}

// repoRoot walks up from the package directory to the one holding go.mod and
// docker-compose.yml.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, modErr := os.Stat(filepath.Join(dir, "go.mod"))
		_, composeErr := os.Stat(filepath.Join(dir, "docker-compose.yml"))
		if modErr == nil && composeErr == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no directory above the working directory holds go.mod and docker-compose.yml")
		}
		dir = parent
	}
}
