#!/usr/bin/env bash
# session-median.sh: the session workload through leader, follower and
# round-robin, with etcd as the reference; a table of medians over RUNS rounds.
# `scripts/session-median.sh --help` lists the settings (internal/benchrun).
exec "$(dirname "$0")/kvdev-bench.sh" session-median "$@"
