#!/usr/bin/env bash
# bench.sh: quorumkv's throughput, latency, memory and restart figures on
# this machine (optionally beside etcd), written into BENCHMARKS.md.
# `scripts/bench.sh --help` lists options and BENCH_* settings (internal/benchrun).
exec "$(dirname "$0")/kvdev-bench.sh" bench "$@"
