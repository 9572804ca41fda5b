#!/bin/sh
# The official redis image's entrypoint, as far as docker-compose.yml uses it: arguments that
# start with a flag are redis-server's; redis-server runs as the user redis, owning /data.
set -eu
case "${1:-}" in -* | *.conf) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
  # The official build compiles protected mode off (clients on the compose network connect
  # without a password); Debian's binary has it on, so turn it off here.
  set -- "$@" --protected-mode no
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis:redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
