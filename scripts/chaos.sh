#!/usr/bin/env bash
# chaos.sh runs the fault-injection suite (test/chaos) for local soak runs:
# every scenario plus the self-test, once per seed. The default is the CI
# profile (what scripts/test.sh runs); --long runs each scenario for about
# 60 s of faults. Needs root (network namespaces, iptables).
#
# Usage: scripts/chaos.sh [--long] [--seeds N] [--seed S] [--only NAME,...]
#   scripts/chaos.sh --long --seeds 5          # five long runs with seeds S, S+1, ...
#   scripts/chaos.sh --only 3-isolate-leader   # one scenario, CI profile
# Scenarios: 1-kill 2-pause-leader 3-isolate-leader 4-partition 5-one-way
#   6-restarts 7-membership 8-clock-offset 9-corrupt 10-power-loss
#   11-sync-stall 12-disk-eio (with --long also 10-power-loss-wal,
#   11-sync-stall-bolt, 12-disk-eio-wal); self-test: selftest-pause-leader
#   selftest-isolate-leader selftest-power-loss.
# Reports: artifacts/chaos/<run>/{chaos,selftest}-report.{txt,json}; on a
# failure also the porcupine visualisation and the node logs.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

die() {
	printf 'chaos.sh: %s\n' "$*" >&2
	exit 1
}

profile=ci
seeds=1
seed=$(( $(date +%s) % 1000000 ))
only=
while (($#)); do
	case $1 in
	--long) profile=long ;;
	--seeds) seeds=${2:?--seeds needs a number}; shift ;;
	--seed) seed=${2:?--seed needs a number}; shift ;;
	--only) only=${2:?--only needs scenario names}; shift ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
((EUID == 0)) || die "needs root: it creates network namespaces, veth pairs, a bridge and iptables rules"
for tool in ip iptables; do
	command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || die "$tool is missing (apt-get install iproute2 iptables)"
done
if ! command -v go >/dev/null 2>&1; then
	export PATH=/usr/local/go/bin:$PATH
fi

timeout=20m
[[ $profile == long ]] && timeout=60m
failed=0
for ((i = 0; i < seeds; i++)); do
	s=$((seed + i))
	run_dir="artifacts/chaos/$(date +%Y%m%d-%H%M%S)-seed$s"
	printf '==> chaos run %d/%d: profile %s, seed %s, reports in %s\n' $((i + 1)) "$seeds" "$profile" "$s" "$run_dir"
	set +e
	QKV_CHAOS_PROFILE=$profile QKV_CHAOS_SEED=$s QKV_CHAOS_ONLY=$only QKV_CHAOS_ARTIFACTS="$repo_root/$run_dir" \
		go test -count=1 -timeout "$timeout" -run 'TestChaos|TestSelfTest' -v ./test/chaos/ 2>&1 |
		grep -Ev '^\s+cluster\.go:[0-9]+: \['
	rc=${PIPESTATUS[0]}
	set -e
	if ((rc != 0)); then
		failed=$((failed + 1))
		printf '==> seed %s FAILED (go test exit %d); reports in %s\n' "$s" "$rc" "$run_dir"
	fi
done
((failed == 0)) || die "$failed run(s) found problems; see the reports above"
echo "chaos.sh: all $seeds run(s) clean"
