#!/usr/bin/env bash
# Runs a command inside a private sandbox: a new network namespace (so nothing touches
# the host's network: no link, route, address, sysctl or nft rule), a private mount
# namespace with its own tmpfs on /run/netns (so `ip netns` names stay inside), and
# loopback up. Nodes and pods are then built as further namespaces inside it.
#
#   scripts/sandbox.sh CMD [ARGS...]
set -euo pipefail

if [ "${MINIK_SANDBOX:-}" != "inside" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: the sandbox needs root (network and mount namespaces); run as root" >&2
    exit 1
  fi
  # /run/netns may not exist on a fresh host; an empty directory is not network state.
  mkdir -p /run/netns
  # Remember the host's network namespace, so tests can check they are not in it.
  export MINIK_HOST_NETNS="$(readlink /proc/self/ns/net)"
  MINIK_SANDBOX=inside exec unshare --net --mount --propagation private -- "$0" "$@"
fi

mount -t tmpfs -o mode=0755,size=64m minik-netns /run/netns
mount --make-rshared /run/netns 2>/dev/null || true
ip link set lo up
export MINIK_SANDBOX=inside
exec "$@"
