#!/usr/bin/env bash
# peer-certs.sh issues the peer certificates of the StatefulSet in this
# directory and stores them in the Secret quorumkv-peer-tls, which every pod
# mounts read-only (statefulset.yaml). It uses kvnode's own generator
# (`kvnode certs`): a CA kept in --out on this machine, and one certificate per
# pod carrying the identity quorumkv://<cluster name>/node/<pod name>.
#
#   deploy/kubernetes/peer-certs.sh [--namespace NS] [--replicas N] [--out DIR]
#                                   [--cluster-name NAME] [--dry-run]
#
#   --namespace NS       namespace of the Secret (default: kubectl's current one)
#   --replicas N         pods quorumkv-0..N-1 (default 3); run again with a larger N
#                        to add certificates from the same CA
#   --out DIR            where the CA (ca.pem, ca-key.pem) and the certificates are
#                        kept (default ./quorumkv-pki, created 0700). The Secret gets
#                        ca.pem and the pods' certificates and keys, never ca-key.pem:
#                        keep that file offline; it is what adds a node later.
#   --cluster-name NAME  must equal the pods' KV_CLUSTER_NAME (default quorumkv)
#   --dry-run            print the Secret as YAML instead of applying it
#
# KVNODE names the kvnode binary to use; by default it is built from this
# repository with the local Go toolchain. kubectl must be on PATH.
# For production, issue the certificates from your own CA instead (README,
# Security): the Secret's layout is ca.pem, <pod>.pem and <pod>-key.pem.
set -euo pipefail

name=quorumkv
secret=quorumkv-peer-tls
replicas=3
namespace=
out=./quorumkv-pki
cluster_name=quorumkv
dry_run=0

die() {
	printf 'peer-certs.sh: %s\n' "$*" >&2
	exit 1
}

while (($#)); do
	case $1 in
	--namespace) namespace=${2:?--namespace needs a value}; shift 2 ;;
	--replicas) replicas=${2:?--replicas needs a value}; shift 2 ;;
	--out) out=${2:?--out needs a value}; shift 2 ;;
	--cluster-name) cluster_name=${2:?--cluster-name needs a value}; shift 2 ;;
	--dry-run) dry_run=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
[[ $replicas =~ ^[1-9][0-9]?$ ]] || die "--replicas must be 1..99"
command -v kubectl >/dev/null || die "kubectl is not on PATH"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kvnode=${KVNODE:-}
if [[ -z $kvnode ]]; then
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
	(cd "$repo" && go build -o "$tmp/kvnode" ./cmd/kvnode) || die "could not build kvnode (set KVNODE to a kvnode binary)"
	kvnode=$tmp/kvnode
fi

pods=()
for ((i = 0; i < replicas; i++)); do
	pods+=("$name-$i")
done
missing=()
for p in "${pods[@]}"; do
	[[ -f $out/$p.pem ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	add=()
	[[ -f $out/ca.pem ]] && add=(--add)
	(
		IFS=,
		"$kvnode" certs --out "$out" "${add[@]}" --cluster-name "$cluster_name" --nodes "${missing[*]}" >&2
	) || die "kvnode certs failed"
fi

files=(--from-file="ca.pem=$out/ca.pem")
for p in "${pods[@]}"; do
	files+=(--from-file="$p.pem=$out/$p.pem" --from-file="$p-key.pem=$out/$p-key.pem")
done
ns=()
[[ -n $namespace ]] && ns=(--namespace "$namespace")
if ((dry_run)); then
	kubectl create secret generic "$secret" "${ns[@]}" "${files[@]}" --dry-run=client -o yaml
else
	kubectl create secret generic "$secret" "${ns[@]}" "${files[@]}" --dry-run=client -o yaml | kubectl apply "${ns[@]}" -f -
	printf 'peer-certs.sh: Secret %s holds ca.pem and the certificates of %s; the CA key stays in %s/ca-key.pem\n' \
		"$secret" "${pods[*]}" "$out" >&2
fi
