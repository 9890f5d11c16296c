package httpapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics with auth and parses it; it fails the test unless
// the answer is 200 in the Prometheus text format.
func (e *testEnv) scrape(auth string) map[string]float64 {
	e.t.Helper()
	res := e.do("GET", "/metrics", "", auth)
	if res.status != http.StatusOK {
		e.t.Fatalf("GET /metrics: %d %s", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != metricsContentType {
		e.t.Fatalf("Content-Type = %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(res.body))
	if err != nil {
		e.t.Fatalf("not the Prometheus text format: %v\n%s", err, res.body)
	}
	// Flatten to "name{k=v,...}" (labels in the exposition's sorted order).
	out := map[string]float64{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsCountRequestsByRouteMethodAndStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	nodeGauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "quorumkv_test_gauge", Help: "registered by the node"})
	nodeGauge.Set(42)
	reg.MustRegister(nodeGauge)
	e := newTestEnv(t, func(c *Config) { c.Metrics = reg })

	e.do("GET", "/kv/items/missing", "", bearer)                           // 404
	e.do("PUT", "/kv/items/k", `{"value": 1}`, bearer)                     // 201
	e.do("GET", "/kv/items/k", "", bearer)                                 // 200
	e.do("GET", "/kv/items/k", "", bearer)                                 // 200
	e.do("BREW", "/kv/items/k", "", bearer)                                // 405, method "other"
	e.do("GET", "/no/such/route/session-usr_abc123", "", "")               // 404 unmatched
	e.do("GET", "/kv/items/k", "", "Bearer wrong-secret-0123456789abcdef") // 401

	got := e.scrape(bearer)
	for series, want := range map[string]float64{
		"quorumkv_http_requests_total{method=GET,route=/kv/items/{key},status=404}":   1,
		"quorumkv_http_requests_total{method=PUT,route=/kv/items/{key},status=201}":   1,
		"quorumkv_http_requests_total{method=GET,route=/kv/items/{key},status=200}":   2,
		"quorumkv_http_requests_total{method=other,route=/kv/items/{key},status=405}": 1,
		"quorumkv_http_requests_total{method=GET,route=unmatched,status=404}":         1,
		"quorumkv_http_requests_total{method=GET,route=/kv/items/{key},status=401}":   1,
		"quorumkv_http_request_duration_seconds{method=GET,route=/kv/items/{key}}":    4,
		"quorumkv_http_request_duration_seconds{method=PUT,route=/kv/items/{key}}":    1,
		"quorumkv_test_gauge{}": 42,
		// By key name: the four authenticated requests and the 405 were made
		// with the default key; the unmatched route and the wrong key had none.
		"quorumkv_http_requests_by_key_total{key=default}": 5,
		"quorumkv_http_requests_by_key_total{key=none}":    2,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	for series := range got {
		if strings.Contains(series, "session-usr_abc123") || strings.Contains(series, "BREW") {
			t.Errorf("a client-chosen string became a label: %s", series)
		}
	}
	// The scrape itself is counted, and counters move.
	e.do("GET", "/kv/items/k", "", bearer)
	got = e.scrape(bearer)
	if v := got["quorumkv_http_requests_total{method=GET,route=/metrics,status=200}"]; v != 1 {
		t.Errorf("first scrape counted %v times, want 1", v)
	}
	if v := got["quorumkv_http_requests_total{method=GET,route=/kv/items/{key},status=200}"]; v != 3 {
		t.Errorf("GET 200 after one more = %v, want 3", v)
	}
}

func TestMetricsNeedTheReadScopeUnlessPublic(t *testing.T) {
	ring, err := NewKeyring([]APIKey{readKey})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *Config) { c.Keys = ring })
	wantError(t, e.do("GET", "/metrics", "", ""), http.StatusUnauthorized, "unauthorized")
	wantError(t, e.do("GET", "/metrics", "", "Bearer wrong-secret-0123456789"), http.StatusUnauthorized, "unauthorized")
	e.scrape("Bearer " + scopeSecrets[ScopeRead])
	e.scrape(bearer) // the admin APIKey

	pub := newTestEnv(t, func(c *Config) { c.MetricsPublic = true })
	got := pub.scrape("")
	if _, ok := got["quorumkv_http_requests_total{method=GET,route=/metrics,status=200}"]; ok {
		t.Error("the first scrape saw itself counted before it was answered")
	}
	pub.scrape("")
	// Public /metrics makes nothing else public.
	wantError(t, pub.do("GET", "/kv/items/k", "", ""), http.StatusUnauthorized, "unauthorized")
	wantError(t, pub.do("GET", "/cluster/status", "", ""), http.StatusUnauthorized, "unauthorized")
}

func TestTwoAPIsOnOneRegistryCollide(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{APIKey: testAPIKey, Metrics: reg}, newFakeStore()); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{APIKey: testAPIKey, Metrics: reg}, newFakeStore()); err == nil {
		t.Fatal("a second API registered the same metrics on the same registry")
	}
}
