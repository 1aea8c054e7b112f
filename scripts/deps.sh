#!/usr/bin/env bash
# Installs the Debian packages minik needs, and nothing when they are all there already
# (so the test command can call it on every run). Run as root.
set -euo pipefail

packages=(
  iproute2            # ip: namespaces and links in the tests and the launcher
  nftables            # nft: masquerade and Service rules
  iptables            # the reference portmap plugin programs iptables(-nft)
  containernetworking-plugins  # reference CNI plugins, for side-by-side tests and benchmarks
  util-linux          # unshare: the sandbox
  busybox-static      # ping, wget, nc, httpd for the demo pods; the busybox image
  umoci               # builds/reads OCI layouts in the image tests
  skopeo              # makes oci-archives in the image store tests
  crun                # reference OCI runtimes for the runtime benchmark
  runc
  iperf3              # ClusterIP vs pod-IP throughput in bench-services
  conntrack           # minikproxy: flushes UDP conntrack entries of removed endpoints
  etcd-server protobuf-compiler libprotobuf-dev  # miniapi --store etcd (tests start etcd); protoc + well-known .protos build etcd-client
  bind9-dnsutils dnsmasq-base  # minik-dns: dig in its tests; dnsmasq as the tests' upstream and the DNS benchmark's reference
  qemu-system-x86     # VM nodes (minik up --vms N) boot under qemu-system-x86_64
  cpio                # images/vm/build.sh packs the node VM's initramfs
  zstd                # images/vm/build.sh compresses the initramfs
  vagrant vagrant-libvirt libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-utils dropbear-bin  # Vagrant nodes (vagrant/): libvirtd only inside the sandbox (vagrant/sandbox-libvirtd.sh), qemu-img for the box, dropbear+scp for SSH in the image
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing packages needs root; run as root (e.g. sudo make test)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # No package may start a service on the host (libvirt's would make virbr0 and NAT rules
  # in the host's network): policy-rc.d refuses every start while apt-get runs.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# scripts/deps.sh: no service starts while it installs\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
    trap 'rm -f "$guard"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$guard" ]; then
    rm -f "$guard"
    trap - EXIT
  fi
fi
if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
