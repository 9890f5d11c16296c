#!/usr/bin/env bash
# peers-median.sh - the peer comparison: the shared peer harness
# (../shared/bench/peers.sh: etcd and our cluster under the same wrk load)
# run RUNS times (default 3) against a fresh local three-node cluster, then a
# table of medians per target row: our req/s, etcd's, the ratio (median of the
# per-run ratios) and both p99s.
#
#   scripts/peers-median.sh                 # 3 runs, ~10 minutes
#   RUNS=1 scripts/peers-median.sh          # one run
#   PEERS=/path/to/peers.sh OUT_DIR=/tmp/x scripts/peers-median.sh
#
# The cluster uses HTTP ports 18081-18083 and peer ports 19081-19083 (peers.sh
# owns 23791-23803 and 26379+), in a temporary directory removed at the end.
# Every run's full table is kept in OUT_DIR (default: a new /tmp directory).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS:-$repo/../shared/bench/peers.sh}
runs=${RUNS:-3}
out_dir=${OUT_DIR:-$(mktemp -d /tmp/peers-median.XXXXXX)}
[[ -x $peers ]] || { echo "peers-median.sh: no peer harness at $peers (set PEERS)" >&2; exit 2; }
mkdir -p "$out_dir"

export KV_CLUSTER_DIR KV_CLUSTER_HTTP_BASE=18080 KV_CLUSTER_PEER_BASE=19080
KV_CLUSTER_DIR=$(mktemp -d /tmp/peers-median-cluster.XXXXXX)
cleanup() {
	"$repo/scripts/cluster.sh" stop >/dev/null 2>&1 || true
	rm -rf -- "$KV_CLUSTER_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$repo/scripts/cluster.sh" start >&2
token=$(<"$KV_CLUSTER_DIR/api-key")

# role N prints the raft state node N reports.
role() {
	curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$((KV_CLUSTER_HTTP_BASE + $1))/cluster/status" |
		sed -n 's/.*"state":"\([A-Za-z]*\)".*/\1/p'
}

for i in $(seq "$runs"); do
	leader="" follower=""
	for n in 1 2 3; do
		case $(role "$n") in
		Leader) leader=$n ;;
		Follower) [[ -n $follower ]] || follower=$n ;;
		esac
	done
	[[ -n $leader && -n $follower ]] || { echo "peers-median.sh: no leader/follower found" >&2; exit 1; }
	echo "peers-median.sh: run $i of $runs (leader n$leader, follower n$follower)" >&2
	KV_TOKEN=$token KV_LEADER_URL=http://127.0.0.1:$((KV_CLUSTER_HTTP_BASE + leader)) \
		KV_FOLLOWER_URL=http://127.0.0.1:$((KV_CLUSTER_HTTP_BASE + follower)) \
		OUT=$out_dir/run$i.md "$peers" >/dev/null
done

# Median table. A peers.sh row: | system | op | node | conns | req/s | p50 | p99 | non-2xx | check |
awk -F'|' -v runs="$runs" '
function trim(s) { gsub(/^ +| +$/, "", s); return s }
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n == 0) return "n/a"
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
FNR == 1 { run++ }
/^\| (etcd|ours)/ {
	sys = trim($2); op = trim($3); node = trim($4); c = trim($5); rps = trim($6); p99 = trim($8)
	if (sys ~ /^etcd/) { erps[op "|" node "|" c, run] = rps; ep99[op "|" node "|" c, run] = p99; next }
	k = op "|" node "|" c
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	ours[k] = ours[k] " " rps; op99[k] = op99[k] " " p99
	peer = (op == "kv-put") ? "put" : (op == "kv-get") ? "get-lin" : "get-ser"
	pk = peer "|" node "|" c
	if ((pk, run) in erps && erps[pk, run] + 0 > 0) {
		theirs[k] = theirs[k] " " erps[pk, run]; tp99[k] = tp99[k] " " ep99[pk, run]
		ratio[k] = ratio[k] " " sprintf("%.3f", rps / erps[pk, run])
	}
}
END {
	printf "| op | node | conns | ours req/s | etcd req/s | ratio (median of %d) | ratios per run | p99 ours ms | p99 etcd ms |\n", runs
	print "|---|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, f, "|")
		printf "| %s | %s | %s | %.0f | %.0f | ×%.2f | %s | %.1f | %.1f |\n", f[1], f[2], f[3], median(ours[k]), median(theirs[k]), median(ratio[k]), trim(ratio[k]), median(op99[k]), median(tp99[k])
	}
}' "$out_dir"/run*.md | tee "$out_dir/median.md"
echo "peers-median.sh: per-run tables and median.md in $out_dir" >&2
