package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/quorumkv/quorumkv/internal/version"
)

// newMetricsRegistry returns this node's Prometheus registry with the Go
// runtime and process collectors and quorumkv_build_info (always 1; its
// labels say which build runs, so a dashboard can count versions during a
// rolling upgrade). The store and the HTTP API register their
// own metrics on it; GET /metrics serves it. It is not the global default
// registry, so nodes in one process (tests) keep their metrics apart.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	v := version.Get()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "quorumkv_build_info",
		Help:        "Always 1; the labels name the version, Go toolchain and source revision this node runs.",
		ConstLabels: prometheus.Labels{"version": v.Version, "goversion": v.GoVersion, "revision": v.Revision},
	})
	build.Set(1)
	reg.MustRegister(build)
	return reg
}
