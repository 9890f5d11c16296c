#!/usr/bin/env bash
# bench-expiry.sh measures mass expiry: how long a three-node
# cluster takes to physically remove EXP_KEYS keys that expire in the same
# second, and what that does to the latency of writes to other keys.
# Everything it starts, it stops (EXIT trap).
#
# Usage: scripts/bench-expiry.sh
#
#   1. builds kvbench and starts a fresh cluster with scripts/cluster.sh in a
#      temporary KV_CLUSTER_DIR (HTTP on EXP_HTTP_BASE+1..3, peers on
#      EXP_PEER_BASE+1..3)
#   2. preloads EXP_LOAD_KEYS keys "load-NNNNN" (TTL 1 h): the key space of
#      the write load, so the load never changes the number of keys
#   3. picks an expiry instant T (EXP_LEAD seconds ahead) and preloads
#      EXP_KEYS keys in chunks of EXP_CHUNK ("exp-CCC-NNNNN"); each chunk gets
#      ttlSeconds = T - (chunk start), so every key expires in [T, T + the
#      longest chunk's duration]; the spread is printed
#   4. runs an open-loop write load (kvbench -workload write -rate EXP_RATE
#      -c 64, on the leader) in three back-to-back windows of EXP_WINDOW
#      seconds (each after a 1 s warmup): "before" ends 1.5 s before T,
#      "expiry" starts 0.5 s before T, "after" follows it; prints each
#      window's p50/p99/p99.9 and the expiry window's p99 over the before and
#      after windows' (the machine is shared: a ratio far below 1 means the
#      baseline window was disturbed, so both are shown)
#   5. from T on, polls /metrics of every node (quorumkv_fsm_keys,
#      quorumkv_fsm_value_bytes, quorumkv_expirations_applied_total) every
#      50 ms and prints, per node, the time after T at which its state machine
#      held no expiring key any more (keys back to EXP_LOAD_KEYS)
#
# Environment: EXP_KEYS (100000), EXP_CHUNK (2000), EXP_LOAD_KEYS (10000),
# EXP_RATE (1000), EXP_WINDOW (5), EXP_LEAD (seconds from the start of the
# expiring preload to T; default: twice its duration estimated from the rate
# of the load-key preload, + 20), EXP_RUNS (1: repetitions,
# each on a fresh cluster), EXP_HTTP_BASE (38080), EXP_PEER_BASE (39080),
# EXP_SNAPSHOT_THRESHOLD (1000000: the nodes' --snapshot-threshold, so that no
# snapshot, which stalls writes by itself, falls into a window; the report
# counts the snapshots taken in each window anyway), EXP_KEEP=1 keeps the work
# directory. KV_* settings pass through to kvnode.
# The default ports stay clear of cluster.sh's (8081-8083, 9081-9083) and
# bench.sh's (18181-18183, 19181-19183).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

case ${1-} in
-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
"") ;;
*) echo "bench-expiry.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

exp_keys=${EXP_KEYS:-100000}
chunk=${EXP_CHUNK:-1000}
load_keys=${EXP_LOAD_KEYS:-10000}
rate=${EXP_RATE:-1000}
window=${EXP_WINDOW:-5}
lead=${EXP_LEAD:-}
runs=${EXP_RUNS:-1}
http_base=${EXP_HTTP_BASE:-38080}
peer_base=${EXP_PEER_BASE:-39080}

command -v go >/dev/null 2>&1 || export PATH=/usr/local/go/bin:$PATH
for tool in jq curl awk; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench-expiry.sh: needs $tool" >&2; exit 1; }
done

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench-expiry.sh: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a - b}'; }

work=$(mktemp -d "${TMPDIR:-/tmp}/quorumkv-bench-expiry.XXXXXX")
export KV_CLUSTER_DIR=$work/cluster KV_CLUSTER_HTTP_BASE=$http_base KV_CLUSTER_PEER_BASE=$peer_base
export KV_SNAPSHOT_THRESHOLD=${EXP_SNAPSHOT_THRESHOLD:-1000000}
unset KV_API_KEY
cluster_started=0
bg_pids=()

cleanup() {
	set +e
	local pid
	for pid in "${bg_pids[@]+"${bg_pids[@]}"}"; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	((cluster_started)) && scripts/cluster.sh stop >/dev/null
	if [[ ${EXP_KEEP:-0} == 1 ]]; then
		log "work directory kept: $work"
	else
		rm -rf -- "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building kvbench"
go build -o "$work/kvbench" ./cmd/kvbench

node_url() { printf 'http://127.0.0.1:%d' $((http_base + $1)); }

# metric N NAME: the value of an unlabelled metric on node N.
metric() {
	curl -fsS --max-time 1 -K <(printf 'header = "Authorization: Bearer %s"\n' "$api_key") "$(node_url "$1")/metrics" |
		awk -v m="$2" '$1 == m && !done {print $2; done = 1}'
}

# snapshots: snapshots taken so far by the three nodes together (they stall
# writes for a moment, so the report says which windows had one).
snapshots() {
	local n total=0 v
	for n in 1 2 3; do
		v=$(curl -fsS --max-time 1 -K <(printf 'header = "Authorization: Bearer %s"\n' "$api_key") "$(node_url "$n")/metrics" |
			awk '$1 ~ /^quorumkv_snapshots_total/ {s += $2} END {print s + 0}')
		total=$((total + v))
	done
	echo "$total"
}

# poll_removal T: prints one line per node, "N SECONDS", when its state
# machine holds at most load_keys entries again (SECONDS after T); gives up
# after 60 s (prints "N timeout").
poll_removal() {
	local t=$1 n keys pending=(1 2 3) left
	while ((${#pending[@]} > 0)); do
		left=()
		for n in "${pending[@]}"; do
			keys=$(metric "$n" quorumkv_fsm_keys 2>/dev/null || echo x)
			if [[ $keys =~ ^[0-9.e+]+$ ]] && awk -v k="$keys" -v l="$load_keys" 'BEGIN{exit !(k + 0 <= l)}'; then
				echo "$n $(fsub "$(now)" "$t")"
			else
				left+=("$n")
			fi
		done
		pending=("${left[@]+"${left[@]}"}")
		if awk -v a="$(now)" -v t="$t" 'BEGIN{exit !(a - t > 60)}'; then
			for n in "${pending[@]+"${pending[@]}"}"; do echo "$n timeout"; done
			return
		fi
		sleep 0.05
	done
}

# sleep_until T: sleeps until the wall clock reaches T (seconds, fractional).
sleep_until() {
	local d
	d=$(fsub "$1" "$(now)")
	awk -v d="$d" 'BEGIN{exit !(d > 0)}' && sleep "$d"
	return 0
}

# load_window NAME: an open-loop write run of `window` seconds after a 1 s
# warmup; prints "p50 p99 p99.9 rate errors snapshots-taken-meanwhile".
load_window() {
	local s0
	s0=$(snapshots)
	"$work/kvbench" -endpoints "$leader_url" -workload write -key-prefix load- -keys "$load_keys" \
		-value-size 200 -ttl 3600 -rate "$rate" -c 64 -warmup 1s -d "${window}s" -o json >"$work/$1.json" ||
		die "kvbench $1 failed"
	jq -r --argjson snaps $(($(snapshots) - s0)) '[.total.latencyMs.p50, .total.latencyMs.p99, .total.latencyMs["p99.9"], (.total.rate | floor), .total.errors, $snaps] | @tsv' "$work/$1.json"
}

one_run() {
	local run=$1
	log "run $run: starting a three-node cluster in $KV_CLUSTER_DIR (HTTP $((http_base + 1))-$((http_base + 3)))"
	rm -rf -- "$KV_CLUSTER_DIR"
	cluster_started=1
	scripts/cluster.sh start >"$work/cluster-start.log" 2>&1 || { cat "$work/cluster-start.log" >&2; die "cluster did not start"; }
	api_key=$(head -n 1 "$KV_CLUSTER_DIR/api-key")
	export KV_API_KEY=$api_key
	local leader_id
	leader_id=$(curl -fsS --max-time 2 -K <(printf 'header = "Authorization: Bearer %s"\n' "$api_key") "$(node_url 1)/cluster/status" | jq -r .data.leaderId)
	[[ $leader_id =~ ^n[1-3]$ ]] || die "no leader: $leader_id"
	leader_url=$(node_url "${leader_id#n}")

	log "preloading $load_keys load keys"
	"$work/kvbench" -endpoints "$leader_url" -workload write -key-prefix load- -keys "$load_keys" \
		-value-size 200 -ttl 3600 -preload-only -preload-c 64 -o json >"$work/preload-$run.json" || die "load preload failed"

	local t_exp c nchunks t0 t1 ttl spread=0 d run_lead=$lead
	[[ -n $run_lead ]] || run_lead=$(jq -r --argjson n "$exp_keys" '2 * $n / .preload.rate + 20 | ceil' "$work/preload-$run.json")
	t_exp=$(($(date +%s) + run_lead))
	nchunks=$(((exp_keys + chunk - 1) / chunk))
	log "preloading $exp_keys expiring keys in $nchunks chunks, all expiring at $(date -d "@$t_exp" +%T)"
	for ((c = 0; c < nchunks; c++)); do
		local n=$chunk
		((c < nchunks - 1)) || n=$((exp_keys - c * chunk))
		t0=$(now)
		ttl=$(fsub "$t_exp" "$t0")
		awk -v t="$ttl" 'BEGIN{exit !(t > 12)}' || die "preload too slow: raise EXP_LEAD (chunk $c of $nchunks at T-${ttl}s)"
		"$work/kvbench" -endpoints "$leader_url" -workload write -key-prefix "$(printf 'exp-%03d-' "$c")" -keys "$n" \
			-value-size 200 -ttl "$ttl" -preload-only -preload-c 64 -o json >/dev/null || die "expiring preload chunk $c failed"
		t1=$(now)
		d=$(fsub "$t1" "$t0")
		spread=$(awk -v a="$spread" -v b="$d" 'BEGIN{print (b > a ? b : a)}')
	done
	log "expiring keys preloaded; expiry instants span [T, T+${spread}s]; T is in $(fsub "$t_exp" "$(now)")s"

	local keys_before
	keys_before=$(metric "${leader_id#n}" quorumkv_fsm_keys)
	log "leader holds $keys_before keys"

	# Measured windows: before [T-1.5-window, T-1.5], expiry [T-0.5, T-0.5+window], after it.
	sleep_until "$(fsub "$t_exp" "$((window + 1))" | awk '{printf "%.3f", $1 - 1.5}')"
	log "before window"
	local base exp_w after
	base=$(load_window "run$run-before")
	sleep_until "$(fsub "$t_exp" 1.5)"
	poll_removal "$t_exp" >"$work/removal-$run.txt" &
	bg_pids+=($!)
	log "expiry window"
	exp_w=$(load_window "run$run-expiry")
	log "after window"
	after=$(load_window "run$run-after")
	wait "${bg_pids[-1]}" || true
	unset 'bg_pids[-1]'

	local b50 b99 b999 brate berr bsn e50 e99 e999 erate eerr esn a50 a99 a999 arate aerr asn
	read -r b50 b99 b999 brate berr bsn <<<"$base"
	read -r e50 e99 e999 erate eerr esn <<<"$exp_w"
	read -r a50 a99 a999 arate aerr asn <<<"$after"
	printf 'run %d: %d keys expiring at T (spread %.2fs), load %s req/s open loop c64 on the leader (%s)\n' \
		"$run" "$exp_keys" "$spread" "$rate" "$leader_id"
	printf '  write before window: p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  (%s req/s, %s errors, %s snapshots)\n' "$b50" "$b99" "$b999" "$brate" "$berr" "$bsn"
	printf '  write expiry window: p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  (%s req/s, %s errors, %s snapshots)\n' "$e50" "$e99" "$e999" "$erate" "$eerr" "$esn"
	printf '  write after window:  p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  (%s req/s, %s errors, %s snapshots)\n' "$a50" "$a99" "$a999" "$arate" "$aerr" "$asn"
	printf '  p99 ratio expiry/before: %s  expiry/after: %s\n' "$(awk -v a="$e99" -v b="$b99" 'BEGIN{printf "%.2f", a / b}')" \
		"$(awk -v a="$e99" -v b="$a99" 'BEGIN{printf "%.2f", a / b}')"
	local n s
	while read -r n s; do
		if [[ $s == timeout ]]; then
			printf '  n%s: expiring keys still present 60 s after T\n' "$n"
			continue
		fi
		printf '  n%s: no expiring key left at T+%ss, T+%ss after the last expiry (applied expirations %.0f, value bytes %.0f)\n' "$n" "$s" "$(fsub "$s" "$spread")" \
			"$(metric "$n" quorumkv_expirations_applied_total)" "$(metric "$n" quorumkv_fsm_value_bytes)"
	done <"$work/removal-$run.txt"

	scripts/cluster.sh stop >/dev/null
	cluster_started=0
}

for ((r = 1; r <= runs; r++)); do
	one_run "$r"
done
