# Local stand-in for gcr.io/distroless/cc-debian12:nonroot, from the debootstrap base:
# glibc, libgcc, libstdc++, OpenSSL, CA certificates, time zones and /etc/passwd with
# root, nobody and nonroot. No shell, no package manager.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS rootfs
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# Bookworm merges /usr: recreate its top-level links first so packages' /lib paths land in /usr/lib.
RUN mkdir -p /out/usr/bin /out/usr/lib /out/usr/lib64 /out/usr/sbin /out/etc /out/home/nonroot /out/tmp \
 && for d in bin lib lib64 sbin; do ln -s usr/$d /out/$d; done \
 && chmod 1777 /out/tmp && chown 65532:65532 /out/home/nonroot \
 && for p in base-files netbase tzdata ca-certificates libc6 libgcc-s1 gcc-12-base libstdc++6 libssl3; do \
      dpkg -L "$p" | while read -r f; do \
        if [[ -f "$f" || -L "$f" ]]; then cp -a --parents "$f" /out; fi; \
      done; \
    done \
 && cp -a /etc/ssl/certs /out/etc/ssl/ && cp -a /etc/ld.so.conf /etc/ld.so.conf.d /out/etc/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/out/etc/passwd \
 && printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >/out/etc/group \
 && ldconfig -r /out

FROM scratch
COPY --from=rootfs /out/ /
USER 65532:65532
