#!/usr/bin/env bash
# cluster-smoke.sh is the scripted end-to-end check: it starts a real three-node
# cluster with scripts/cluster.sh in a fresh temporary directory, drives the
# HTTP API of every node with curl, kills the leader, writes through the
# survivors, restarts the killed node and checks that every acknowledged write
# is readable from all three nodes. It stops at the first failed check, printing
# what was expected, what came back and the tail of every node's log, and
# always stops the cluster and removes the directory on exit.
#
# Environment:
#   KV_CLUSTER_HTTP_BASE, KV_CLUSTER_PEER_BASE  ports as for cluster.sh; this
#       script defaults them to 18080 and 19080 so that a development cluster
#       on 8081-8083 can keep running
#   KV_SMOKE_KEEP=1   keep the temporary directory (logs, data) for inspection
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cluster=$repo_root/scripts/cluster.sh
readonly NODES=(1 2 3)
# How long a write after the leader's death may keep failing with a retryable
# error: an election takes a few election timeouts (1s each by default).
readonly RETRY_WINDOW=10

export KV_CLUSTER_HTTP_BASE=${KV_CLUSTER_HTTP_BASE:-18080}
export KV_CLUSTER_PEER_BASE=${KV_CLUSTER_PEER_BASE:-19080}
unset KV_API_KEY # a fresh key for a fresh cluster

command -v curl >/dev/null 2>&1 || {
	echo "cluster-smoke.sh: curl is required (scripts/test.sh installs it)" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/quorumkv-smoke.XXXXXX")
export KV_CLUSTER_DIR=$work/cluster
failed_step=""
cluster_started=0

step() {
	printf '\n==> [%ds] %s\n' "$SECONDS" "$*"
	failed_step=$*
}
ok() { printf '    ok: %s\n' "$*"; }

fail() {
	printf '\nFAIL: %s\n  during: %s\n' "$1" "$failed_step" >&2
	exit 1
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# cluster.sh start prints the log tails itself when it fails.
	if ((rc != 0 && cluster_started)); then
		local n log
		for n in "${NODES[@]}"; do
			log=$KV_CLUSTER_DIR/n$n/kvnode.log
			echo "----- n$n: last 30 lines of $log -----" >&2
			if [[ -f $log ]]; then tail -n 30 "$log" >&2; else echo "(no log)" >&2; fi
		done
	fi
	echo
	echo "==> stopping the cluster"
	"$cluster" stop || echo "warning: cluster.sh stop failed" >&2
	if [[ ${KV_SMOKE_KEEP:-} == 1 ]]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
	if ((rc == 0)); then echo "SMOKE PASSED"; else echo "SMOKE FAILED (exit $rc)" >&2; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

url() { printf 'http://127.0.0.1:%d%s' $((KV_CLUSTER_HTTP_BASE + $1)) "$2"; }

# req AUTH METHOD N PATH [BODY] sends one request to node N and sets STATUS
# (000 when no HTTP answer came back) and BODY. AUTH is "key" (the cluster's
# key), "none" or "wrong". The key reaches curl on stdin, not in argv.
STATUS="" BODY=""
req() {
	local auth=$1 method=$2 n=$3 path=$4 data=${5-}
	local args=(-sS --max-time 15 -o "$work/resp" -w '%{http_code}' -X "$method")
	if [[ -n $data ]]; then
		printf '%s' "$data" >"$work/req"
		args+=(-H 'Content-Type: application/json' --data-binary "@$work/req")
	fi
	local config=""
	case $auth in
	key) config="header = \"Authorization: Bearer $api_key\"" ;;
	wrong) config="header = \"Authorization: Bearer not-the-key\"" ;;
	none) ;;
	esac
	: >"$work/resp"
	STATUS=$(curl "${args[@]}" -K - "$(url "$n" "$path")" 2>"$work/curl-err" <<<"$config") || true
	[[ $STATUS =~ ^[0-9]{3}$ ]] || STATUS=000
	BODY=$(<"$work/resp")
	if [[ $STATUS == 000 ]]; then
		BODY="(no HTTP response: $(<"$work/curl-err"))"
	fi
}

# expect_status WANT WHAT fails unless the last response had status WANT.
expect_status() {
	[[ $STATUS == "$1" ]] || fail "$2: HTTP $STATUS, want $1; body: $BODY"
}

# body_field JQ prints a field of the last response body ("" when absent).
body_field() {
	jq -r "$1 // \"\"" <<<"$BODY" 2>/dev/null || fail "response is not JSON: $BODY"
}

retryable() {
	[[ $STATUS == 000 ]] && return 0
	[[ $(jq -r '.error.retryable // false' <<<"$BODY" 2>/dev/null) == true ]]
}

# req_retry runs req until it gets an answer that is not a retryable error
# (connection failure or "retryable": true), for at most RETRY_WINDOW seconds.
# Only idempotent requests (GET, PUT of a fixed value) go through here.
req_retry() {
	local deadline=$((SECONDS + RETRY_WINDOW)) tries=0
	while :; do
		req "$@"
		tries=$((tries + 1))
		retryable || break
		((SECONDS < deadline)) || break
		sleep 0.2
	done
	((tries == 1)) || echo "    ($2 $4 on n$3 answered $STATUS after $tries attempts)"
}

# compact JSON prints JSON in compact form, keys in their order: the form the
# store keeps and returns. Only for values whose numbers are exact in a double,
# because jq 1.6 reads every number as one.
compact() { jq -c . <<<"$1"; }

# check_value WHAT WANT_JSON checks .data.value of the last response as JSON
# (key order aside); check_raw_value then checks its bytes.
check_value() {
	local got
	got=$(jq -cS '.data.value' <<<"$BODY" 2>/dev/null) || fail "$1: response is not JSON: $BODY"
	[[ $got == "$(jq -cS . <<<"$2")" ]] || fail "$1: value is $got, want $2"
}

# check_raw_value WHAT WANT_COMPACT checks that the last response carries the
# value byte for byte. Whitespace is ignored, so pretty-printing would pass;
# the wanted values contain no strings with spaces.
check_raw_value() {
	local flat
	flat=$(tr -d ' \t\r\n' <<<"$BODY")
	[[ $flat == *"\"value\":$2,"* || $flat == *"\"value\":$2}"* ]] || fail "$1: value not returned byte-exactly; want \"value\":$2 in $BODY"
}

# expected holds every acknowledged key's state: its value in compact form, or
# "<deleted>" for a key whose delete was acknowledged.
declare -A expected

# check_key_on N KEY checks node N returns KEY as acknowledged.
check_key_on() {
	local n=$1 key=$2 want=${expected[$2]}
	req_retry key GET "$n" "/kv/items/$key"
	if [[ $want == "<deleted>" ]]; then
		expect_status 404 "GET $key on n$n (deleted)"
		return
	fi
	expect_status 200 "GET $key on n$n"
	[[ $(body_field .data.key) == "$key" ]] || fail "GET $key on n$n: .data.key is $(body_field .data.key)"
	check_value "GET $key on n$n" "$want"
	check_raw_value "GET $key on n$n" "$want"
}

session_key=session-usr_abc123
session_value='{"userId": "usr_abc123", "cart": [{"sku": "item_1", "qty": 2}], "lastActive": 1764000000000}'
session_body='{"value": {"userId": "usr_abc123", "cart": [{"sku": "item_1", "qty": 2}], "lastActive": 1764000000000}, "ttlSeconds": 86400}'
# 2^63+1 overflows int64 and has no exact float64; a server that decodes values
# into float64 would return 9223372036854775808 (or 9.223372036854776e+18).
big_value='{"id":9223372036854775809,"ids":[9223372036854775809,-9223372036854775809],"f":1.50}'

step "starting the cluster in $KV_CLUSTER_DIR"
"$cluster" start || fail "cluster.sh start failed"
cluster_started=1
command -v jq >/dev/null 2>&1 || fail "jq is required (cluster.sh start installs it when it can)"
api_key=$(head -n 1 "$KV_CLUSTER_DIR/api-key")
api_key=${api_key//\\/\\\\}
api_key=${api_key//\"/\\\"}

for t in "${NODES[@]}"; do
	step "n$t: health and authentication"
	req none GET "$t" /healthz
	expect_status 200 "GET /healthz on n$t without a key"
	req none GET "$t" "/kv/items/$session_key"
	expect_status 401 "GET without Authorization on n$t"
	[[ -n $(body_field .error.code) ]] || fail "401 on n$t has no .error.code: $BODY"
	req wrong GET "$t" "/kv/items/$session_key"
	expect_status 401 "GET with a wrong key on n$t"
	req none PUT "$t" "/kv/items/$session_key" "$session_body"
	expect_status 401 "PUT without Authorization on n$t"
	ok "healthz 200 without a key; 401 with no key or a wrong one"

	step "n$t: PUT $session_key (create, then replace)"
	req key PUT "$t" "/kv/items/$session_key" "$session_body"
	expect_status 201 "first PUT $session_key on n$t"
	[[ $(body_field .data.key) == "$session_key" ]] || fail "PUT on n$t: .data.key is $(body_field .data.key)"
	v1=$(body_field .data.version)
	[[ $v1 =~ ^[1-9][0-9]*$ ]] || fail "PUT on n$t: .data.version is '$v1', want a positive integer"
	[[ -n $(body_field .data.expiresAt) ]] || fail "PUT with ttlSeconds on n$t: no .data.expiresAt: $BODY"
	req key PUT "$t" "/kv/items/$session_key" "$session_body"
	expect_status 200 "second PUT $session_key on n$t (replace)"
	v2=$(body_field .data.version)
	if ! [[ $v2 =~ ^[0-9]+$ ]] || ((v2 <= v1)); then
		fail "replace on n$t: version $v2 is not above $v1"
	fi
	expected[$session_key]=$(compact "$session_value")
	ok "201 (version $v1), then 200 (version $v2)"

	step "n$t: GET $session_key from every node"
	for n in "${NODES[@]}"; do
		check_key_on "$n" "$session_key"
		[[ $(body_field .data.version) == "$v2" ]] || fail "GET on n$n: version $(body_field .data.version), want $v2"
	done
	ok "all nodes return the value written through n$t, version $v2"

	step "n$t: a value with 9223372036854775809 round-trips byte-exactly"
	big_key=bigint-via-n$t
	req key PUT "$t" "/kv/items/$big_key" "{\"value\":$big_value}"
	expect_status 201 "PUT $big_key on n$t"
	expected[$big_key]=$big_value
	[[ $(body_field .data.expiresAt) == "" ]] || fail "PUT without ttlSeconds on n$t has expiresAt $(body_field .data.expiresAt)"
	for n in "${NODES[@]}"; do
		check_key_on "$n" "$big_key"
	done
	ok "every node returns $big_value"

	step "n$t: DELETE $session_key (deleted, then not)"
	req key DELETE "$t" "/kv/items/$session_key"
	expect_status 200 "first DELETE on n$t"
	[[ $(jq -r '.data.deleted' <<<"$BODY") == true ]] || fail "first DELETE on n$t: want deleted true: $BODY"
	expected[$session_key]="<deleted>"
	req key DELETE "$t" "/kv/items/$session_key"
	expect_status 200 "second DELETE on n$t"
	[[ $(jq -r '.data.deleted' <<<"$BODY") == false ]] || fail "second DELETE on n$t: want deleted false: $BODY"
	for n in "${NODES[@]}"; do
		check_key_on "$n" "$session_key"
	done
	ok "deleted true, then false; 404 on every node"

	step "n$t: cache-aside"
	cache_key=cache-k-via-n$t
	cache_value="{\"rendered\":\"page-for-n$t\",\"n\":$t}"
	req key GET "$t" "/kv/items/$cache_key"
	expect_status 404 "cache miss GET $cache_key on n$t"
	[[ $(body_field .error.code) != "" ]] || fail "404 on n$t has no .error.code: $BODY"
	req key PUT "$t" "/kv/items/$cache_key" "{\"value\":$cache_value,\"ttlSeconds\":3600}"
	expect_status 201 "cache fill PUT $cache_key on n$t"
	expected[$cache_key]=$(compact "$cache_value")
	check_key_on "$t" "$cache_key"
	[[ -n $(body_field .data.expiresAt) ]] || fail "cache hit on n$t: no .data.expiresAt: $BODY"
	ok "404, fill with ttlSeconds 3600, then 200"
done

step "finding the leader"
req key GET 1 /cluster/status
expect_status 200 "GET /cluster/status on n1"
leader=$(body_field .data.leaderId)
[[ $leader =~ ^n([1-3])$ ]] || fail "leaderId is '$leader', want n1, n2 or n3"
leader_n=${BASH_REMATCH[1]}
survivors=()
for n in "${NODES[@]}"; do
	((n == leader_n)) || survivors+=("$n")
done
ok "leader is $leader; survivors will be n${survivors[0]} and n${survivors[1]}"

step "killing the leader $leader"
"$cluster" kill "$leader_n" || fail "cluster.sh kill $leader_n failed"
ok "SIGKILLed $leader"

step "writes through the survivors while a new leader is elected"
for n in "${survivors[@]}"; do
	for i in 1 2; do
		key=after-kill-via-n$n-$i
		value="{\"via\":\"n$n\",\"i\":$i,\"killed\":\"$leader\"}"
		req_retry key PUT "$n" "/kv/items/$key" "{\"value\":$value}"
		[[ $STATUS == 201 || $STATUS == 200 ]] || fail "PUT $key on n$n after the leader died: HTTP $STATUS; body: $BODY"
		expected[$key]=$(compact "$value")
		ok "PUT $key on n$n: HTTP $STATUS"
	done
done
req key GET "${survivors[0]}" /cluster/status
new_leader=$(body_field .data.leaderId)
[[ -n $new_leader && $new_leader != "$leader" ]] || fail "survivor n${survivors[0]} reports leader '$new_leader' after the writes"
ok "new leader: $new_leader"
for n in "${survivors[@]}"; do
	for key in "${!expected[@]}"; do
		check_key_on "$n" "$key"
	done
done
ok "both survivors return all ${#expected[@]} acknowledged keys"

step "restarting $leader"
"$cluster" restart "$leader_n" || fail "cluster.sh restart $leader_n failed"

step "every acknowledged key on every node"
for n in "${NODES[@]}"; do
	for key in "${!expected[@]}"; do
		check_key_on "$n" "$key"
	done
	ok "n$n returns all ${#expected[@]} keys as acknowledged"
done

step "cluster status"
"$cluster" status || fail "cluster.sh status reports a node down"
