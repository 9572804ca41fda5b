# kube-proxy as kubeadm runs it (registry.k8s.io/kube-proxy): the binary plus the iptables,
# conntrack and kmod it calls. Debian's iptables defaults to nft, as kind's node selects.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables conntrack kmod >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY kube-proxy /usr/local/bin/kube-proxy
