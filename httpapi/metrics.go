package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metricsContentType is the Prometheus text exposition format, version 0.0.4,
// which every Prometheus-compatible scraper reads.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// requestBuckets (seconds) span a local stale read (well under a millisecond)
// to the default request deadline (10 s).
var requestBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// methodLabels are the method label values: the standard methods, and
// "other" for anything else a client sends, so a client cannot create series.
var methodLabels = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, "other",
}

// httpMetrics are the API's request metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// byKey counts requests by API key name (never the key), for telling
	// which application or operator drives the load. Names come from the
	// keys file, so the series are bounded; "none" is unauthenticated.
	byKey      *prometheus.CounterVec
	byKeyCache sync.Map // name -> prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_http_requests_total",
			Help: "HTTP API requests answered, by route template (\"unmatched\" for unknown paths), method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quorumkv_http_request_duration_seconds",
			Help:    "Time to answer an HTTP API request (until the response is written), by route template and method.",
			Buckets: requestBuckets,
		}, []string{"route", "method"}),
	}
	m.byKey = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quorumkv_http_requests_by_key_total",
		Help: "HTTP API requests answered, by the name of the API key that made them (\"none\": no valid key).",
	}, []string{"key"})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.byKey} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}
	return m, nil
}

// routeMetrics are one route's series. Children are resolved on first use
// and cached, so a request does no label hashing: one atomic load (duration)
// and one sync.Map load (counter) before the atomic updates.
type routeMetrics struct {
	m     *httpMetrics
	route string
	// duration[i] is the histogram for methodLabels[i], nil until first used.
	duration [len(methodLabels)]atomic.Pointer[observerBox]
	// requests maps methodIndex<<16 | status to its prometheus.Counter.
	requests sync.Map
}

type observerBox struct{ prometheus.Observer }

func (m *httpMetrics) forRoute(route string) *routeMetrics {
	return &routeMetrics{m: m, route: route}
}

func methodIndex(method string) int {
	for i, m := range methodLabels[:len(methodLabels)-1] {
		if m == method {
			return i
		}
	}
	return len(methodLabels) - 1
}

// observe records one answered request.
func (rm *routeMetrics) observe(method string, status int, d time.Duration) {
	i := methodIndex(method)
	obs := rm.duration[i].Load()
	if obs == nil {
		obs = &observerBox{rm.m.duration.WithLabelValues(rm.route, methodLabels[i])}
		rm.duration[i].Store(obs) // a racing store holds the same child
	}
	obs.Observe(d.Seconds())

	key := uint32(i)<<16 | uint32(status&0xffff)
	c, ok := rm.requests.Load(key)
	if !ok {
		c, _ = rm.requests.LoadOrStore(key, rm.m.requests.WithLabelValues(rm.route, methodLabels[i], strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
}

// observeKey counts one request made with the key named name.
func (m *httpMetrics) observeKey(name string) {
	if name == "" {
		name = "none"
	}
	c, ok := m.byKeyCache.Load(name)
	if !ok {
		c, _ = m.byKeyCache.LoadOrStore(name, m.byKey.WithLabelValues(name))
	}
	c.(prometheus.Counter).Inc()
}

// serveMetrics serves GET /metrics: everything registered on the node's registry,
// in the Prometheus text format. It needs the read scope unless
// Config.MetricsPublic; it exposes counts, sizes and timings, never keys or
// values.
func (a *api) serveMetrics(*http.Request) (reply, error) {
	families, err := a.gatherer.Gather()
	if err != nil {
		// Serve what could be gathered (promhttp's ContinueOnError): a broken
		// collector must not blind the operator to everything else.
		a.log.Warn("some metrics could not be gathered", "err", err)
	}
	var buf bytes.Buffer
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return reply{}, fmt.Errorf("httpapi: encode metric %s: %w", mf.GetName(), err)
		}
	}
	body := buf.Bytes()
	return reply{
		status: http.StatusOK,
		header: http.Header{
			"Content-Type":   {metricsContentType},
			"Content-Length": {strconv.Itoa(len(body))},
		},
		stream: func(w http.ResponseWriter) { _, _ = w.Write(body) },
	}, nil
}
