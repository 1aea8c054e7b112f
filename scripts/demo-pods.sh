#!/usr/bin/env bash
# The pod half of the course, on one node, inside the sandbox (scripts/sandbox.sh): minilet
# runs the go-demo-2 pod from a static manifest — the db (a mongod stand-in) and the API in
# one pod, talking over localhost — with cni-bridge giving the pod its IP. Then it shows the
# pod, asks the API through the pod IP, and removes everything.
set -euo pipefail
[ "${MINIK_SANDBOX:-}" = inside ] || { echo "run me through scripts/sandbox.sh (make up does)" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MINIK_BIN_DIR:-$root/target/debug}
work=$(mktemp -d)
minilet_pid=
cleanup() {
  rm -f "$work/manifests/"*.yaml
  if [ -n "$minilet_pid" ]; then
    for _ in $(seq 100); do [ -z "$(ls -A "$work/root/pods" 2>/dev/null)" ] && break; sleep 0.1; done
    kill "$minilet_pid" 2>/dev/null || true
    wait "$minilet_pid" 2>/dev/null || true
  fi
  ip netns del node1 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "node1: a network namespace with cni-bridge (pod CIDR 10.244.1.0/24)"
ip netns add node1
ip -n node1 link set lo up
mkdir -p "$work/net.d" "$work/manifests" "$work/root"
cat > "$work/net.d/10-minik.conflist" <<JSON
{"cniVersion":"1.1.0","name":"minik","plugins":[{"type":"cni-bridge","bridge":"cni0","isDefaultGateway":true,
 "ipMasq":true,"hairpinMode":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":"$work/ipam"}}]}
JSON
cat > "$work/minilet.yaml" <<YAML
nodeName: node1
rootDir: $work/root
staticPodPath: $work/manifests
runtime: $bin/minik-oci
shim: $bin/minilet-shim
cniConfDir: $work/net.d
cniBinDirs: [$bin, /usr/lib/cni]
cniCacheDir: $work/cache
YAML
# nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts.
m() { nsenter --net=/run/netns/node1 "$bin/minilet" --config "$work/minilet.yaml" "$@"; }

step "importing the images built by images/build.sh"
for img in demo-api demo-db busybox; do m image import "$root/target/images/oci/$img" --name "$img" | tail -1; done

step "starting minilet and writing the go-demo-2 pod manifest"
nsenter --net=/run/netns/node1 "$bin/minilet" --config "$work/minilet.yaml" run 2> "$work/minilet.log" &
minilet_pid=$!
cat > "$work/manifests/go-demo-2.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: go-demo-2
  labels: {type: backend, service: go-demo-2}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: db
    image: demo-db            # the course uses mongo:3.3; minik builds demo-db in its place
    command: ["mongod"]
    args: ["--rest", "--httpinterface"]
    ports: [{containerPort: 28017}]
  - name: api
    image: demo-api
    env: [{name: DB, value: localhost}]
    ports: [{containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /demo/hello, port: 8080}
      periodSeconds: 1
YAML
for _ in $(seq 300); do m pods | grep -q ' 2/2 ' && break; sleep 0.1; done
m pods
ip=$(m pods | awk '/go-demo-2/ {print $NF}')

step "GET http://$ip:8080/demo/hello from the node"
nsenter --net=/run/netns/node1 busybox wget -qO- "http://$ip:8080/demo/hello"; echo
step "the db's status page on $ip:28017 (first lines)"
nsenter --net=/run/netns/node1 busybox wget -qO- "http://$ip:28017/" | head -5
step "logs of the api container"
m logs go-demo-2 -c api | tail -3
echo
echo "done: removing the pod, minilet and the node"
