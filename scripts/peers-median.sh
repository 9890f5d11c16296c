#!/usr/bin/env bash
# peers-median.sh: ../shared/bench/peers.sh (etcd and our cluster under the
# same wrk load) RUNS times against a fresh local cluster, then a table of
# medians; `--help` for details (internal/benchrun).
exec "$(dirname "$0")/kvdev-bench.sh" peers-median "$@"
