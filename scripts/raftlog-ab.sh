#!/usr/bin/env bash
# raftlog-ab.sh - PUT throughput and p99 of the two raft log stores, measured
# alternately in one run: for each of RUNS rounds, a fresh three-node cluster
# (scripts/cluster.sh, peer mutual TLS on) with KV_RAFT_LOG=bolt, then one with
# KV_RAFT_LOG=wal; on each, kvbench's write workload (PUT with TTL, 200-byte
# values) at C connections for D against the leader, then against a follower.
# Alternating spreads a shared machine's load over both stores; compare the
# per-round ratios, not absolute figures.
#
#   scripts/raftlog-ab.sh                    # RUNS=3 C=64 D=10s, ~4 minutes
#   RUNS=1 D=5s scripts/raftlog-ab.sh
#
# Ports: KV_CLUSTER_HTTP_BASE / KV_CLUSTER_PEER_BASE (default 18080 / 19080).
# Raw kvbench JSON stays in OUT_DIR (default: a new /tmp directory).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-3} conns=${C:-64} dur=${D:-10s}
out_dir=${OUT_DIR:-$(mktemp -d /tmp/raftlog-ab.XXXXXX)}
export KV_CLUSTER_HTTP_BASE=${KV_CLUSTER_HTTP_BASE:-18080} KV_CLUSTER_PEER_BASE=${KV_CLUSTER_PEER_BASE:-19080}
export KV_CLUSTER_DIR=""
mkdir -p "$out_dir"
(cd "$repo" && go build -o "$out_dir/kvbench" ./cmd/kvbench)
cleanup() {
	if [[ -n $KV_CLUSTER_DIR ]]; then
		"$repo/scripts/cluster.sh" stop >/dev/null 2>&1 || true
		rm -rf -- "$KV_CLUSTER_DIR"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status() { curl -fsS -H "Authorization: Bearer $key" "http://127.0.0.1:$((KV_CLUSTER_HTTP_BASE + $1))/cluster/status"; }
for ((round = 1; round <= runs; round++)); do
	for store in bolt wal; do
		KV_CLUSTER_DIR=$(mktemp -d /tmp/raftlog-ab-cluster.XXXXXX)
		KV_RAFT_LOG=$store "$repo/scripts/cluster.sh" start >"$out_dir/start-$store-$round.log" 2>&1
		key=$(<"$KV_CLUSTER_DIR/api-key")
		leader="" follower=""
		for n in 1 2 3; do
			st=$(status $n)
			[[ $st == *"\"raftLog\":\"$store\""* ]] || { echo "node $n does not run $store: $st" >&2; exit 1; }
			if [[ $st == *'"state":"Leader"'* ]]; then leader=$n; else follower=$n; fi
		done
		for role in leader follower; do
			KV_API_KEY=$key "$out_dir/kvbench" -endpoints "http://127.0.0.1:$((KV_CLUSTER_HTTP_BASE + ${!role}))" \
				-workload write -c "$conns" -d "$dur" -warmup 2s -o json >"$out_dir/$store-$role-$round.json"
		done
		cleanup
		KV_CLUSTER_DIR=""
	done
done

# One row per round and role: both stores' rate and p99, and wal's ratios.
printf '| round | node | bolt PUT/s | bolt p99 ms | wal PUT/s | wal p99 ms | wal/bolt PUT/s | wal/bolt p99 |\n|---|---|---|---|---|---|---|---|\n'
field() { sed -n "$2" "$1" | head -1; }
for role in leader follower; do
	for ((round = 1; round <= runs; round++)); do
		b="$out_dir/bolt-$role-$round.json" w="$out_dir/wal-$role-$round.json"
		rb=$(field "$b" 's/.*"rate": \([0-9.]*\).*/\1/p') rw=$(field "$w" 's/.*"rate": \([0-9.]*\).*/\1/p')
		pb=$(field "$b" 's/.*"p99": \([0-9.]*\).*/\1/p') pw=$(field "$w" 's/.*"p99": \([0-9.]*\).*/\1/p')
		awk -v r="$round" -v n="$role" -v rb="$rb" -v rw="$rw" -v pb="$pb" -v pw="$pw" \
			'BEGIN { printf "| %d | %s | %.0f | %.1f | %.0f | %.1f | x%.2f | x%.2f |\n", r, n, rb, pb, rw, pw, rw / rb, pw / pb }'
	done
done
echo "raw kvbench JSON: $out_dir" >&2
