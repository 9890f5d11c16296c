# A FROM scratch image around a static kvnode: no shell, no package manager,
# nothing but the binary and an empty data directory owned by the node's user.
#
# The binary is built on the host first, so the build needs no base image and
# no registry. scripts/docker-build.sh prepares the build context (the binary
# and an empty data/ directory) and runs `docker build`; see it for the
# details, and docs/operations.md ("Deploy") for how to run the image.
FROM scratch

# The version scripts/docker-build.sh stamped into the binary (kvnode --version).
ARG KV_VERSION=devel
LABEL org.opencontainers.image.title="quorumkv kvnode" \
      org.opencontainers.image.version="$KV_VERSION" \
      org.opencontainers.image.licenses="Apache-2.0"

# Non-root numeric user; no /etc/passwd is needed for a numeric id.
USER 65532:65532

COPY kvnode /kvnode
# Docker copies this directory's owner into a fresh named volume mounted at
# /data, so the non-root node can write to it.
COPY --chown=65532:65532 data /data

ENV KV_DATA_DIR=/data \
    KV_HTTP_ADDR=0.0.0.0:8080 \
    KV_PEER_ADDR=0.0.0.0:9080
VOLUME /data
EXPOSE 8080 9080

# /readyz: this node knows a leader, has caught up and can serve linearizable
# reads. The start period covers the first election of a new cluster.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/kvnode", "health"]

ENTRYPOINT ["/kvnode"]
