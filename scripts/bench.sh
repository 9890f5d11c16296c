#!/usr/bin/env bash
# bench.sh measures quorumkv on this machine and regenerates the results
# section of BENCHMARKS.md. Everything it starts, it stops (EXIT trap), and it
# leaves no state behind except the raw results it names at the end.
#
# Usage: scripts/bench.sh [--compare-etcd] [--memory-keys N] [--no-write] [--quick]
#
#   1. builds kvbench, starts a fresh three-node cluster with scripts/cluster.sh
#      in a temporary KV_CLUSTER_DIR (HTTP on BENCH_HTTP_BASE+1..3, peers on
#      BENCH_PEER_BASE+1..3), preloads BENCH_KEYS keys of 200-byte values
#   2. closed-loop kvbench runs on the leader and on one follower, at every
#      concurrency in BENCH_CONNS: write (PUT with TTL), read (linearizable GET),
#      read with ?consistency=stale, session (90/10) and counter (incr) once
#   3. RSS of every node, and the restart time of a follower: SIGKILL, start
#      on the same data, until it answers a linearizable GET of a preloaded key
#   4. --memory-keys N: preloads N more keys and measures RSS and restart time
#      again (the issue's 1,000,000-key target: --memory-keys 1000000), then
#      write p99 in 2 s open-loop windows with and without a raft snapshot
#      running (scripts/snapshot-p99.sh, BENCH_SNAP_SECONDS (120) at
#      BENCH_SNAP_RATE (1000) writes/s)
#   5. --compare-etcd: installs etcd from Debian's packages when missing, starts
#      a local three-member etcd (client ports BENCH_ETCD_BASE+1..3, peer ports
#      BENCH_ETCD_BASE+11..13) beside the cluster, and right after each write,
#      read and stale-read row runs the same kvbench load through etcd's v3
#      JSON gateway (-target etcd: put, linearizable and serializable range);
#      every such quorumkv row carries the ratio to its etcd row
#   6. writes the results between the markers in BENCHMARKS.md (unless
#      --no-write) and prints them
#
# Environment: BENCH_DUR (10s), BENCH_WARMUP (2s), BENCH_CONNS ("16 64"),
# BENCH_KEYS (10000), BENCH_HTTP_BASE (18180), BENCH_PEER_BASE (19180),
# BENCH_ETCD_BASE (24780), BENCH_KEEP=1 keeps the work directory.
# --quick is BENCH_DUR=3s BENCH_WARMUP=1s BENCH_CONNS=16 (for trying the script).
# The ports default away from 23791-23803 and 26379+ (the shared peer harness)
# and from cluster.sh's defaults (8081-8083, 9081-9083).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

compare_etcd=0 memory_keys=0 write_md=1
while (($# > 0)); do
	case $1 in
	--compare-etcd) compare_etcd=1 ;;
	--memory-keys)
		shift
		[[ ${1-} =~ ^[0-9]+$ ]] || { echo "bench.sh: --memory-keys needs a number" >&2; exit 2; }
		memory_keys=$1
		;;
	--no-write) write_md=0 ;;
	--quick) BENCH_DUR=${BENCH_DUR:-3s} BENCH_WARMUP=${BENCH_WARMUP:-1s} BENCH_CONNS=${BENCH_CONNS:-16} ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done

dur=${BENCH_DUR:-10s}
warmup=${BENCH_WARMUP:-2s}
conns=${BENCH_CONNS:-16 64}
keys=${BENCH_KEYS:-10000}
http_base=${BENCH_HTTP_BASE:-18180}
peer_base=${BENCH_PEER_BASE:-19180}
etcd_base=${BENCH_ETCD_BASE:-24780}

command -v go >/dev/null 2>&1 || export PATH=/usr/local/go/bin:$PATH

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

install_packages() {
	command -v apt-get >/dev/null 2>&1 || die "missing $*: install them (no apt-get here)"
	local sudo=()
	((EUID == 0)) || sudo=(sudo)
	log "installing $* with apt-get"
	"${sudo[@]}" apt-get update -qq >/dev/null
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v jq >/dev/null 2>&1 || install_packages jq
command -v curl >/dev/null 2>&1 || install_packages curl
if ((compare_etcd)) && ! command -v etcd >/dev/null 2>&1; then
	install_packages etcd-server etcd-client
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/quorumkv-bench.XXXXXX")
export KV_CLUSTER_DIR=$work/cluster KV_CLUSTER_HTTP_BASE=$http_base KV_CLUSTER_PEER_BASE=$peer_base
unset KV_API_KEY
cluster_started=0
etcd_pids=()

cleanup() {
	set +e
	((cluster_started)) && scripts/cluster.sh stop >/dev/null
	local pid
	for pid in "${etcd_pids[@]+"${etcd_pids[@]}"}"; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		log "work directory kept: $work"
	else
		# keep the raw results, drop data dirs and binaries
		mkdir -p "$results_dir" && cp -r "$work/json" "$results_dir/" 2>/dev/null
		rm -rf -- "$work"
	fi
}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results_dir=${TMPDIR:-/tmp}/quorumkv-bench-results-$stamp
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/json"
log "building kvbench"
go build -o "$work/kvbench" ./cmd/kvbench

# ---------------------------------------------------------------- helpers
rows=()          # markdown table rows of the throughput table
declare -A etcd_rps=()
notes=()

cpu_snap() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6, $9}' /proc/stat; }
cpu_delta() {
	local b0 i0 s0 b1 i1 s1 t
	read -r b0 i0 s0 <<<"$1"
	read -r b1 i1 s1 <<<"$2"
	t=$(((b1 - b0) + (i1 - i0) + (s1 - s0)))
	((t > 0)) || t=1
	echo "cpu $((100 * (b1 - b0) / t))%, steal $((100 * (s1 - s0) / t))%"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 > 0) printf "%.2f", a / b; else printf "n/a" }'; }

# bench NAME ARGS...: one kvbench run; its JSON goes to json/NAME.json and
# the row fields to stdout: rps p50 p99 p999 errors errsummary cpu.
bench() {
	local name=$1 c0 c1
	shift
	c0=$(cpu_snap)
	"$work/kvbench" -d "$dur" -warmup "$warmup" -keys "$keys" -o json "$@" >"$work/json/$name.json" ||
		die "kvbench $name failed (arguments: $*)"
	c1=$(cpu_snap)
	jq -r --arg cpu "$(cpu_delta "$c0" "$c1")" '[
		(.total.rate | floor), (.total.latencyMs.p50 * 100 | round / 100), (.total.latencyMs.p99 * 100 | round / 100),
		(.total.latencyMs["p99.9"] * 100 | round / 100), .total.errors,
		(if (.errors | length) == 0 then "-" else ([.errors[] | "\(.op) \(.error) x\(.count)"] | join("; ")) end),
		$cpu] | @tsv' "$work/json/$name.json"
}

# row SYSTEM WORKLOAD NODE CONNS FIELDS(tsv) RATIO
row() {
	local rps p50 p99 p999 errs errsum cpu
	IFS=$'\t' read -r rps p50 p99 p999 errs errsum cpu <<<"$5"
	rows+=("| $1 | $2 | $3 | $4 | $rps | $p50 | $p99 | $p999 | $errs | ${6:--} | $cpu |")
	log "  $1 $2 $3 c$4: $rps req/s p50 ${p50}ms p99 ${p99}ms errors $errs ${6:+ratio $6}"
	[[ $errsum == - ]] || notes+=("$1 $2 $3 c$4 errors: $errsum")
}

status_of() { # N -> /cluster/status JSON
	curl -fsS --max-time 2 -K <(printf 'header = "Authorization: Bearer %s"\n' "$api_key") "http://127.0.0.1:$((http_base + $1))/cluster/status"
}

# key_name PREFIX KEYS I: kvbench's name for key I of a KEYS-key space
# (zero-padded to at least 5 digits, more when KEYS-1 has more).
key_name() {
	local w
	w=$(printf '%d' $(($2 - 1)) | wc -c)
	((w >= 5)) || w=5
	printf '%s%0*d' "$1" "$w" "$3"
}

# rss_mb PID: "RSS MB (anon A + file F)"; file pages are bbolt's mmap of the raft log.
rss_mb() { awk '/^VmRSS/{r=$2} /^RssAnon/{a=$2} /^RssFile/{f=$2} END{printf "%.0f MB (anon %.0f + file %.0f)", r/1024, a/1024, f/1024}' "/proc/$1/status"; }

node_rss() { # -> "n1=NN MB (...) n2=..."
	local n out=()
	for n in 1 2 3; do
		out+=("n$n=$(rss_mb "$(cat "$KV_CLUSTER_DIR/n$n/pid")")")
	done
	echo "${out[*]}"
}

# restart_time N KEY: SIGKILL node N, start it on its data, and time until it
# answers a linearizable GET of KEY with 200. Prints seconds.
restart_time() {
	local n=$1 key=$2 t0 url
	url="http://127.0.0.1:$((http_base + n))/kv/items/$key"
	scripts/cluster.sh kill "$n" >/dev/null
	t0=$(date +%s.%N)
	scripts/cluster.sh restart "$n" >/dev/null
	until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -K <(printf 'header = "Authorization: Bearer %s"\n' "$api_key") "$url") == 200 ]]; do
		sleep 0.05
	done
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b - a}'
}

# ---------------------------------------------------------------- quorumkv
log "starting a three-node cluster in $KV_CLUSTER_DIR (HTTP $((http_base + 1))-$((http_base + 3)))"
cluster_started=1
scripts/cluster.sh start >"$work/cluster-start.log" 2>&1 || { cat "$work/cluster-start.log" >&2; die "cluster did not start"; }
api_key=$(head -n 1 "$KV_CLUSTER_DIR/api-key")
export KV_API_KEY=$api_key # read by kvbench; cluster.sh uses its key file
leader_id=$(status_of 1 | jq -r .data.leaderId)
[[ $leader_id =~ ^n[1-3]$ ]] || die "no leader: $leader_id"
ln=${leader_id#n}
fn=$((ln % 3 + 1))
leader_url=http://127.0.0.1:$((http_base + ln))
follower_url=http://127.0.0.1:$((http_base + fn))
notes+=("quorumkv: leader n$ln ($leader_url), follower n$fn ($follower_url)")
notes+=("read (GET, stale) sends ?consistency=stale; a server without read levels ignores it and serves a linearizable read")

# start_etcd starts a three-member etcd, sets etcd_leader, etcd_follower and
# etcd_version, and preloads the same key space.
start_etcd() {
	etcd_version=$(etcd --version | awk '/etcd Version/{print $3}')
	log "starting etcd $etcd_version, three members (client ports $((etcd_base + 1))-$((etcd_base + 3)))"
	local cluster="" n u endpoints
	for n in 1 2 3; do
		cluster+="${cluster:+,}e$n=http://127.0.0.1:$((etcd_base + 10 + n))"
	done
	for n in 1 2 3; do
		mkdir -p "$work/etcd/e$n"
		etcd --name "e$n" --data-dir "$work/etcd/e$n/data" \
			--listen-client-urls "http://127.0.0.1:$((etcd_base + n))" --advertise-client-urls "http://127.0.0.1:$((etcd_base + n))" \
			--listen-peer-urls "http://127.0.0.1:$((etcd_base + 10 + n))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_base + 10 + n))" \
			--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token quorumkv-bench \
			--log-level warn </dev/null >"$work/etcd/e$n/etcd.log" 2>&1 &
		etcd_pids+=($!)
	done
	endpoints="http://127.0.0.1:$((etcd_base + 1)),http://127.0.0.1:$((etcd_base + 2)),http://127.0.0.1:$((etcd_base + 3))"
	etcd_leader=""
	for _ in $(seq 1 100); do
		etcd_leader=$(ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json 2>/dev/null |
			jq -r '.[] | select(.Status.header.member_id == .Status.leader) | .Endpoint' 2>/dev/null | head -n 1) || true
		[[ -n $etcd_leader ]] && break
		sleep 0.2
	done
	[[ -n $etcd_leader ]] || { tail -n 20 "$work"/etcd/e*/etcd.log >&2; die "etcd elected no leader"; }
	etcd_follower=""
	for u in ${endpoints//,/ }; do
		[[ $u == "$etcd_leader" ]] || { etcd_follower=$u; break; }
	done
	notes+=("etcd $etcd_version: leader $etcd_leader, follower $etcd_follower; started by this script, fsync on (etcd's default), no TTL on puts (etcd needs leases)")
	"$work/kvbench" -target etcd -endpoints "$etcd_leader" -keys "$keys" -preload-only -o json >"$work/json/etcd-preload.json"
}

stop_etcd() {
	local pid
	for pid in "${etcd_pids[@]+"${etcd_pids[@]}"}"; do
		if kill -TERM "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null || true
		fi
	done
	etcd_pids=()
}

log "preloading $keys keys"
"$work/kvbench" -endpoints "$leader_url" -keys "$keys" -preload-only -o json >"$work/json/preload.json"
notes+=("preload: $(jq -r '"\(.preload.keys) keys in \(.preload.seconds * 10 | round / 10)s (\(.preload.rate | floor)/s)"' "$work/json/preload.json") through the leader, 32 workers")
((compare_etcd)) && start_etcd

# Each quorumkv row is followed at once by the etcd row it is compared with,
# so a change in the machine's background load hits both sides of a ratio
# alike. The idle cluster of the other system keeps running meanwhile.
for c in $conns; do
	for node in leader follower; do
		url=$leader_url eurl=${etcd_leader:-}
		[[ $node == follower ]] && url=$follower_url eurl=${etcd_follower:-}
		for op in write read stale; do
			case $op in
			write) args=(-workload write) label="write (PUT, ttl)" elabel="put" ;;
			read) args=(-workload read) label="read (GET, linearizable)" elabel="range (linearizable)" ;;
			stale) args=(-workload read -consistency stale) label="read (GET, stale)" elabel="range (serializable)" ;;
			esac
			row quorumkv "$label" "$node" "$c" "$(bench "kv-$op-$node-c$c" -endpoints "$url" -c "$c" "${args[@]}")"
			if ((compare_etcd)); then
				fields=$(bench "etcd-$op-$node-c$c" -target etcd -endpoints "$eurl" -c "$c" "${args[@]}")
				etcd_rps[$op|$node|$c]=$(cut -f1 <<<"$fields")
				row "etcd $etcd_version" "$elabel" "$node" "$c" "$fields"
			fi
		done
		row quorumkv "session (90/10)" "$node" "$c" "$(bench "kv-session-$node-c$c" -endpoints "$url" -c "$c" -workload session)"
	done
done
c_last=${conns##* }
row quorumkv "counter (incr)" leader "$c_last" "$(bench "kv-counter-leader-c$c_last" -endpoints "$leader_url" -c "$c_last" -workload counter)"
stop_etcd

rss_after=$(node_rss)
restart_s=$(restart_time "$fn" "$(key_name session- "$keys" 0)")
mem_rows=("| $keys | $rss_after | $restart_s s (n$fn, SIGKILL, until a linearizable GET answers 200) |")
log "RSS after the runs: $rss_after; follower restart: ${restart_s}s"

if ((memory_keys > 0)); then
	log "preloading $memory_keys more keys for the memory target (this takes a while)"
	"$work/kvbench" -endpoints "$leader_url" -keys "$memory_keys" -key-prefix big- -preload-only -preload-c 64 -o json >"$work/json/preload-big.json"
	notes+=("memory preload: $(jq -r '"\(.preload.keys) keys in \(.preload.seconds | round)s (\(.preload.rate | floor)/s)"' "$work/json/preload-big.json")")
	rss_big=$(node_rss)
	restart_big=$(restart_time "$fn" "$(key_name big- "$memory_keys" 0)")
	mem_rows+=("| $((keys + memory_keys)) | $rss_big | $restart_big s (n$fn, SIGKILL, until a linearizable GET answers 200) |")
	log "RSS with $((keys + memory_keys)) keys: $rss_big; follower restart: ${restart_big}s"
	log "write p99 with and without raft snapshots ($((keys + memory_keys)) keys, ${BENCH_SNAP_SECONDS:-120}s)"
	scripts/snapshot-p99.sh "$work/kvbench" "${BENCH_SNAP_SECONDS:-120}" "${BENCH_SNAP_RATE:-1000}" >"$work/json/snapshot-p99.txt"
	while read -r line; do
		notes+=("snapshot windows ($((keys + memory_keys)) keys, open loop ${BENCH_SNAP_RATE:-1000}/s PUT on the leader): $line")
	done < <(grep -E '^(none|leader|follower):' "$work/json/snapshot-p99.txt")
fi

scripts/cluster.sh stop >/dev/null
cluster_started=0

if ((compare_etcd)); then
	# Now that etcd's rates are known, put the ratios into our rows.
	for i in "${!rows[@]}"; do
		IFS='|' read -r _ sys wl node c rps _ <<<"${rows[$i]}"
		sys=$(xargs <<<"$sys") wl=$(xargs <<<"$wl") node=$(xargs <<<"$node") c=$(xargs <<<"$c") rps=$(xargs <<<"$rps")
		[[ $sys == quorumkv ]] || continue
		case $wl in
		"write (PUT, ttl)") ref=${etcd_rps[write|$node|$c]:-} ;;
		"read (GET, linearizable)") ref=${etcd_rps[read|$node|$c]:-} ;;
		"read (GET, stale)") ref=${etcd_rps[stale|$node|$c]:-} ;;
		*) ref="" ;;
		esac
		[[ -n $ref ]] || continue
		rows[i]=$(awk -F'|' -v OFS='|' -v r=" ×$(ratio "$rps" "$ref") " '{ $11 = r; print }' <<<"${rows[$i]}")
	done
fi

# ---------------------------------------------------------------- report
commit=$(git rev-parse --short HEAD)
dirty=""
[[ -z $(git status --porcelain --untracked-files=no) ]] || dirty=" (with uncommitted changes)"
report=$work/results.md
{
	echo "### Run of $(date -u '+%Y-%m-%d %H:%M UTC'), commit \`$commit\`$dirty"
	echo
	echo "Machine: $(nproc) CPU ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r), $(go version | cut -d' ' -f3)."
	echo "The load generator runs on the same $(nproc) cores as the servers, and other engineers' tests share the machine: compare rows of one run, not runs."
	echo
	echo "Command: \`scripts/bench.sh$( ((compare_etcd)) && printf ' --compare-etcd')$( ((memory_keys > 0)) && printf ' --memory-keys %s' "$memory_keys")\`;"
	echo "kvbench closed loop, $keys keys of 200-byte values, ttl 3600 s, warmup $warmup, measured $dur per row; one endpoint per row (pinned)."
	echo
	echo "| system | workload | node | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | vs etcd | host CPU |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
	echo
	echo "Memory and restart (RSS of each node after the runs above):"
	echo
	echo "| keys | RSS | restart |"
	echo "|---|---|---|"
	printf '%s\n' "${mem_rows[@]}"
	echo
	printf -- '- %s\n' "${notes[@]}"
	echo "- raw kvbench JSON: $results_dir/json"
} >"$report"

if ((write_md)); then
	begin='<!-- bench.sh results: begin -->'
	end='<!-- bench.sh results: end -->'
	if ! grep -qF "$begin" BENCHMARKS.md || ! grep -qF "$end" BENCHMARKS.md; then
		die "BENCHMARKS.md lacks the result markers"
	fi
	awk -v b="$begin" -v e="$end" -v f="$report" '
		$0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip' BENCHMARKS.md >"$work/BENCHMARKS.md"
	mv "$work/BENCHMARKS.md" BENCHMARKS.md
	log "updated BENCHMARKS.md"
fi
cat "$report"
