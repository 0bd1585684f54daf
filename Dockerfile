# kvnode image: one static binary and its cluster configuration, nothing else.
#
# The binary is built on the host (no image is pulled, so there is no Go
# toolchain image to build in):
#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/kvnode ./cmd/kvnode
#   docker build -t kvnode:local .
# `make image` does both.
FROM scratch

COPY bin/kvnode /kvnode
COPY jepsen/docker/kvnode.yaml /etc/kvnode/kvnode.yaml

# RPC (goridge) and raft (raft + write forwarding, one multiplexed port).
EXPOSE 6001 7000
VOLUME ["/data"]

ENTRYPOINT ["/kvnode"]
CMD ["serve", "-c", "/etc/kvnode/kvnode.yaml"]
