package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestResourceBoundsFlags wires a node exactly as main does with
// --max-keys, --max-list-bytes and a request over the keys quota: the write
// is refused with 507 and nothing is stored, /readyz stays 200 with a
// detail, the metrics say so, a delete frees room, and list pages respect
// the byte budget.
func TestResourceBoundsFlags(t *testing.T) {
	base, _ := startLogged(t, "--max-keys", "2", "--max-list-bytes", "4096")
	big := `{"value": "` + strings.Repeat("x", 3000) + `"}`
	for _, k := range []string{"a", "b"} {
		if code, body := do(t, "PUT", base+"/kv/items/"+k, big); code != 201 {
			t.Fatalf("PUT %s: %d %s", k, code, body)
		}
	}
	code, body := do(t, "PUT", base+"/kv/items/c", big)
	var e struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			Retryable bool   `json:"retryable"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || code != http.StatusInsufficientStorage ||
		e.Error.Code != "insufficient_storage" || e.Error.Retryable || !strings.Contains(e.Error.Message, "--max-keys") {
		t.Fatalf("PUT past --max-keys: %d %s", code, body)
	}
	if code, _ := do(t, "GET", base+"/kv/items/c", ""); code != 404 {
		t.Fatalf("refused key readable: %d", code)
	}
	if resp, body := get(t, base+"/readyz", ""); resp.StatusCode != 200 || !strings.Contains(body, "storage quota reached") {
		t.Fatalf("/readyz at the quota: %d %s", resp.StatusCode, body)
	}
	_, metrics := get(t, base+"/metrics", "Bearer secret")
	for series, want := range map[string]string{
		`quorumkv_quota_exceeded_total{limit="keys"}`: "1",
		`quorumkv_quota_max_keys`:                     "2",
		`quorumkv_quota_max_data_bytes`:               "2.147483648e+09",
		`quorumkv_fsm_keys`:                           "2",
	} {
		if got, ok := metricValue(metrics, series); got != want {
			t.Errorf("%s = %q (present %v), want %s", series, got, ok, want)
		}
	}
	if code, body := do(t, "DELETE", base+"/kv/items/a", ""); code != 200 {
		t.Fatalf("DELETE at the quota: %d %s", code, body)
	}
	if code, body := do(t, "PUT", base+"/kv/items/c", big); code != 201 {
		t.Fatalf("PUT after a delete freed a key: %d %s", code, body)
	}
	// Two values of 3000 bytes do not fit one 4096-byte page.
	code, body = do(t, "GET", base+"/kv/items?values=true", "")
	var page struct {
		Data struct {
			Items    []json.RawMessage `json:"items"`
			Complete bool              `json:"complete"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &page); err != nil || code != 200 || len(page.Data.Items) != 1 || page.Data.Complete || len(body) > 4096 {
		t.Fatalf("list page under --max-list-bytes 4096: %d, %d items, complete %v, %d bytes", code, len(page.Data.Items), page.Data.Complete, len(body))
	}
}
