# Local stand-ins for the public images of docker-compose.yml, which cannot be pulled here
# (e2e/compose/test.sh builds them): Debian's packages laid out as the official images are,
# so the compose file's commands, flags, mounts and health checks work unchanged.
#   --target redis            for redis:7.4-alpine
#   --target prometheus       for prom/prometheus
#   --target redis-exporter   for oliver006/redis_exporter:<version>-alpine
# One package layer serves the three (a single apt run, cached once).
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS packages
# policy-rc.d: the packages' scripts must not start servers inside the build. path-exclude:
# the tests use Prometheus's API, not its web UI, whose time zone data is 218 MB. The official
# images have busybox's wget (the health checks use it); the base image has busybox.
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && printf 'path-exclude=/usr/share/javascript/moment-timezone/*\npath-exclude=/usr/share/doc/*\n' >/etc/dpkg/dpkg.cfg.d/standins \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      redis-server prometheus prometheus-redis-exporter >/dev/null \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
 && ln -s /bin/busybox /usr/local/bin/wget

# The official redis image: entrypoint docker-entrypoint.sh, data in /data, redis-cli.
FROM packages AS redis
RUN mkdir /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]

# The official prom/prometheus image: /bin/prometheus, user nobody, TSDB in /prometheus.
FROM packages AS prometheus
RUN mkdir /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

# The official redis_exporter image: /redis_exporter, uid 59000, configured by REDIS_ADDR.
FROM packages AS redis-exporter
RUN ln -s /usr/bin/prometheus-redis-exporter /redis_exporter
USER 59000:59000
EXPOSE 9121
ENTRYPOINT ["/redis_exporter"]
