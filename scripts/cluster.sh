#!/usr/bin/env bash
# cluster.sh runs a local three-node quorumkv cluster for development and for
# scripts/cluster-smoke.sh. Run it with no arguments for usage.
#
# Node N (1..9) has raft id nN, HTTP on 127.0.0.1:808N and raft/forwarding on
# 127.0.0.1:908N. n1-n3 bootstrap the cluster; `add N` starts another node
# with --join, `remove N` takes one out (its data dir is wiped and a `removed`
# marker keeps `start` from bringing it back; `add N` clears it). All state lives under .cluster/ at the repository root, or
# under $KV_CLUSTER_DIR when set:
#
#   bin/kvnode      the binary every node runs; built by start
#   api-key         the bearer key, mode 0600: $KV_API_KEY when set, else generated once
#   nN/data         node N's raft log, snapshots and store; survives stop and start
#   nN/kvnode.log   node N's stdout and stderr (JSON log lines), appended across runs
#   nN/pid          node N's pid while cluster.sh believes it runs
#   certs/          the cluster's development CA (ca.pem, ca-key.pem) and node N's
#                   certificate nN.pem / nN-key.pem, generated on first start: the
#                   peer ports always run mutual TLS, each node proving its identity
#                   quorumkv://$KV_CLUSTER_NAME/node/nN (default cluster name quorumkv)
#
# A pid file is trusted only while /proc/PID/cmdline is our kvnode binary with
# this node's data dir, so a stale file or a recycled pid is never signalled.
#
# Environment:
#   KV_CLUSTER_DIR         state directory (default: <repo>/.cluster)
#   KV_API_KEY             API key to use instead of a generated one
#   KV_CLUSTER_HTTP_BASE   node N listens for HTTP on 127.0.0.1:$((BASE+N)) (default 8080)
#   KV_CLUSTER_PEER_BASE   node N listens for raft on 127.0.0.1:$((BASE+N)) (default 9080)
#   KV_CLUSTER_TIMEOUT     seconds start and restart wait for a leader (default 30)
#   KV_CLUSTER_DEBUG_BASE  when set, node N serves net/http/pprof on 127.0.0.1:$((BASE+N))
#                          (--debug-addr; unauthenticated, loopback only)
#   KV_CLUSTER_NAME        the cluster name in the certificates and on the nodes (default quorumkv)
#   KV_INSECURE_PEER=true  run the peer ports WITHOUT mutual TLS (kvnode --insecure-peer; every
#                          node warns): only to measure what peer TLS costs
#   KV_LOG_LEVEL and other KV_* settings of kvnode pass through to the nodes.
set -euo pipefail

readonly NODES=(1 2 3)    # the bootstrap voters
readonly ALL_NODES=(1 2 3 4 5 6 7 8 9)
readonly STOP_TIMEOUT=20 # seconds a node gets to shut down gracefully before SIGKILL

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# Absolute and normalised, because pid verification compares it with the
# --data-dir a node was started with.
cluster_dir=$(realpath -m -- "${KV_CLUSTER_DIR:-$repo_root/.cluster}")
http_base=${KV_CLUSTER_HTTP_BASE:-8080}
peer_base=${KV_CLUSTER_PEER_BASE:-9080}
wait_timeout=${KV_CLUSTER_TIMEOUT:-30}
debug_base=${KV_CLUSTER_DEBUG_BASE:-}
[[ -z $debug_base || $debug_base =~ ^[0-9]+$ ]] || { printf "cluster.sh: KV_CLUSTER_DEBUG_BASE must be a port number\n" >&2; exit 2; }
bin=$cluster_dir/bin/kvnode
key_file=$cluster_dir/api-key

die() {
	printf 'cluster.sh: %s\n' "$*" >&2
	exit 1
}

usage() {
	local rc=${1:-2}
	cat >&2 <<'EOF'
usage: scripts/cluster.sh COMMAND

  start [--tls] build kvnode, start every node not running, wait for one agreed leader;
               the peer ports always run mutual TLS with a dev CA and node
               certificates generated in <cluster dir>/certs; --tls (remembered for
               this cluster dir) also serves the HTTP API over HTTPS
  stop         stop all nodes (SIGTERM, SIGKILL after 20s); resumes paused nodes first
  status       show each node's raft state, term, applied index and leader;
               exits 1 when a node does not answer
  restart N    gracefully stop node N (1-3), start it on the same data, wait for a leader
  kill N       SIGKILL node N
  pause N      SIGSTOP node N
  resume N     SIGCONT node N
  logs N [-f]  print the last 100 lines of node N's log; -f follows it
  add N        start node N (1-9, not running, new or removed) with an empty data dir
               and --join; wait until the cluster lists it as a voter
  remove N     DELETE /cluster/nodes/nN through another node, then stop node N
               and wipe its data (a removed node cannot come back with its old state)
EOF
	exit "$rc"
}

http_addr() { printf '127.0.0.1:%d' $((http_base + $1)); }
certs_dir=$cluster_dir/certs
tls_on() { [[ -f $cluster_dir/tls ]]; }
insecure_peer() { [[ ${KV_INSECURE_PEER:-} == true ]]; }
scheme() { if tls_on; then printf https; else printf http; fi; }

# ensure_certs N... generates the cluster dir's dev CA once, and a certificate
# for each listed node that has none yet (signed by that same CA).
ensure_certs() {
	local n missing=()
	for n in "$@"; do
		[[ -f $certs_dir/n$n.pem ]] || missing+=("n$n")
	done
	((${#missing[@]} > 0)) || return 0
	local IFS=, add=()
	[[ -f $certs_dir/ca.pem ]] && add=(--add)
	"$bin" certs --out "$certs_dir" "${add[@]}" --nodes "${missing[*]}" >/dev/null ||
		die "could not generate certificates in $certs_dir"
}
peer_addr() { printf '127.0.0.1:%d' $((peer_base + $1)); }
node_dir() { printf '%s/n%d' "$cluster_dir" "$1"; }

# members prints the node numbers that belong to the cluster: n1-n3 unless
# removed, and any added node (one with a directory) not removed since.
members() {
	local n
	for n in "${ALL_NODES[@]}"; do
		[[ -f $(node_dir "$n")/removed ]] && continue
		if ((n <= 3)) || [[ -d $(node_dir "$n")/data ]]; then
			printf '%s\n' "$n"
		fi
	done
}

join_flag() {
	local n out=()
	for n in $(members); do
		((n == $1)) || out+=("$(scheme)://$(http_addr "$n")")
	done
	local IFS=,
	printf '%s' "${out[*]}"
}

peers_flag() {
	local n out=()
	for n in "${NODES[@]}"; do
		out+=("n$n=$(peer_addr "$n")")
	done
	local IFS=,
	printf '%s' "${out[*]}"
}

# ensure_commands installs, with apt-get, the Debian packages of the same name
# as any missing command. Only root (or sudo) can do that; anyone else gets told.
ensure_commands() {
	local missing=() c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	((${#missing[@]} == 0)) || install_packages "${missing[@]}"
}

install_packages() {
	local missing=("$@")
	command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}: install them (no apt-get on this machine)"
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: install them or run as root"
		sudo=(sudo)
	fi
	printf 'cluster.sh: installing %s with apt-get\n' "${missing[*]}" >&2
	if ! { "${sudo[@]}" apt-get update -qq &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2; then
		die "apt-get install ${missing[*]} failed"
	fi
}

ensure_go() {
	command -v go >/dev/null 2>&1 && return 0
	[[ -x /usr/local/go/bin/go ]] || die "go is not on PATH and not at /usr/local/go/bin/go"
	PATH=/usr/local/go/bin:$PATH
}

# ensure_ca_certificates: go build downloads modules over HTTPS, which fails on
# a minimal image without a CA bundle.
ensure_ca_certificates() {
	[[ -s /etc/ssl/certs/ca-certificates.crt ]] && return 0
	if command -v apt-get >/dev/null 2>&1 && { ((EUID == 0)) || command -v sudo >/dev/null 2>&1; }; then
		install_packages ca-certificates
	else
		echo "cluster.sh: warning: no CA bundle; go build can only use modules already cached" >&2
	fi
}

build() {
	ensure_go
	ensure_ca_certificates
	mkdir -p "$cluster_dir/bin"
	echo "building kvnode ($(go version | cut -d' ' -f3))"
	# Build beside the target and rename: running nodes keep their (unlinked)
	# binary, and writing over an executing file would fail with ETXTBSY.
	local tmp=$bin.tmp.$$
	if ! (cd "$repo_root" && go build -o "$tmp" ./cmd/kvnode); then
		rm -f "$tmp"
		die "go build ./cmd/kvnode failed"
	fi
	mv -f "$tmp" "$bin"
}

# build_testclock builds kvnode's fault-injection variant (-tags testclock,
# the only build with --test-clock-offset) beside the production binary.
build_testclock() {
	ensure_go
	ensure_ca_certificates
	mkdir -p "$cluster_dir/bin"
	local tmp=$bin-testclock.tmp.$$
	if ! (cd "$repo_root" && go build -tags testclock -o "$tmp" ./cmd/kvnode); then
		rm -f "$tmp"
		die "go build -tags testclock ./cmd/kvnode failed"
	fi
	mv -f "$tmp" "$bin-testclock"
}

# take_lock serialises commands that change the cluster, so two concurrent
# starts cannot launch a node twice. Nodes are started with fd 9 closed.
take_lock() {
	command -v flock >/dev/null 2>&1 || return 0
	mkdir -p "$cluster_dir"
	exec 9>"$cluster_dir/.lock"
	flock -w 120 9 || die "another cluster.sh holds $cluster_dir/.lock"
}

api_key() {
	[[ -s $key_file ]] || die "no API key at $key_file (has the cluster been started?)"
	head -n 1 "$key_file"
}

write_key_file() {
	local tmp=$key_file.tmp.$$
	(
		umask 077
		printf '%s\n' "$1" >"$tmp"
	)
	chmod 600 "$tmp"
	mv -f "$tmp" "$key_file"
}

# ensure_api_key makes $key_file hold the key the nodes will read at startup.
ensure_api_key() {
	mkdir -p "$cluster_dir"
	if [[ -n ${KV_API_KEY:-} ]]; then
		[[ $KV_API_KEY != *$'\n'* ]] || die "KV_API_KEY must be a single line"
		if [[ -s $key_file && $(head -n 1 "$key_file") == "$KV_API_KEY" ]]; then
			chmod 600 "$key_file"
			return 0
		fi
		local n
		for n in "${NODES[@]}"; do
			if node_pid "$n" >/dev/null; then
				die "KV_API_KEY differs from the key running nodes use ($key_file); stop the cluster first"
			fi
		done
		write_key_file "$KV_API_KEY"
	elif [[ ! -s $key_file ]]; then
		command -v od >/dev/null 2>&1 || die "od (coreutils) is needed to generate an API key"
		write_key_file "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
	else
		chmod 600 "$key_file"
	fi
}

# is_our_node N PID succeeds when PID is a live kvnode started for node N of
# this cluster dir. A zombie has an empty cmdline and so does not count.
is_our_node() {
	local n=$1 pid=$2 cmdline want
	cmdline=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ ${cmdline%%$'\n'*} == "$bin" || ${cmdline%%$'\n'*} == "$bin-testclock" ]] || return 1
	want=$'\n'"--data-dir"$'\n'"$(node_dir "$n")/data"$'\n'
	[[ $'\n'$cmdline$'\n' == *"$want"* ]]
}

# node_pid N prints node N's pid when it runs; fails otherwise.
node_pid() {
	local pid_file pid
	pid_file="$(node_dir "$1")/pid"
	[[ -f $pid_file ]] || return 1
	pid=$(<"$pid_file") || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	is_our_node "$1" "$pid" || return 1
	printf '%s\n' "$pid"
}

is_paused() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # the command name in parentheses may contain spaces
	[[ ${stat%% *} == [Tt] ]]
}

port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# api_get N PATH prints the body of an authenticated GET; fails on any error.
# The key goes to curl on stdin as config, not as an argument visible in ps.
api_get() {
	local key
	key=$(api_key)
	key=${key//\\/\\\\}
	key=${key//\"/\\\"}
	local tls_args=()
	tls_on && tls_args=(--cacert "$certs_dir/ca.pem")
	curl -fsS --max-time 2 "${tls_args[@]}" -K - "$(scheme)://$(http_addr "$1")$2" <<<"header = \"Authorization: Bearer $key\""
}

# leader_seen_by N prints the leaderId node N reports (empty when it knows none).
leader_seen_by() {
	api_get "$1" /cluster/status | jq -r '.data.leaderId // ""'
}

log_tail() {
	local log
	log="$(node_dir "$1")/kvnode.log"
	echo "----- n$1: last 40 lines of $log -----" >&2
	if [[ -f $log ]]; then
		tail -n 40 "$log" >&2
	else
		echo "(no log)" >&2
	fi
}

start_node() {
	local n=$1 dir pid_file
	dir=$(node_dir "$n")
	pid_file=$dir/pid
	local port
	for port in $((http_base + n)) $((peer_base + n)); do
		if port_in_use "$port"; then
			die "n$n cannot start: 127.0.0.1:$port is already in use by another process"
		fi
	done
	mkdir -p "$dir/data"
	rm -f "$pid_file"
	local args=(
		--id "n$n"
		--http-addr "$(http_addr "$n")"
		--peer-addr "$(peer_addr "$n")"
		--data-dir "$dir/data"
		--api-key-file "$key_file"
	)
	# Bootstrap voters get the peer list (used only with no raft state); any
	# other node joins through the members (ignored once it has raft state).
	if ((n <= 3)) && [[ ! -f $dir/joined ]]; then
		args+=(--peers "$(peers_flag)")
	else
		args+=(--join "$(join_flag "$n")")
	fi
	if [[ -n $debug_base ]]; then
		args+=(--debug-addr "127.0.0.1:$((debug_base + n))")
	fi
	if ! insecure_peer; then
		ensure_certs "$n"
		args+=(--peer-ca "$certs_dir/ca.pem" --peer-cert "$certs_dir/n$n.pem" --peer-key "$certs_dir/n$n-key.pem")
	elif tls_on; then
		ensure_certs "$n"
	fi
	if tls_on; then
		args+=(--tls-cert "$certs_dir/n$n.pem" --tls-key "$certs_dir/n$n-key.pem")
	fi
	# Tests only: KV_TEST_CLOCK_OFFSET (read by kvnode as --test-clock-offset)
	# runs this node on the fault-injection build, whose clock offset can
	# then be changed by writing data/test-clock-offset; starting the node
	# again resets it to the variable.
	local exe=$bin
	rm -f "$dir/data/test-clock-offset"
	if [[ -n ${KV_TEST_CLOCK_OFFSET:-} ]]; then
		build_testclock
		exe=$bin-testclock
	fi
	local launcher=(nohup)
	command -v setsid >/dev/null 2>&1 && launcher=(setsid)
	# The inner bash writes its own pid and then execs kvnode, so the pid file
	# is right whether or not setsid had to fork. KV_API_KEY is dropped because
	# kvnode would read it as --api-key; the key file is the only key source.
	(
		cd "$dir"
		# shellcheck disable=SC2016 # $$, $1 and $@ belong to the inner bash
		exec env -u KV_API_KEY "${launcher[@]}" bash -c \
			'printf "%s\n" "$$" >"$1.tmp" && mv -f "$1.tmp" "$1" && shift && exec "$@"' \
			launch "$pid_file" "$exe" "${args[@]}"
	) </dev/null >>"$dir/kvnode.log" 2>&1 9>&- &

	local deadline=$((SECONDS + 5)) pid
	until node_pid "$n" >/dev/null; do
		if [[ -s $pid_file ]]; then
			pid=$(<"$pid_file")
			if [[ ! -e /proc/$pid ]]; then
				log_tail "$n"
				die "n$n exited right after starting"
			fi
		fi
		if ((SECONDS >= deadline)); then
			log_tail "$n"
			die "n$n did not start within 5s"
		fi
		sleep 0.1
	done
	echo "started n$n (pid $(node_pid "$n"), http $(http_addr "$n"))"
}

# wait_for_leader N... waits until every listed node answers /cluster/status
# with the same non-empty leaderId and prints that id. On timeout, or when a
# listed node's process dies, it prints the failing nodes' log tails and fails.
wait_for_leader() {
	local nodes=("$@") deadline=$((SECONDS + wait_timeout))
	local -A seen
	local n first agreed
	while :; do
		agreed=1
		first=""
		for n in "${nodes[@]}"; do
			if ! node_pid "$n" >/dev/null; then
				log_tail "$n"
				die "n$n is not running (it may have exited; see its log above)"
			fi
			seen[$n]=$(leader_seen_by "$n" 2>/dev/null) || seen[$n]=""
			[[ -n $first ]] || first=${seen[$n]}
			[[ -n ${seen[$n]} && ${seen[$n]} == "$first" ]] || agreed=0
		done
		if ((agreed)); then
			printf '%s\n' "$first"
			return 0
		fi
		if ((SECONDS >= deadline)); then
			for n in "${nodes[@]}"; do
				echo "n$n sees leader: ${seen[$n]:-(none or not answering)}" >&2
			done
			for n in "${nodes[@]}"; do
				local others=0 m
				for m in "${nodes[@]}"; do
					[[ $m != "$n" && -n ${seen[$n]} && ${seen[$m]} == "${seen[$n]}" ]] && others=$((others + 1))
				done
				# A node counts as failing unless a majority of the listed nodes agree with it.
				((2 * (others + 1) > ${#nodes[@]})) || log_tail "$n"
			done
			die "no agreed leader after ${wait_timeout}s"
		fi
		sleep 0.25
	done
}

print_endpoints() {
	local leader=$1 n mark
	echo "cluster is up (state in $cluster_dir)"
	for n in $(members); do
		mark=""
		[[ $leader == "n$n" ]] && mark="  (leader)"
		echo "  n$n  $(scheme)://$(http_addr "$n")$mark"
	done
	echo "leader:  $leader"
	echo "api key: $(api_key)  (file: $key_file)"
	if insecure_peer; then
		echo "tls:     NONE on the peer ports (KV_INSECURE_PEER=true): anyone who reaches them can rewrite the data"
	elif tls_on; then
		echo "tls:     HTTPS and peer mutual TLS; CA certificate $certs_dir/ca.pem (curl --cacert)"
	else
		echo "tls:     peer mutual TLS (CA $certs_dir/ca.pem); the HTTP API is plain (start --tls for HTTPS)"
	fi
}

cmd_start() {
	take_lock
	ensure_commands curl jq
	if [[ ${1-} == --tls ]]; then
		mkdir -p "$cluster_dir"
		touch "$cluster_dir/tls"
	fi
	local n down=() nodes
	mapfile -t nodes < <(members)
	for n in "${nodes[@]}"; do
		node_pid "$n" >/dev/null || down+=("$n")
	done
	ensure_api_key
	if ((${#down[@]} == 0)); then
		echo "cluster is already running"
	else
		build
		insecure_peer || ensure_certs "${down[@]}"
		for n in "${down[@]}"; do
			start_node "$n"
		done
	fi
	local leader
	leader=$(wait_for_leader "${nodes[@]}")
	print_endpoints "$leader"
}

# stop_nodes N... resumes, SIGTERMs and waits for the listed nodes, then
# SIGKILLs any still running after STOP_TIMEOUT seconds.
stop_nodes() {
	local n pid running=()
	for n in "$@"; do
		if pid=$(node_pid "$n"); then
			kill -CONT "$pid" 2>/dev/null || true
			kill -TERM "$pid" 2>/dev/null || true
			running+=("$n")
			echo "stopping n$n (pid $pid)"
		fi
		rm -f "$(node_dir "$n")/pid.tmp"
	done
	local deadline=$((SECONDS + STOP_TIMEOUT)) left
	while ((${#running[@]} > 0)); do
		left=()
		for n in "${running[@]}"; do
			node_pid "$n" >/dev/null && left+=("$n")
		done
		running=("${left[@]+"${left[@]}"}")
		((${#running[@]} > 0)) || break
		if ((SECONDS >= deadline)); then
			for n in "${running[@]}"; do
				if pid=$(node_pid "$n"); then
					echo "n$n did not stop within ${STOP_TIMEOUT}s; sending SIGKILL" >&2
					kill -KILL "$pid" 2>/dev/null || true
				fi
			done
			wait_gone "${running[@]}"
			break
		fi
		sleep 0.1
	done
	for n in "$@"; do
		rm -f "$(node_dir "$n")/pid"
	done
}

# wait_gone N... waits (bounded) until the listed nodes' processes are gone.
wait_gone() {
	local deadline=$((SECONDS + 5)) n
	for n in "$@"; do
		while node_pid "$n" >/dev/null; do
			((SECONDS < deadline)) || die "n$n is still running after SIGKILL"
			sleep 0.05
		done
	done
}

cmd_stop() {
	take_lock
	local n any=0
	for n in "${ALL_NODES[@]}"; do
		node_pid "$n" >/dev/null && any=1
	done
	if ((!any)); then
		for n in "${ALL_NODES[@]}"; do
			rm -f "$(node_dir "$n")/pid"
		done
		echo "cluster is not running"
		return 0
	fi
	stop_nodes "${ALL_NODES[@]}"
	echo "cluster stopped"
}

cmd_status() {
	ensure_commands curl jq
	local n pid proc state term applied leader body rc=0 leaders=()
	printf '%-4s %-8s %-7s %-10s %-6s %-8s %-7s %s\n' NODE PID PROCESS STATE TERM APPLIED LEADER HTTP
	for n in $(members); do
		state=- term=- applied=- leader=-
		if ! pid=$(node_pid "$n"); then
			pid=- proc=down rc=1
		elif is_paused "$pid"; then
			proc=paused rc=1
		else
			proc=running
			if body=$(api_get "$n" /cluster/status 2>/dev/null) &&
				IFS=$'\t' read -r state term applied leader < <(jq -r '.data | [.state, .term, .appliedIndex, (.leaderId // "")] | @tsv' <<<"$body"); then
				if [[ -n $leader ]]; then
					leaders+=("$leader")
				else
					leader="(none)"
				fi
			else
				state=unreachable rc=1
			fi
		fi
		printf '%-4s %-8s %-7s %-10s %-6s %-8s %-7s %s\n' "n$n" "$pid" "$proc" "$state" "$term" "$applied" "$leader" "$(http_addr "$n")"
	done
	if ((${#leaders[@]} == 0)); then
		echo "leader: none known"
	elif [[ $(printf '%s\n' "${leaders[@]}" | sort -u | wc -l) -eq 1 ]]; then
		local note=""
		if [[ ${leaders[0]} =~ ^n([1-9])$ ]] && ! node_pid "${BASH_REMATCH[1]}" >/dev/null; then
			note=" (reported by the others, but not running: an election is due)"
		fi
		echo "leader: ${leaders[0]}$note"
	else
		echo "leader: nodes disagree ($(printf '%s\n' "${leaders[@]}" | sort -u | tr '\n' ' '))"
	fi
	return "$rc"
}

cmd_restart() {
	local n=$1
	take_lock
	ensure_commands curl jq
	node_pid "$n" >/dev/null && stop_nodes "$n"
	ensure_api_key
	[[ -x $bin ]] || build
	start_node "$n"
	local leader
	leader=$(wait_for_leader "$n")
	echo "n$n is back on $(scheme)://$(http_addr "$n") and sees leader $leader"
}

# signal_node SIGNAL N VERB sends SIGNAL to running node N.
signal_node() {
	local sig=$1 n=$2 verb=$3 pid
	pid=$(node_pid "$n") || die "n$n is not running"
	kill "-$sig" "$pid"
	echo "$verb n$n (pid $pid)"
}

cmd_kill() {
	take_lock
	signal_node KILL "$1" killed
	wait_gone "$1"
	rm -f "$(node_dir "$1")/pid"
}

cmd_logs() {
	local log
	log="$(node_dir "$1")/kvnode.log"
	[[ -f $log ]] || die "no log for n$1 at $log"
	case ${2-} in
	"") exec tail -n 100 "$log" ;;
	-f | --follow) exec tail -n 100 -f "$log" ;;
	*) usage ;;
	esac
}

# api_call N METHOD PATH [BODY] prints the body of an authenticated request
# to node N and fails on an HTTP error (the error body goes to stderr).
api_call() {
	local n=$1 method=$2 path=$3 body=${4-} key out code
	key=$(api_key)
	key=${key//\\/\\\\}
	key=${key//\"/\\\"}
	local tls_args=()
	tls_on && tls_args=(--cacert "$certs_dir/ca.pem")
	out=$(curl -sS --max-time 30 "${tls_args[@]}" -X "$method" -H 'Content-Type: application/json' \
		${body:+--data "$body"} -w '\n%{http_code}' -K - "$(scheme)://$(http_addr "$n")$path" <<<"header = \"Authorization: Bearer $key\"") || return 1
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	if [[ $code != 2* ]]; then
		printf '%s\n' "$out" >&2
		return 1
	fi
	printf '%s\n' "$out"
}

# any_member_but N prints a running, answering member other than N.
any_member_but() {
	local m
	for m in $(members); do
		((m != $1)) || continue
		node_pid "$m" >/dev/null && api_get "$m" /cluster/status >/dev/null 2>&1 && {
			printf '%s' "$m"
			return 0
		}
	done
	return 1
}

cmd_add() {
	local n=$1 dir via deadline
	take_lock
	ensure_commands curl jq
	dir=$(node_dir "$n")
	node_pid "$n" >/dev/null && die "n$n is already running"
	if ((n <= 3)) && [[ ! -f $dir/removed ]]; then
		die "n$n is a bootstrap member; use 'restart $n', or 'remove $n' first"
	fi
	via=$(any_member_but "$n") || die "no running member answers; start the cluster first"
	ensure_api_key
	[[ -x $bin ]] || build
	rm -rf "$dir/data" "$dir/removed"
	mkdir -p "$dir/data"
	touch "$dir/joined"
	start_node "$n"
	echo "n$n is joining through $(scheme)://$(http_addr "$via"); waiting until it is a voter"
	deadline=$((SECONDS + wait_timeout))
	until api_get "$via" /cluster/nodes 2>/dev/null | jq -e --arg id "n$n" '.data.nodes[] | select(.id == $id and .suffrage == "voter")' >/dev/null; do
		if ! node_pid "$n" >/dev/null; then
			log_tail "$n"
			die "n$n exited while joining"
		fi
		if ((SECONDS >= deadline)); then
			log_tail "$n"
			die "n$n is not a voter after ${wait_timeout}s"
		fi
		sleep 0.25
	done
	echo "n$n is a voter (http $(scheme)://$(http_addr "$n"))"
}

cmd_remove() {
	local n=$1 dir via
	take_lock
	ensure_commands curl jq
	dir=$(node_dir "$n")
	[[ -d $dir/data ]] || die "n$n has no data dir; nothing to remove"
	via=$(any_member_but "$n") || die "no other running member answers; cannot remove n$n"
	api_call "$via" DELETE "/cluster/nodes/n$n" >/dev/null || die "the cluster refused to remove n$n (see above)"
	echo "removed n$n from the cluster (through n$via)"
	stop_nodes "$n"
	rm -rf "$dir/data"
	touch "$dir/removed"
	echo "stopped n$n and wiped its data; 'cluster.sh add $n' brings it back empty"
}

# node_arg validates a node number argument.
node_arg() {
	[[ ${1-} =~ ^[1-9]$ ]] || {
		echo "cluster.sh: expected a node number 1-9, got '${1-}'" >&2
		usage
	}
	printf '%s' "$1"
}

main() {
	local cmd=${1-}
	[[ -n $cmd ]] || usage
	shift
	case $cmd in
	start)
		(($# == 0)) || { (($# == 1)) && [[ $1 == --tls ]]; } || usage
		cmd_start "$@"
		;;
	stop | status)
		(($# == 0)) || usage
		"cmd_$cmd"
		;;
	restart | kill | pause | resume | add | remove)
		(($# == 1)) || usage
		local n
		n=$(node_arg "$1")
		case $cmd in
		add) cmd_add "$n" ;;
		remove) cmd_remove "$n" ;;
		restart) cmd_restart "$n" ;;
		kill) cmd_kill "$n" ;;
		pause) signal_node STOP "$n" paused ;;
		resume) signal_node CONT "$n" resumed ;;
		esac
		;;
	logs)
		(($# == 1 || $# == 2)) || usage
		local n
		n=$(node_arg "$1")
		cmd_logs "$n" "${2-}"
		;;
	-h | --help | help) usage 0 ;;
	*)
		echo "cluster.sh: unknown command '$cmd'" >&2
		usage
		;;
	esac
}

main "$@"
