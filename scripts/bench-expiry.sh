#!/usr/bin/env bash
# bench-expiry.sh: how long a cluster takes to remove EXP_KEYS keys expiring
# in the same second, and the write latency meanwhile. `--help` lists the
# settings (EXP_*); the work is internal/benchrun's.
exec "$(dirname "$0")/kvdev-bench.sh" bench-expiry "$@"
