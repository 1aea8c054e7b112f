#!/usr/bin/env bash
# Starts a private libvirtd for Vagrant runs inside minik's sandbox (scripts/sandbox.sh),
# so libvirt never touches the host: its networks (bridges, dnsmasq, NAT rules) live in
# the sandbox's network namespace (or, with --netns NAME, in the named namespace NAME,
# made if missing: `ip netns del NAME` then removes every trace of them, the iptables
# chains libvirt leaves included), and its files in DIR. libvirtd runs in a mount
# namespace of its own where DIR's subdirectories are bind-mounted over /etc/libvirt,
# /var/lib/libvirt, /run/libvirt, /var/log/libvirt and /var/cache/libvirt, and copies of
# /etc/passwd and /etc/group with the users Debian's libvirt looks up (libvirt-qemu…)
# over theirs; nothing outside that namespace sees those mounts.
#
#   scripts/sandbox.sh vagrant/sandbox-libvirtd.sh [--foreground] [--netns NAME] DIR
#
# With --netns, run vagrant and kubectl there too (`ip netns exec NAME vagrant up`): the
# VMs' networks are only reachable from that namespace.
#
# Prints two lines once the daemon answers: `pid PID` (stop it with `kill PID`, after
# `vagrant destroy`) and `uri URI` (for LIBVIRT_DEFAULT_URI, virsh -c, vagrant-libvirt):
# qemu:///system?socket=DIR/run/libvirt-sock. With --foreground it becomes libvirtd
# itself (same PID; a test runs it as its child and waits for the socket). QEMU runs as
# root, without cgroups (no systemd here), security drivers or virtlogd; the storage pool
# "default" (vagrant-libvirt's volumes) is DIR/lib/images; DIR/log/ has libvirtd's log.
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }

# The part that runs in libvirtd's own mount namespace.
if [ "${1:-}" = --inner ]; then
  dir="$2"
  for pair in etc:/etc/libvirt lib:/var/lib/libvirt run:/run/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
    mkdir -p "${pair#*:}"   # an empty mount point (libvirt-daemon-system would create it too)
    mount --bind "$dir/${pair%%:*}" "${pair#*:}"
  done
  mount --bind "$dir/passwd" /etc/passwd
  mount --bind "$dir/group" /etc/group
  exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid
fi

foreground=0
netns=""
while (($#)); do
  case "$1" in
    --foreground) foreground=1 ;;
    --netns) netns="${2:?--netns needs a name}"; shift ;;
    -*) die "unknown option '$1' (usage: $0 [--foreground] [--netns NAME] DIR)" ;;
    *) break ;;
  esac
  shift
done
dir="${1:-}"
[ -n "$dir" ] || die "usage: $0 [--foreground] [--netns NAME] DIR (a directory for libvirt's files; run me inside scripts/sandbox.sh)"
[ "${MINIK_SANDBOX:-}" = inside ] || die "run me inside the sandbox: scripts/sandbox.sh $0 $dir"
[ -n "${MINIK_HOST_NETNS:-}" ] && [ "$(readlink /proc/self/ns/net)" != "$MINIK_HOST_NETNS" ] \
  || die "this is the host's network namespace; run me inside scripts/sandbox.sh"
command -v libvirtd >/dev/null || die "libvirtd is missing; run scripts/deps.sh as root (Debian package libvirt-daemon)"

mkdir -p "$dir"
dir="$(realpath "$dir")"
mkdir -p "$dir"/{etc/storage/autostart,lib/images,run,log,cache}
cat >"$dir/etc/libvirtd.conf" <<CONF
# libvirtd inside minik's sandbox (vagrant/sandbox-libvirtd.sh)
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
cat >"$dir/etc/qemu.conf" <<CONF
# QEMU under the sandbox's libvirtd: root, no cgroups (no systemd), no virtlogd.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "file"
CONF
: >"$dir/etc/libvirt.conf"
# vagrant-libvirt keeps its volumes in the pool "default", started with the daemon.
cat >"$dir/etc/storage/default.xml" <<XML
<pool type='dir'>
  <name>default</name>
  <target><path>/var/lib/libvirt/images</path></target>
</pool>
XML
ln -sfn ../default.xml "$dir/etc/storage/autostart/default.xml"
# The users and groups Debian's libvirt (built for libvirt-daemon-system) looks up at
# start, all root here.
cp /etc/passwd "$dir/passwd"
cp /etc/group "$dir/group"
for u in libvirt-qemu libvirt-dnsmasq; do
  grep -q "^$u:" "$dir/passwd" || echo "$u:x:0:0:libvirt in minik's sandbox:/var/lib/libvirt:/usr/sbin/nologin" >>"$dir/passwd"
done
for g in libvirt-qemu libvirt kvm; do
  grep -q "^$g:" "$dir/group" || echo "$g:x:0:" >>"$dir/group"
done

uri="qemu:///system?socket=$dir/run/libvirt-sock"
run=(unshare --mount --propagation private -- "$0" --inner "$dir")
if [ -n "$netns" ]; then
  if [ ! -e "/run/netns/$netns" ]; then
    ip netns add "$netns"
    ip -n "$netns" link set lo up
  fi
  run=(ip netns exec "$netns" "${run[@]}")
fi
if ((foreground)); then
  exec "${run[@]}"
fi
"${run[@]}" >>"$dir/log/libvirtd.out" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 100); do
  if virsh -c "$uri" version >/dev/null 2>&1; then
    echo "pid $pid"
    echo "uri $uri"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || die "libvirtd ended: $(tail -n 5 "$dir/log/libvirtd.out" "$dir/log/libvirtd.log" 2>/dev/null)"
  sleep 0.2
done
kill "$pid" 2>/dev/null || true
die "libvirtd did not answer within 20 s: $(tail -n 5 "$dir/log/libvirtd.log" 2>/dev/null)"
