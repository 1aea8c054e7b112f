#!/bin/sh
# provision.sh: Vagrant's shell provisioner on a minik node (see vagrant/Vagrantfile),
# run as root over SSH after the file provisioners uploaded the node's files to
# /tmp/minik-upload and the OCI layouts to /tmp/minik-images.
#
# Moves them to /minik and /images, and starts the node's services with the image's
# minik-node-start, as the QEMU nodes of `minik up` do. On the control-plane node
# (ROLE=control in node.env) it also issues the credentials once miniapi made its CA and
# token file: /minik/kubeconfig (node1's own, which the services file waits for) and, in
# /minik/issued/, the other nodes' kubeconfigs and the admin kubeconfig, which the host
# fetches (the Vagrantfile's trigger). Running it again (vagrant provision) on a node
# whose services run changes nothing.
set -eu
say() { echo "minik-provision: $*"; }
fail() { say "FAILED: $*" >&2; exit 1; }

[ -d /tmp/minik-upload ] || fail "no /tmp/minik-upload (the file provisioner 'minik-files' runs first)"
if [ -f /minik/status/minilet ]; then
  say "$(hostname): services already started ($(cat /minik/status/minilet)); nothing to do"
  rm -rf /tmp/minik-upload /tmp/minik-images
  exit 0
fi
cp -a /tmp/minik-upload/. /minik/
if [ -d /tmp/minik-images ]; then
  cp -a /tmp/minik-images/. /images/
fi
rm -rf /tmp/minik-upload /tmp/minik-images
. /minik/node.env
say "$NODE ($ROLE): files in /minik, images: $(ls /images | tr '\n' ' ')"
mkdir -p /minik/logs

if [ "$ROLE" != control ]; then
  [ -s /minik/kubeconfig ] || fail "no /minik/kubeconfig for $NODE: node1 issues it; bring node1 up first (vagrant up node1)"
  minik-node-start || fail "minik-node-start failed (logs in /minik/logs on $NODE)"
  say "$NODE: services started"
  exit 0
fi

# The control plane: minik-node-start starts miniapi, then waits for /minik/kubeconfig.
minik-node-start >/minik/logs/node-start.log 2>&1 &
start_pid=$!
api=/var/lib/miniapi
n=0
until [ -s "$api/pki/ca.crt" ] && [ -s "$api/tokens.csv" ] && [ -s "$api/admin.kubeconfig" ]; do
  kill -0 "$start_pid" 2>/dev/null || fail "minik-node-start ended early: $(tail -n 3 /minik/logs/node-start.log)"
  n=$((n + 1))
  [ "$n" -lt 900 ] || fail "miniapi made no CA and admin kubeconfig in 180 s (see /minik/logs/miniapi.log)"
  sleep 0.2
done
say "miniapi is up; issuing credentials for $NODES"
mkdir -p /minik/issued
chmod 0700 /minik/issued
for node in $NODES; do
  miniapi --data-dir "$api" kubeconfig --user "system:node:$node" --group system:nodes --server "$API_SERVER" \
    --out "/minik/issued/$node.kubeconfig" >/dev/null || fail "cannot issue credentials for $node"
done
cp "$api/admin.kubeconfig" /minik/issued/admin.kubeconfig
cp "/minik/issued/$NODE.kubeconfig" /minik/kubeconfig.tmp
mv /minik/kubeconfig.tmp /minik/kubeconfig
wait "$start_pid" || fail "minik-node-start failed: $(tail -n 3 /minik/logs/node-start.log)"
cat /minik/logs/node-start.log
say "$NODE: control plane and node services started"
