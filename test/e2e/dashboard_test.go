//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// Keys of the dashboard test's cluster: the admin key cluster.sh starts the
// nodes with, and a read-only key from a keys file.
const (
	dashAdminKey  = "dashboard-admin-key-0123456789abcdef"
	dashViewerKey = "dashboard-viewer-key-0123456789abcdef"
)

// TestDashboardInABrowser drives the dashboard every node serves at /ui/ in
// headless Chromium against a real three-node cluster (scripts/cluster.sh):
// it signs in, sees three nodes and one leader, kills the leader and sees a
// new one (and the old one unhealthy) within 5 s, moves leadership with the
// page's admin control, finds a key written
// through the API in the keys view, sees a write and a delete arrive in the
// keys view's live tail (the watch stream) without a reload, sees the tail
// resume after the page's own node is killed and restarted, and checks that a read-only key gets no
// write or admin controls. It saves a PNG of each view under artifacts/.
//
// It needs Debian's chromium (scripts/test.sh installs it). Without one it
// is skipped, except under CI=true, where a missing browser is a failure.
func TestDashboardInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real three-node cluster and a browser; skipped with -short")
	}
	browser := findChromium()
	if browser == "" {
		msg := "no chromium found on PATH (chromium, chromium-browser, google-chrome): install Debian's chromium package, or run scripts/test.sh, which installs it"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	began := time.Now()
	root := repoRoot(t)
	artifacts := filepath.Join(root, "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	keysFile := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keysFile, []byte("viewer:read:"+dashViewerKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KV_API_KEYS_FILE", keysFile) // passed through to every node by cluster.sh
	// The browser starts while the cluster does. The first run starts it,
	// and it lives as long as that context: the test's steps get a deadline
	// of their own below.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1280, 860),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelCtx()
	browserUp := make(chan error, 1)
	go func() { browserUp <- chromedp.Do(ctx) }()

	const httpBase, peerBase = 28040, 28540
	script := clusterScript(t, filepath.Join(dir, "cluster"), httpBase, peerBase, dashAdminKey)
	leader := leaderFromOutput(t, script("start"))
	t.Logf("cluster up at +%v", time.Since(began).Round(100*time.Millisecond))
	if err := <-browserUp; err != nil {
		t.Fatalf("start %s: %v", browser, err)
	}
	t.Logf("browser up at +%v", time.Since(began).Round(100*time.Millisecond))
	// Open the page on a follower: the leader is about to be killed, and a
	// page only talks to the node that served it.
	page := "1"
	if leader == "1" {
		page = "2"
	}
	nodeURL := func(n string) string { return fmt.Sprintf("http://127.0.0.1:%d", httpBase+int(n[0]-'0')) }

	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	evaluate := func(js string) (bool, error) { return chromedp.Run(ctx, chromedp.Evaluate[bool](js)) }
	// eventually polls a JavaScript condition in the page until it is true.
	eventually := func(within time.Duration, what, js string) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			ok, err := evaluate(js)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
				t.Fatalf("%s: not seen within %v; the page shows:\n%s", what, within, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// clickNow clicks the element selector matches, inside the page in one
	// step. The cluster table re-renders every second and the keys table on
	// each list reload, so an element chromedp resolved a moment earlier may
	// be gone by the time its click is dispatched; a click from the page's
	// own script finds and clicks the element as it is now.
	clickNow := func(within time.Duration, what, selector string) {
		t.Helper()
		sel, _ := json.Marshal(selector)
		eventually(within, what, `(() => { const e = document.querySelector(`+string(sel)+`); if (!e || e.disabled) return false; e.click(); return true; })()`)
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(artifacts, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s (%d bytes) at +%v", path, len(png), time.Since(began).Round(100*time.Millisecond))
	}
	signIn := func(key string) {
		t.Helper()
		run("sign in",
			chromedp.WaitVisible(chromedp.CSS(`#key`)),
			chromedp.SendKeys(chromedp.CSS(`#key`), key),
			chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	}
	const rows = `document.querySelectorAll('#nodes tbody tr[data-node]')`

	// Sign in as admin; three nodes, one leader.
	run("open the dashboard", chromedp.Navigate(nodeURL(page)+"/ui/"))
	signIn(dashAdminKey)
	eventually(10*time.Second, "three healthy nodes and one leader",
		rows+`.length === 3 && document.querySelectorAll('#nodes tr.leader').length === 1 &&
		 [...`+rows+`].every(r => r.dataset.health === 'ok')`)
	eventually(2*time.Second, "the leader row names the leader cluster.sh reported",
		`document.querySelector('#nodes tr.leader').dataset.node === 'n`+leader+`'`)
	eventually(2*time.Second, "admin controls for an admin key",
		`!document.getElementById('backup').hidden && document.querySelectorAll('[data-action="transfer"]').length === 3`)
	leak, err := evaluate(`location.href.includes(` + jsString(dashAdminKey) + `) || document.cookie.includes(` + jsString(dashAdminKey) + `)`)
	if err != nil {
		t.Fatal(err)
	}
	if leak {
		t.Fatal("the API key is in the page's URL or cookies")
	}
	shot("dashboard-cluster.png")
	run("dark scheme", colorScheme("dark"))
	shot("dashboard-cluster-dark.png")
	run("light scheme", colorScheme("light"))

	// Some traffic for the charts, and the key the keys view must find.
	put(t, nodeURL(page), "dashboard/e2e", `{"value":{"hello":"browser","n":[1,2,3]},"ttlSeconds":600}`)
	for i := 0; i < 20; i++ {
		put(t, nodeURL(page), fmt.Sprintf("dashboard/load-%02d", i), `{"value":`+fmt.Sprint(i)+`}`)
	}

	// Kill the leader: a new one within 5 s, the old one visibly down.
	script("kill", leader)
	killed := time.Now()
	eventually(5*time.Second, "a new leader and the killed one unhealthy",
		`(() => { const l = document.querySelector('#nodes tr.leader');
		  const old = document.getElementById('node-n`+leader+`');
		  return l !== null && l.dataset.node !== 'n`+leader+`' && old !== null && old.dataset.health === 'down'; })()`)
	t.Logf("dashboard showed a new leader %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	shot("dashboard-cluster-failover.png")

	// An admin action through the page: move leadership to the surviving
	// follower, confirmed in the dialog.
	const follower = `[...` + rows + `].find(r => r.dataset.health === 'ok' && !r.classList.contains('leader'))`
	eventually(5*time.Second, "a healthy follower to promote", follower+` !== undefined`)
	target, err := chromedp.Run(ctx, chromedp.Evaluate[string](follower+`.dataset.node`))
	if err != nil {
		t.Fatalf("find the follower to promote: %v", err)
	}
	clickNow(5*time.Second, "the transfer button of "+target, `#node-`+target+` [data-action="transfer"]`)
	run("transfer leadership from the page",
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	eventually(10*time.Second, "leadership on "+target+" after the transfer",
		`document.querySelector('#nodes tr.leader') !== null && document.querySelector('#nodes tr.leader').dataset.node === '`+target+`'`)

	// Traffic: a card per node with its rates.
	run("traffic view", chromedp.Click(chromedp.CSS(`#tab-traffic`)))
	// The page's own polling is traffic on the node that serves it.
	eventually(5*time.Second, "traffic cards, the page's node with a request rate",
		`document.querySelectorAll('#traffic .card').length === 3 &&
		 Number(document.querySelector('#traffic .card[data-node="n`+page+`"]').dataset.rps) > 0 &&
		 [...document.querySelectorAll('#traffic .card polyline.l1')].some(p => p.getAttribute('points').split(' ').length > 2)`)
	shot("dashboard-traffic.png")

	// Keys: the key written through the API, its value and TTL.
	run("keys view", chromedp.Click(chromedp.CSS(`#tab-keys`)),
		chromedp.SendKeys(chromedp.CSS(`#prefix`), "dashboard/"),
		chromedp.Click(chromedp.CSS(`#keys-form button[type=submit]`)))
	eventually(5*time.Second, "the written key listed", `document.querySelector('#keys tr[data-key="dashboard/e2e"]') !== null`)
	clickNow(5*time.Second, "open the key", `#keys tr[data-key="dashboard/e2e"] button`)
	eventually(5*time.Second, "its value pretty-printed, TTL and a delete control",
		`(() => { const p = document.querySelector('#item pre'); const ttl = document.querySelector('#item .ttl');
		  return p !== null && p.textContent.includes('"hello": "browser"') && /^\d+m \d+s$/.test(ttl.textContent) &&
		  document.querySelector('#item [data-action="delete"]') !== null; })()`)
	shot("dashboard-keys.png")

	// The live tail: a write and a delete through the API show up in the
	// tail and the table without a reload (the marker survives only if the
	// page is not reloaded).
	eventually(5*time.Second, "the keys view following the change stream",
		`document.getElementById('live-state').dataset.state === 'live'`)
	if _, err := evaluate(`window.noReloadMarker = true`); err != nil {
		t.Fatal(err)
	}
	put(t, nodeURL(page), "dashboard/live", `{"value":"tail"}`)
	del(t, nodeURL(page), "dashboard/load-00")
	eventually(5*time.Second, "the set and the delete in the live tail and the table, without a reload",
		`window.noReloadMarker === true &&
		 document.querySelector('#tail li[data-type="set"][data-key="dashboard/live"]') !== null &&
		 document.querySelector('#tail li[data-type="delete"][data-key="dashboard/load-00"]') !== null &&
		 document.querySelector('#tail li').dataset.key === 'dashboard/load-00' &&
		 document.querySelector('#keys tr[data-key="dashboard/live"]') !== null &&
		 document.querySelector('#keys tr[data-key="dashboard/load-00"]') === null`)
	shot("dashboard-keys-live.png")

	// A dropped stream resumes from the last event id: bring the old leader
	// back, kill the page's node, write through another while it is down,
	// restart it, and the write made meanwhile must reach the tail.
	script("restart", leader)
	script("kill", page)
	eventually(5*time.Second, "the live badge saying reconnecting", `document.getElementById('live-state').dataset.state === 'reconnecting'`)
	other := strings.NewReplacer(page, "", leader, "").Replace("123") // the node that stayed up throughout
	putEventually(t, nodeURL(other), "dashboard/while-down", `{"value":"resumed"}`, 15*time.Second)
	script("restart", page)
	eventually(20*time.Second, "the write made while the page's node was down, in the tail after the resume",
		`window.noReloadMarker === true && document.getElementById('live-state').dataset.state === 'live' &&
		 document.querySelector('#tail li[data-type="set"][data-key="dashboard/while-down"]') !== null &&
		 document.querySelectorAll('#tail li[data-key="dashboard/live"]').length === 1`)

	// A read-only key: no write or admin controls anywhere.
	run("sign out", chromedp.Click(chromedp.CSS(`#logout`)))
	signIn(dashViewerKey)
	eventually(5*time.Second, "the cluster view as viewer", rows+`.length === 3 && document.body.dataset.scope === 'read'`)
	eventually(2*time.Second, "no admin controls for a read-only key",
		`document.getElementById('backup').hidden && document.querySelectorAll('[data-action]').length === 0 &&
		 [...document.querySelectorAll('.admin-only')].every(e => e.hidden || e.offsetParent === null)`)
	run("keys view as viewer", chromedp.Click(chromedp.CSS(`#tab-keys`)),
		chromedp.SetValue(chromedp.CSS(`#prefix`), "dashboard/"), chromedp.Click(chromedp.CSS(`#keys-form button[type=submit]`)))
	eventually(5*time.Second, "the key listed for the viewer", `document.querySelector('#keys tr[data-key="dashboard/e2e"]') !== null`)
	clickNow(5*time.Second, "open the key as viewer", `#keys tr[data-key="dashboard/e2e"] button`)
	eventually(5*time.Second, "the value without a delete control",
		`document.querySelector('#item pre') !== null && document.querySelector('#item [data-action]') === null`)
	shot("dashboard-keys-readonly.png")
}

// colorScheme makes the page see the system prefer a light or dark scheme.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// leaderFromOutput reads the "leader: nN" line cluster.sh start prints and
// returns N.
func leaderFromOutput(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "leader:" {
			return strings.TrimPrefix(f[1], "n")
		}
	}
	t.Fatalf("no leader in cluster.sh output")
	return ""
}

// put writes one key through the HTTP API as the admin.
func put(t *testing.T, base, key, body string) {
	t.Helper()
	if err := tryPut(base, key, body); err != nil {
		t.Fatal(err)
	}
}

// putEventually retries put until it succeeds, for a cluster electing a
// leader.
func putEventually(t *testing.T, base, key, body string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := tryPut(base, key, body)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v (retried for %v)", err, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tryPut(base, key, body string) error {
	req, err := http.NewRequest(http.MethodPut, base+"/kv/items/"+strings.ReplaceAll(key, "/", "%2F"), strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+dashAdminKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %v", key, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s: %s", key, res.Status)
	}
	return nil
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string { return fmt.Sprintf("%q", s) }

// del deletes one key through the HTTP API as the admin.
func del(t *testing.T, base, key string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, base+"/kv/items/"+strings.ReplaceAll(key, "/", "%2F"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+dashAdminKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE %s: %v", key, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE %s: %s", key, res.Status)
	}
}
