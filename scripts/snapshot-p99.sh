#!/usr/bin/env bash
# snapshot-p99.sh measures what a raft snapshot does to write latency on a
# running scripts/cluster.sh cluster.
#
# Usage: scripts/snapshot-p99.sh KVBENCH SECONDS RATE
#
# Runs back-to-back open-loop kvbench write windows (-rate RATE, 2 s measured
# after 0.5 s of warmup each) against the leader for about SECONDS, while the
# nodes take raft snapshots on their own schedule (SnapshotThreshold entries,
# checked every SnapshotInterval). Afterwards it reads each node's log for
# "starting snapshot up to" / "snapshot complete up to" and sorts every window
# into: leader snapshotting, a follower snapshotting (leader not), or none.
# Prints one line per window and, per class, the number of windows and the
# median and max of their p99 (ms). Uses the same environment as cluster.sh
# (KV_CLUSTER_DIR, KV_CLUSTER_HTTP_BASE). Writes under the key prefix snapw-,
# over the keys session-* of the data set it does not touch.
set -euo pipefail

[[ $# == 3 ]] || { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
kvbench=$1 seconds=$2 rate=$3
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cluster_dir=$(realpath -m -- "${KV_CLUSTER_DIR:-$repo_root/.cluster}")
http_base=${KV_CLUSTER_HTTP_BASE:-8080}
key_file=$cluster_dir/api-key
api_key=$(head -n 1 "$key_file")

leader=$(curl -fsS --max-time 2 -H "Authorization: Bearer $api_key" "http://127.0.0.1:$((http_base + 1))/cluster/status" | jq -r .data.leaderId)
[[ $leader =~ ^n[1-9]$ ]] || { echo "snapshot-p99.sh: no leader ($leader)" >&2; exit 1; }
url=http://127.0.0.1:$((http_base + ${leader#n}))

windows=$(mktemp)
trap 'rm -f "$windows"' EXIT
end=$((SECONDS + seconds))
while ((SECONDS < end)); do
	t0=$(date +%s.%N)
	p99=$("$kvbench" -endpoints "$url" -api-key-file "$key_file" -workload write -key-prefix snapw- -keys 10000 \
		-rate "$rate" -c 64 -warmup 500ms -d 2s -o json | jq -r '.total.latencyMs.p99')
	printf '%s %s %s\n' "$(awk -v t="$t0" 'BEGIN{printf "%.3f", t + 0.5}')" "$(date +%s.%N)" "$p99" >>"$windows"
done

# Snapshot intervals per node as "node start end" (epoch seconds).
intervals=$(for d in "$cluster_dir"/n[0-9]; do
	jq -r --arg n "$(basename "$d")" 'select(.msg == "starting snapshot up to" or .msg == "snapshot complete up to")
		| "\($n) \(.msg | split(" ")[0]) \(.time)"' "$d/kvnode.log" 2>/dev/null
done | while read -r n what ts; do printf '%s %s %s\n' "$n" "$what" "$(date -d "$ts" +%s.%N)"; done |
	awk '$2 == "starting" { s[$1] = $3 } $2 == "snapshot" && ($1 in s) { print $1, s[$1], $3; delete s[$1] }')

awk -v leader="$leader" -v iv="$intervals" '
BEGIN { n = split(iv, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); node[i] = f[1]; a[i] = f[2]; b[i] = f[3] } }
{
	cls = "none"
	for (i = 1; i <= n; i++) if (a[i] < $2 && b[i] > $1) {
		if (node[i] == leader) cls = "leader"; else if (cls == "none") cls = "follower"
	}
	printf "window %.1f-%.1f p99 %s ms (%s snapshot)\n", $1, $2, $3, cls
	v[cls] = v[cls] " " $3
}
END {
	for (c in v) {
		k = split(substr(v[c], 2), x, " ")
		for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
		printf "%s: %d windows, p99 median %.2f ms, max %.2f ms\n", c, k, x[int((k + 1) / 2)], x[k]
	}
}' "$windows"
