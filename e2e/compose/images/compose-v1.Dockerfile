# Debian's docker-compose 1.29, so e2e/compose/test.sh can check that docker-compose.yml also
# suits the Compose that Debian and Ubuntu users get with apt (the test runs Compose v2).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null \
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["docker-compose"]
