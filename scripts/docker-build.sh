#!/usr/bin/env bash
# docker-build.sh builds a static kvnode on this machine and the FROM scratch
# image around it (Dockerfile). No base image is pulled and no registry is
# used: the binary is built here with the local Go toolchain, then copied in.
#
# Usage: scripts/docker-build.sh [IMAGE]
#   IMAGE defaults to $KV_IMAGE, else quorumkv/kvnode:dev.
# Environment:
#   KV_IMAGE         image name:tag to build
#   KV_BUILD_DIR     where the build context is assembled (default: a temporary
#                    directory, removed afterwards)
#   GOOS, GOARCH     target platform of the binary (default: the docker
#                    engine's, which usually is this machine's)
#   KV_VERSION       version stamped into the binary (kvnode --version,
#                    /cluster/status, quorumkv_build_info) and the image label
#                    (default: `git describe --tags` of this checkout without
#                    the leading v, else "devel"); the git revision is stamped
#                    too when git knows it
# Output: the last line is "IMAGE ID SIZE" (size in bytes), for scripts.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

image=${1:-${KV_IMAGE:-quorumkv/kvnode:dev}}

say() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'docker-build.sh: %s\n' "$*" >&2
	exit 1
}

command -v docker >/dev/null 2>&1 || die "docker is not on PATH"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
	die "cannot reach the docker daemon (is it running, and may this user use it?)"
if ! command -v go >/dev/null 2>&1; then
	[[ -x /usr/local/go/bin/go ]] || die "go is not on PATH and not at /usr/local/go/bin/go"
	export PATH=/usr/local/go/bin:$PATH
fi

if [[ -n ${KV_BUILD_DIR:-} ]]; then
	ctx=$KV_BUILD_DIR
	rm -rf "$ctx"
	mkdir -p "$ctx"
else
	ctx=$(mktemp -d "${TMPDIR:-/tmp}/kvnode-docker.XXXXXX")
	trap 'rm -rf "$ctx"' EXIT
fi

# The image's platform is the engine's, not necessarily this machine's.
goos=${GOOS:-$(docker version --format '{{.Server.Os}}')}
goarch=${GOARCH:-$(docker version --format '{{.Server.Arch}}')}

# The version and revision, stamped with -X (internal/version).
version=${KV_VERSION:-}
revision=
if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
	revision=$(git rev-parse HEAD)
	[[ -n $version ]] || version=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || true)
fi
version=${version#v}
version=${version:-devel}
pkg=github.com/quorumkv/quorumkv/internal/version
ldflags="-s -w -X $pkg.version=$version -X $pkg.revision=$revision"

say "go build (static, CGO_ENABLED=0, $goos/$goarch, version $version) -> $ctx/kvnode"
CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -ldflags "$ldflags" -o "$ctx/kvnode" ./cmd/kvnode
mkdir "$ctx/data"
cp Dockerfile "$ctx/Dockerfile"

# The classic builder needs no buildx plugin and handles this Dockerfile fully.
say "docker build -t $image"
DOCKER_BUILDKIT=0 docker build --quiet --build-arg "KV_VERSION=$version" -t "$image" "$ctx" >/dev/null

docker image inspect --format "$image {{.Id}} {{.Size}}" "$image"
