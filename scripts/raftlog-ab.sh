#!/usr/bin/env bash
# raftlog-ab.sh: PUT throughput and p99 of the bolt and wal raft log stores,
# alternating per round (RUNS, C, D, OUT_DIR); `--help` for details
# (internal/benchrun).
exec "$(dirname "$0")/kvdev-bench.sh" raftlog-ab "$@"
