#!/usr/bin/env bash
# test.sh is the one command that runs the whole quorumkv suite; CI runs
# exactly this (through .ci/run). On a fresh Debian machine, as root, it first
# installs whatever the tests need and is missing; when nothing is missing it
# needs no root. Then: gofmt (fails on any unformatted file), go mod tidy
# -diff (fails when go.mod or go.sum is not tidy), go vet, and
# finally `go test -race`, whose ok/FAIL lines end the output and whose exit
# status is the script's.
#
# Usage: scripts/test.sh [go test flags and packages]
#   scripts/test.sh                       # everything: ./...
#   scripts/test.sh -run TestX ./fsm/     # flags and packages pass through
#   scripts/test.sh -short                # no packages given: ./... is added
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

say() { printf '==> %s\n' "$*"; }
die() {
	printf 'test.sh: %s\n' "$*" >&2
	exit 1
}

# have CMD: CMD is on PATH or in an sbin directory (a non-root PATH often
# lacks /usr/sbin, where iptables lives).
have() {
	command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /sbin/$1 ]]
}

install_missing() {
	local pkgs=()
	have curl || pkgs+=(curl)         # test/e2e/docs_curl_test.go: the docs' curl examples
	have jq || pkgs+=(jq)             # the same (an example pipes into jq)
	have ip || pkgs+=(iproute2)       # network fault tests
	have iptables || pkgs+=(iptables) # network fault tests
	have chromium || pkgs+=(chromium) # the dashboard's browser test (test/e2e)
	# -race needs cgo, so a C compiler and libc headers.
	have gcc || pkgs+=(gcc libc6-dev)
	# Go downloads modules over HTTPS; without CA certificates that fails.
	[[ -s /etc/ssl/certs/ca-certificates.crt ]] || pkgs+=(ca-certificates)
	((${#pkgs[@]} > 0)) || return 0

	command -v apt-get >/dev/null 2>&1 || die "missing packages ${pkgs[*]} and no apt-get to install them"
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 || die "missing packages ${pkgs[*]}: install them or run as root"
		sudo=(sudo)
	fi
	say "installing ${pkgs[*]}"
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
}

install_missing

if ! command -v go >/dev/null 2>&1; then
	[[ -x /usr/local/go/bin/go ]] || die "go is not on PATH and not at /usr/local/go/bin/go"
	export PATH=/usr/local/go/bin:$PATH
fi
say "$(go version)"

say "gofmt -l ."
unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
	printf '%s\n' "$unformatted" >&2
	die "the files above are not gofmt-formatted (run: gofmt -w FILE)"
fi

say "go mod tidy -diff"
if ! tidy_diff=$(go mod tidy -diff 2>&1); then
	printf '%s\n' "$tidy_diff" >&2
	die "go.mod/go.sum are not tidy: run go mod tidy and commit the result"
fi

say "go vet ./..."
go vet ./...

# Packages default to ./... unless an argument names some (./x, ../x, a
# module path, or "."); flags and their values pass through as they are.
args=("$@")
has_packages=0
for a in "${args[@]+"${args[@]}"}"; do
	case $a in
	. | ./* | ../* | github.com/*) has_packages=1 ;;
	esac
done
if ((!has_packages)); then
	args+=(./...)
	# The fault-injection clock exists only in kvnode's testclock build
	# (which test/chaos and scripts/cluster.sh use): vet and test it too.
	say "go vet and go test -tags testclock ./cmd/kvnode (the test clock)"
	go vet -tags testclock ./cmd/kvnode
	go test -race -count=1 -tags testclock -run 'TestTestClock' ./cmd/kvnode
fi

say "go test -race -count=1 -timeout 20m ${args[*]}"
exec go test -race -count=1 -timeout 20m "${args[@]}"
