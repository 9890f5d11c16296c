#!/usr/bin/env bash
# snapshot-p99.sh KVBENCH SECONDS RATE: write p99 of 2 s open-loop windows on
# a running scripts/cluster.sh cluster, sorted by whether a raft snapshot ran
# (leader, follower, none). Run without arguments for details (internal/benchrun).
exec "$(dirname "$0")/kvdev-bench.sh" snapshot-p99 "$@"
