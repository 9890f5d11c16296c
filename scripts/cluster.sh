#!/usr/bin/env bash
# cluster.sh runs a local three-node quorumkv cluster for development and for
# the end-to-end tests. Run it with no arguments for usage. It builds cmd/kvdev
# (internal/devcluster does the work) and hands it the command.
#
# Node N (1..9) has raft id nN, HTTP on 127.0.0.1:808N and raft/forwarding on
# 127.0.0.1:908N. n1-n3 bootstrap the cluster; `add N` starts another node
# with --join, `remove N` takes one out (its data dir is wiped and a `removed`
# marker keeps `start` from bringing it back; `add N` clears it). All state
# lives under .cluster/ at the repository root, or under $KV_CLUSTER_DIR:
#
#   bin/kvnode      the binary every node runs; built by start (bin/kvdev: the launcher)
#   api-key         the bearer key, mode 0600: $KV_API_KEY when set, else generated once
#   nN/data         node N's raft log, snapshots and store; survives stop and start
#   nN/kvnode.log   node N's stdout and stderr (JSON log lines), appended across runs
#   nN/pid          node N's pid while it runs
#   certs/          the cluster's development CA (ca.pem, ca-key.pem) and node N's
#                   certificate nN.pem / nN-key.pem, generated on first start: the
#                   peer ports always run mutual TLS, each node proving its identity
#                   quorumkv://$KV_CLUSTER_NAME/node/nN (default cluster name quorumkv)
#
# A pid file is trusted only while /proc/PID/cmdline is our kvnode binary with
# this node's data dir, so a stale file or a recycled pid is never signalled.
# Commands that change the cluster hold <dir>/.lock, so two never race.
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
#   KV_TEST_CLOCK_OFFSET   tests only: run started nodes on kvnode's testclock build
#   KV_LOG_LEVEL and other KV_* settings of kvnode pass through to the nodes.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cluster_dir=$(realpath -m -- "${KV_CLUSTER_DIR:-$repo_root/.cluster}")

die() {
	printf 'cluster.sh: %s\n' "$*" >&2
	exit 1
}

command -v go >/dev/null 2>&1 || PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null 2>&1 || die "go is not on PATH and not at /usr/local/go/bin/go"
# go build downloads modules over HTTPS, which needs a CA bundle.
if [[ ! -s /etc/ssl/certs/ca-certificates.crt ]] && command -v apt-get >/dev/null 2>&1; then
	sudo=()
	((EUID == 0)) || sudo=(sudo)
	echo "cluster.sh: installing ca-certificates with apt-get" >&2
	{ "${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends ca-certificates; } >&2 ||
		echo "cluster.sh: warning: no CA bundle; go build can only use modules already cached" >&2
fi

# go build relinks only when kvdev is out of date; the lock keeps two
# invocations from writing it at once.
mkdir -p "$cluster_dir/bin"
lock=()
command -v flock >/dev/null 2>&1 && lock=(flock "$cluster_dir/bin/.build-lock")
(cd "$repo_root" && "${lock[@]}" go build -o "$cluster_dir/bin/kvdev" ./cmd/kvdev) || die "go build ./cmd/kvdev failed"
KV_CLUSTER_DIR=$cluster_dir exec "$cluster_dir/bin/kvdev" --repo "$repo_root" --name cluster.sh "$@"
