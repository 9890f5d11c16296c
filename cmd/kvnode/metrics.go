package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newMetricsRegistry returns this node's Prometheus registry with the Go
// runtime and process collectors. The store and the HTTP API register their
// own metrics on it; GET /metrics serves it. It is not the global default
// registry, so nodes in one process (tests) keep their metrics apart.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
