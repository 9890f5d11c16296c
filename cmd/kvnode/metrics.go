package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newMetricsRegistry returns this node's Prometheus registry with the Go
// runtime and process collectors and the bridge of raft's own measurements
// (raftmetrics.go). The store and the HTTP API register their own metrics on
// it; GET /metrics serves it. It is not the global default registry, so nodes
// in one process (tests) keep their metrics apart, except raft's: go-metrics
// has one sink per process, which the registry made last receives.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if err := installRaftMetrics(reg); err != nil {
		panic("kvnode: raft metrics bridge: " + err.Error()) // a fresh registry cannot refuse them
	}
	return reg
}
