#!/usr/bin/env bash
# gc-p99.sh - write tail latency and memory at a large data set under several
# garbage-collector settings, measured on one cluster in alternation.
#
#   scripts/gc-p99.sh                                   # defaults below
#   SETTINGS="default: floor50:KV_GC_MIN_PERCENT=50 go:GOGC=100" KEYS=1000000 scripts/gc-p99.sh
#   BINS="old=/tmp/kvnode-old" SETTINGS="old@default: default:" scripts/gc-p99.sh
#
# Starts a three-node scripts/cluster.sh cluster of this tree (KV_CLUSTER_DIR,
# KV_CLUSTER_HTTP_BASE, KV_CLUSTER_PEER_BASE as cluster.sh; default a temporary
# directory and ports 18381-18383 / 19381-19383), preloads KEYS keys of
# 200-byte values (default 1,000,000), then ROUNDS times (default 2) for each
# setting in SETTINGS: restarts all three nodes with that setting's
# environment, and runs scripts/snapshot-p99.sh for SECS seconds (default 40)
# at RATE PUT/s open loop (default 1000), which reports the p99 of 2 s windows
# with no snapshot running. A setting is LABEL[@BIN]:ENV=V,ENV=V (no spaces);
# BIN names a binary in BINS (LABEL=PATH) to run instead of this tree's kvnode.
# Prints per window class the median p99, the leader's GC cycles during the
# windows and its GOGC, and every node's RSS at the end; one table at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
command -v go >/dev/null 2>&1 || export PATH=/usr/local/go/bin:$PATH
keys=${KEYS:-1000000} rounds=${ROUNDS:-2} secs=${SECS:-40} rate=${RATE:-1000}
settings=${SETTINGS:-"default: gogc100:GOGC=100"}
bins=${BINS:-}
export KV_CLUSTER_HTTP_BASE=${KV_CLUSTER_HTTP_BASE:-18380} KV_CLUSTER_PEER_BASE=${KV_CLUSTER_PEER_BASE:-19380}
export KV_CLUSTER_TIMEOUT=${KV_CLUSTER_TIMEOUT:-120}
own_dir=0
if [[ -z ${KV_CLUSTER_DIR:-} ]]; then
	KV_CLUSTER_DIR=$(mktemp -d /tmp/gc-p99.XXXXXX)
	own_dir=1
fi
export KV_CLUSTER_DIR
http_base=$KV_CLUSTER_HTTP_BASE

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'gc-p99.sh: %s\n' "$*" >&2; exit 1; }
for tool in jq curl; do command -v "$tool" >/dev/null || die "needs $tool"; done

work=$(mktemp -d /tmp/gc-p99-work.XXXXXX)
cleanup() {
	set +e
	"$repo/scripts/cluster.sh" stop >/dev/null 2>&1
	rm -rf -- "$work"
	((own_dir)) && rm -rf -- "$KV_CLUSTER_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$repo" && go build -o "$work/kvbench" ./cmd/kvbench)
"$repo/scripts/cluster.sh" start >"$work/start.log" 2>&1 || { cat "$work/start.log" >&2; die "cluster did not start"; }
cp "$KV_CLUSTER_DIR/bin/kvnode" "$work/kvnode-this"
key=$(head -n 1 "$KV_CLUSTER_DIR/api-key")

metric() { # N NAME: node N's metric value
	curl -fsS --max-time 5 -H "Authorization: Bearer $key" "http://127.0.0.1:$((http_base + $1))/metrics" |
		awk -v m="$2" '$1 == m { printf "%.0f\n", $2 }'
}
leader() {
	curl -fsS --max-time 5 -H "Authorization: Bearer $key" "http://127.0.0.1:$((http_base + 1))/cluster/status" | jq -r '.data.leaderId | ltrimstr("n")'
}

log "preloading $keys keys"
"$work/kvbench" -endpoints "http://127.0.0.1:$((http_base + $(leader)))" -api-key-file "$KV_CLUSTER_DIR/api-key" \
	-keys "$keys" -preload-only -preload-c 64 -o json >/dev/null || die "preload failed"

rows=()
for round in $(seq "$rounds"); do
	for s in $settings; do
		label=${s%%:*} envs=${s#*:} bin_label=""
		[[ $label == *@* ]] && bin_label=${label#*@}
		binary=$work/kvnode-this
		if [[ -n $bin_label ]]; then
			binary=""
			for b in $bins; do [[ ${b%%=*} == "$bin_label" ]] && binary=${b#*=}; done
			[[ -x $binary ]] || die "setting $label: no binary $bin_label in BINS"
		fi
		cp "$binary" "$KV_CLUSTER_DIR/bin/kvnode.new" && mv -f "$KV_CLUSTER_DIR/bin/kvnode.new" "$KV_CLUSTER_DIR/bin/kvnode"
		log "round $round: $label (${envs:-no environment}): restarting the nodes"
		for n in 1 2 3; do
			env ${envs//,/ } "$repo/scripts/cluster.sh" restart "$n" >"$work/restart.log" 2>&1 || { cat "$work/restart.log" >&2; die "restart of n$n failed"; }
		done
		ln=$(leader)
		gc0=$(metric "$ln" go_gc_duration_seconds_count)
		"$repo/scripts/snapshot-p99.sh" "$work/kvbench" "$secs" "$rate" >"$work/p99.txt"
		gc1=$(metric "$ln" go_gc_duration_seconds_count)
		gogc=$(metric "$ln" go_gc_gogc_percent)
		rss=$(for n in 1 2 3; do echo "$(($(metric "$n" process_resident_memory_bytes) >> 20))"; done | paste -sd/)
		none=$(awk '/^none:/ { print $6 }' "$work/p99.txt")
		windows=$(awk '/^none:/ { print $2 }' "$work/p99.txt")
		all=$(grep -E '^(none|leader|follower):' "$work/p99.txt" | paste -sd';')
		log "  $all; leader GC cycles $((gc1 - gc0)), GOGC $gogc, RSS MiB $rss"
		rows+=("| $round | $label | ${envs:--} | ${none:-n/a} (${windows:-0}) | $((gc1 - gc0)) | $gogc | $rss |")
	done
done

echo "Write p99 at $keys keys, open loop $rate PUT/s on the leader, 2 s windows for ${secs} s per setting and round."
echo
echo "| round | setting | environment | p99 ms, median of windows without a snapshot (windows) | leader GC cycles | leader GOGC at end | RSS MiB n1/n2/n3 |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
