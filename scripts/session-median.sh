#!/usr/bin/env bash
# session-median.sh - the session workload (kvbench -workload session: 90 %
# linearizable GET / 10 % PUT with TTL, 16 connections, 10k preloaded keys)
# through the leader, through one follower and round-robin over the three
# nodes, with etcd's same workload through its v3 JSON gateway (leader,
# follower, round-robin over its three members) as the reference. RUNS rounds
# (default 3); in every round each tree, then etcd, runs back to back, so a
# change in the shared machine's load hits every column of one round alike.
# Prints a table of medians over the rounds.
#
#   scripts/session-median.sh                          # this tree, 3 rounds
#   TREES="before=/tmp/old after=." scripts/session-median.sh   # A/B of two source trees
#   RUNS=1 DUR=5s ETCD=0 scripts/session-median.sh     # quick, without etcd
#
# TREES: space-separated LABEL=DIR; DIR is a quorumkv source tree whose
# scripts/cluster.sh builds and starts the cluster (so each tree runs its own
# kvnode). kvbench is built from this tree. "node CPU µs/req" is the three
# kvnode processes' CPU time (/proc/PID/stat) over a row's warmup and run,
# per request: the machine's cost of a request on that path (etcd: not
# sampled). Other knobs: DUR (10s), WARMUP
# (2s), C (16), KEYS (10000), READ_FRACTION (0.9), OUT_DIR (raw JSON and the
# table; default a new /tmp directory). Ports: HTTP 18281-18283, peers
# 19281-19283, etcd 24881-24893; all processes started here are stopped on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
command -v go >/dev/null 2>&1 || export PATH=/usr/local/go/bin:$PATH
runs=${RUNS:-3} dur=${DUR:-10s} warmup=${WARMUP:-2s} conns=${C:-16} keys=${KEYS:-10000}
read_fraction=${READ_FRACTION:-0.9} trees=${TREES:-"this=$repo"} etcd=${ETCD:-1}
http_base=18280 peer_base=19280 etcd_base=24880
out_dir=${OUT_DIR:-$(mktemp -d /tmp/session-median.XXXXXX)}
mkdir -p "$out_dir"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'session-median.sh: %s\n' "$*" >&2; exit 1; }
for tool in jq curl; do command -v "$tool" >/dev/null || die "needs $tool"; done
if ((etcd)) && ! command -v etcd >/dev/null; then
	die "ETCD=1 needs etcd (apt-get install etcd-server etcd-client), or run with ETCD=0"
fi

work=$(mktemp -d /tmp/session-median-work.XXXXXX)
cluster_tree="" etcd_pids=()
stop_cluster() {
	[[ -n $cluster_tree ]] || return 0
	KV_CLUSTER_DIR=$work/cluster "$cluster_tree/scripts/cluster.sh" stop >/dev/null 2>&1 || true
	cluster_tree=""
}
stop_etcd() {
	local pid
	for pid in "${etcd_pids[@]+"${etcd_pids[@]}"}"; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	done
	etcd_pids=()
}
cleanup() {
	set +e
	stop_cluster
	stop_etcd
	rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building kvbench"
(cd "$repo" && go build -o "$work/kvbench" ./cmd/kvbench)

# cpu_ticks PID...: user+system clock ticks each process has used so far.
cpu_ticks() {
	local pid
	for pid in "$@"; do
		if [[ -n $pid && -r /proc/$pid/stat ]]; then
			sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}'
		else
			echo 0
		fi
	done
}

# bench NAME ARGS...: one closed-loop session run, JSON kept as NAME.json.
# When node_pids is set (our trees), NAME.cpu gets each node's CPU seconds
# over the run (warmup included) and NAME.json's request count covers the
# measured part only, so cpu/request is computed with the run's total time.
node_pids=()
bench() {
	local name=$1 before=() after=() hz i
	shift
	((${#node_pids[@]})) && mapfile -t before < <(cpu_ticks "${node_pids[@]}")
	"$work/kvbench" -workload session -read-fraction "$read_fraction" -c "$conns" -d "$dur" -warmup "$warmup" \
		-keys "$keys" -o json "$@" >"$out_dir/$name.json" || die "kvbench $name failed ($*)"
	if ((${#node_pids[@]})); then
		mapfile -t after < <(cpu_ticks "${node_pids[@]}")
		hz=$(getconf CLK_TCK)
		for i in "${!after[@]}"; do printf '%s\n' "$(((after[i] - before[i]) * 1000 / hz))"; done >"$out_dir/$name.cpu"
	fi
	jq -r --arg n "$name" --arg cpu "$( ((${#node_pids[@]})) && paste -sd' ' "$out_dir/$name.cpu")" \
		'"\($n): \(.total.rate | floor) req/s, GET p50 \(.ops.get.latencyMs.p50) p99 \(.ops.get.latencyMs.p99) ms, errors \(.total.errors)\(if $cpu != "" then ", node CPU ms (n1 n2 n3) " + $cpu else "" end)"' \
		"$out_dir/$name.json" >&2
}

run_tree() { # ROUND LABEL DIR
	local round=$1 label=$2 dir=$3 status leader ln fn urls n
	export KV_CLUSTER_DIR=$work/cluster KV_CLUSTER_HTTP_BASE=$http_base KV_CLUSTER_PEER_BASE=$peer_base
	rm -rf -- "$KV_CLUSTER_DIR"
	log "round $round: $label ($dir): starting a cluster"
	cluster_tree=$dir
	"$dir/scripts/cluster.sh" start >"$work/cluster-start.log" 2>&1 || { cat "$work/cluster-start.log" >&2; die "cluster of $label did not start"; }
	export KV_API_KEY
	KV_API_KEY=$(head -n 1 "$KV_CLUSTER_DIR/api-key")
	status=$(curl -fsS --max-time 2 -H "Authorization: Bearer $KV_API_KEY" "http://127.0.0.1:$((http_base + 1))/cluster/status")
	leader=$(jq -r .data.leaderId <<<"$status")
	[[ $leader =~ ^n[1-3]$ ]] || die "$label: no leader ($leader)"
	ln=${leader#n} fn=$((${leader#n} % 3 + 1))
	urls="http://127.0.0.1:$((http_base + 1)),http://127.0.0.1:$((http_base + 2)),http://127.0.0.1:$((http_base + 3))"
	"$work/kvbench" -endpoints "http://127.0.0.1:$((http_base + ln))" -keys "$keys" -preload-only -o json >"$out_dir/r$round-$label-preload.json"
	node_pids=()
	for n in 1 2 3; do node_pids+=("$(cat "$KV_CLUSTER_DIR/n$n/pid" 2>/dev/null || true)"); done
	bench "r$round-$label-leader" -endpoints "http://127.0.0.1:$((http_base + ln))"
	bench "r$round-$label-follower" -endpoints "http://127.0.0.1:$((http_base + fn))"
	bench "r$round-$label-roundrobin" -endpoints "$urls" -endpoint-mode roundrobin
	node_pids=()
	stop_cluster
}

run_etcd() { # ROUND
	local round=$1 n cluster="" endpoints leader="" follower="" u
	for n in 1 2 3; do cluster+="${cluster:+,}e$n=http://127.0.0.1:$((etcd_base + 10 + n))"; done
	rm -rf -- "$work/etcd"
	log "round $round: etcd $(etcd --version | awk '/etcd Version/{print $3}'): starting three members"
	for n in 1 2 3; do
		mkdir -p "$work/etcd/e$n"
		etcd --name "e$n" --data-dir "$work/etcd/e$n/data" \
			--listen-client-urls "http://127.0.0.1:$((etcd_base + n))" --advertise-client-urls "http://127.0.0.1:$((etcd_base + n))" \
			--listen-peer-urls "http://127.0.0.1:$((etcd_base + 10 + n))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_base + 10 + n))" \
			--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token session-median \
			--log-level warn </dev/null >"$work/etcd/e$n.log" 2>&1 &
		etcd_pids+=($!)
	done
	endpoints="http://127.0.0.1:$((etcd_base + 1)),http://127.0.0.1:$((etcd_base + 2)),http://127.0.0.1:$((etcd_base + 3))"
	for _ in $(seq 1 100); do
		leader=$(ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json 2>/dev/null |
			jq -r '.[] | select(.Status.header.member_id == .Status.leader) | .Endpoint' 2>/dev/null | head -n 1) || true
		[[ -n $leader ]] && break
		sleep 0.2
	done
	[[ -n $leader ]] || { tail -n 20 "$work"/etcd/e*.log >&2; die "etcd elected no leader"; }
	for u in ${endpoints//,/ }; do [[ $u == "$leader" ]] || { follower=$u; break; }; done
	"$work/kvbench" -target etcd -endpoints "$leader" -keys "$keys" -preload-only -o json >"$out_dir/r$round-etcd-preload.json"
	bench "r$round-etcd-leader" -target etcd -endpoints "$leader"
	bench "r$round-etcd-follower" -target etcd -endpoints "$follower"
	bench "r$round-etcd-roundrobin" -target etcd -endpoints "$endpoints" -endpoint-mode roundrobin
	stop_etcd
}

labels=()
for round in $(seq "$runs"); do
	for t in $trees; do
		label=${t%%=*} dir=${t#*=}
		[[ -x $dir/scripts/cluster.sh ]] || die "TREES: $dir has no scripts/cluster.sh"
		((round > 1)) || labels+=("$label")
		run_tree "$round" "$label" "$(cd "$dir" && pwd -P)"
	done
	((etcd)) && run_etcd "$round"
done
((etcd)) && labels+=(etcd)

# seconds D: a Go duration of whole s or ms (10s, 500ms) in seconds.
seconds() { awk -v d="$1" 'BEGIN { if (d ~ /ms$/) print substr(d, 1, length(d) - 2) / 1000; else print substr(d, 1, length(d) - 1) + 0 }'; }
run_s=$(awk -v a="$(seconds "$dur")" -v b="$(seconds "$warmup")" 'BEGIN{print a + b}')

# One line per (label, node, round): label node rps getp50 getp99 putp99 errors
# cpu_us_per_request (all three nodes' CPU over warmup and run, divided by the
# measured rate times that time; 0 for etcd, whose CPU is not sampled)
for f in "$out_dir"/r*-*-{leader,follower,roundrobin}.json; do
	b=$(basename "$f" .json)
	round=${b%%-*} round=${round#r} rest=${b#*-} node=${rest##*-} label=${rest%-*}
	cpu_ms=0
	[[ -f $out_dir/$b.cpu ]] && cpu_ms=$(awk '{s += $1} END {print s + 0}' "$out_dir/$b.cpu")
	jq -r --arg l "$label" --arg n "$node" --arg r "$round" --argjson cpu "$cpu_ms" --argjson t "$run_s" \
		'[$l, $n, $r, (.total.rate | floor), .ops.get.latencyMs.p50, .ops.get.latencyMs.p99, (.ops.put.latencyMs.p99 // 0), .total.errors,
		  (if .total.rate > 0 then $cpu * 1000 / (.total.rate * $t) | floor else 0 end)] | @tsv' "$f"
done >"$out_dir/rows.tsv"

{
	echo "Session workload: $(awk -v f="$read_fraction" 'BEGIN{printf "%g", f * 100}') % GET (linearizable) / the rest PUT (ttl 3600 s), c$conns, $keys keys, $dur per row after $warmup warmup; median of $runs rounds."
	echo
	echo "| system | node | req/s | GET p50 ms | GET p99 ms | PUT p99 ms | errors | node CPU µs/req | vs own leader | vs etcd same node | req/s per round |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	awk -F'\t' -v order="${labels[*]}" '
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n == 0 ? 0 : (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ k = $1 "|" $2; rps[k] = rps[k] " " $4; g50[k] = g50[k] " " $5; g99[k] = g99[k] " " $6; p99[k] = p99[k] " " $7; err[k] += $8; cpu[k] = cpu[k] " " $9
	  byround[$1 "|" $2 "|" $3] = $4 }
	END {
		n = split(order, L, " ")
		split("leader follower roundrobin", N, " ")
		for (i = 1; i <= n; i++) for (j = 1; j <= 3; j++) {
			k = L[i] "|" N[j]
			if (!(k in rps)) continue
			# ratios are medians of per-round ratios (same round, back to back)
			own = ""; ref = ""; per = ""
			for (r = 1; r <= 100; r++) {
				if (!((L[i] "|" N[j] "|" r) in byround)) continue
				v = byround[L[i] "|" N[j] "|" r]; per = per (per == "" ? "" : " ") v
				if ((L[i] "|leader|" r) in byround && byround[L[i] "|leader|" r] > 0) own = own " " v / byround[L[i] "|leader|" r]
				if (L[i] != "etcd" && ("etcd|" N[j] "|" r) in byround && byround["etcd|" N[j] "|" r] > 0) ref = ref " " v / byround["etcd|" N[j] "|" r]
			}
			c = median(cpu[k])
			printf "| %s | %s | %.0f | %.2f | %.2f | %.2f | %d | %s | %s | %s | %s |\n", L[i], N[j], median(rps[k]), median(g50[k]), median(g99[k]), median(p99[k]), err[k], (c > 0 ? sprintf("%.0f", c) : "-"),
				(own == "" ? "-" : sprintf("%.0f %%", 100 * median(own))), (ref == "" ? "-" : sprintf("×%.2f", median(ref))), per
		}
	}' "$out_dir/rows.tsv"
} | tee "$out_dir/median.md"
log "raw JSON, rows.tsv and median.md in $out_dir"
