# Local stand-in for busybox:1.37-musl (Dockerfile.bundle takes /bin/busybox from it):
# Debian's statically linked busybox.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS src
FROM scratch
COPY --from=src /bin/busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
