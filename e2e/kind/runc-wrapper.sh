#!/usr/bin/env bash
# A runc wrapper for machines whose capability bounding set lacks capabilities Docker asks
# for (seen: CAP_SYS_RESOURCE missing on a VM, so every `docker run --privileged` fails with
# "unable to apply caps: operation not permitted"). It deletes the capabilities this machine
# cannot grant from the OCI spec (the bundle's config.json for create/run, the --process file
# for exec), then runs the real runc with the same arguments. scripts/docker-env.sh installs
# it as the default runtime of the private dockerd only.
set -euo pipefail
real=${WAVELET_REAL_RUNC:-$(command -v runc || echo /usr/sbin/runc)}

# Names of capabilities 0..40 (linux/capability.h), to compare with the bounding set.
names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
  SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
  SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
  MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
  CHECKPOINT_RESTORE)
bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
missing=()
for i in "${!names[@]}"; do
  (((bnd >> i) & 1)) || missing+=("\"CAP_${names[$i]}\"")
done

strip() { # strip <json file> <jq path of the capabilities object>
  [[ -f "$1" && ${#missing[@]} -gt 0 ]] || return 0
  local tmp="$1.wavelet-tmp" drop
  drop="[$(IFS=,; echo "${missing[*]}")]"
  jq --argjson drop "$drop" "if $2 then $2 |= with_entries(.value |= ((. // []) - \$drop)) else . end" "$1" >"$tmp"
  mv "$tmp" "$1"
}

bundle=. process="" cmd=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  a=${args[$i]}
  case "$a" in
  --bundle | -b) bundle=${args[$((i + 1))]} ;;
  --bundle=*) bundle=${a#--bundle=} ;;
  --process | -p) process=${args[$((i + 1))]} ;;
  --process=*) process=${a#--process=} ;;
  create | run | exec) [[ -z "$cmd" ]] && cmd=$a ;;
  esac
done
case "$cmd" in
create | run) strip "$bundle/config.json" .process.capabilities ;;
exec) [[ -n "$process" ]] && strip "$process" .capabilities ;;
esac
exec "$real" "$@"
