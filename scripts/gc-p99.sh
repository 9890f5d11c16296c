#!/usr/bin/env bash
# gc-p99.sh: write p99 and memory at a large data set under several GC
# settings (SETTINGS, BINS, KEYS, ROUNDS, SECS, RATE), one cluster in
# alternation; `--help` for details (internal/benchrun).
exec "$(dirname "$0")/kvdev-bench.sh" gc-p99 "$@"
