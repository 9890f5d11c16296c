#!/usr/bin/env bash
# kvdev-bench.sh NAME [ARGS]: builds cmd/kvdev and runs `kvdev bench NAME`
# (internal/benchrun), the Go behind the benchmark scripts; NAME.sh calls it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
command -v go >/dev/null 2>&1 || export PATH=/usr/local/go/bin:$PATH
bin=${KV_BENCH_BIN:-$repo/.cluster/bin} && mkdir -p "$bin"
lock=() && command -v flock >/dev/null 2>&1 && lock=(flock "$bin/.build-lock")
(cd "$repo" && "${lock[@]}" go build -o "$bin/kvdev" ./cmd/kvdev) || { echo "$1.sh: go build ./cmd/kvdev failed" >&2; exit 1; }
exec "$bin/kvdev" --repo "$repo" --name "$1.sh" bench "$@"
