#!/usr/bin/env bash
# The network half of the course, on two nodes, inside the sandbox (scripts/sandbox.sh):
# an underlay bridge with two nodes, cni-bridge on each node with routes to the other's
# pod CIDR, two pods per node, pod-to-pod across nodes without NAT, and masquerade to
# a host that is not a node. Everything lives in namespaces that vanish with the sandbox.
set -euo pipefail
[ "${MINIK_SANDBOX:-}" = inside ] || { echo "run me through scripts/sandbox.sh (make up does)" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
plugin=${MINIK_BIN_DIR:-$root/target/debug}/cni-bridge
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "underlay 192.168.50.0/24 with node1 (.11), node2 (.12) and an outside host (.100)"
ip netns add underlay
ip -n underlay link add br0 type bridge
ip -n underlay link set br0 up
plug() { # plug NS ADDR
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip -n underlay link add "u-$1" type veth peer name eth0 netns "$1"
  ip -n underlay link set "u-$1" master br0 up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
}
plug node1 192.168.50.11
plug node2 192.168.50.12
plug outside 192.168.50.100

conf() { # conf NODE SUBNET OTHER_SUBNET OTHER_IP
  cat <<JSON
{"cniVersion":"1.1.0","name":"minik","type":"cni-bridge","bridge":"cni0",
 "isDefaultGateway":true,"ipMasq":true,"hairpinMode":true,
 "ipam":{"type":"host-local","ranges":[[{"subnet":"$2"}]],"dataDir":"$work/$1"},
 "nodeRoutes":[{"dst":"$3","via":"$4"}]}
JSON
}
conf node1 10.244.1.0/24 10.244.2.0/24 192.168.50.12 > "$work/node1.conf"
conf node2 10.244.2.0/24 10.244.1.0/24 192.168.50.11 > "$work/node2.conf"
add_pod() { # add_pod NODE POD
  ip netns add "$2"
  ip -n "$2" link set lo up
  ip netns exec "$1" env CNI_COMMAND=ADD CNI_CONTAINERID="$2" \
    CNI_NETNS="/run/netns/$2" CNI_IFNAME=eth0 CNI_PATH="$(dirname "$plugin")" "$plugin" < "$work/$1.conf" > "$work/$2.json"
  printf '%-6s on %-5s  %s\n' "$2" "$1" "$(ip -n "$2" -4 -o addr show eth0 | awk '{print $4}')"
}
step "cni-bridge ADD: two pods per node"
add_pod node1 pod-a
add_pod node1 pod-b
add_pod node2 pod-c
add_pod node2 pod-d

step "node1's routes: its bridge, and node2's pod CIDR via node2 (proto 211 = minik)"
ip -n node1 route show

ipof() { ip -n "$1" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1; }
step "pod-a -> pod-c across nodes (ping by pod IP, no NAT)"
ip netns exec pod-a busybox ping -c 2 -W 2 "$(ipof pod-c)"
step "pod-a -> pod-b on the same node"
ip netns exec pod-a busybox ping -c 1 -W 2 "$(ipof pod-b)"
step "pod-a -> the outside host 192.168.50.100 (masqueraded to node1's 192.168.50.11)"
ip netns exec pod-a busybox ping -c 1 -W 2 192.168.50.100
ip netns exec node1 nft list table inet minik_cni

step "cni-bridge DEL of every pod"
for p in pod-a:node1 pod-b:node1 pod-c:node2 pod-d:node2; do
  pod=${p%%:*} node=${p##*:}
  ip netns exec "$node" env CNI_COMMAND=DEL CNI_CONTAINERID="$pod" CNI_NETNS="/run/netns/$pod" \
    CNI_IFNAME=eth0 "$plugin" < "$work/$node.conf"
  ip netns del "$pod"
done
for ns in node1 node2 outside underlay; do ip netns del "$ns"; done
echo "done: the sandbox and everything in it is gone when this exits"
