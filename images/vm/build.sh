#!/usr/bin/env bash
# Builds minik's node VM image, offline, from Debian packages and the workspace's binaries:
#
#   target/images/vm/vmlinuz          Debian's kernel (linux-image-<ver>-amd64, the package
#                                     linux-image-amd64 depends on), unpacked, never installed
#   target/images/vm/initramfs.img    a zstd cpio: busybox-static, the kernel modules a node
#                                     needs (with their dependencies), nft/ip/conntrack and
#                                     their libraries, minilet, minilet-shim, minik-oci,
#                                     cni-bridge, minikproxy, the control plane
#                                     (miniapi, minik-controller-manager,
#                                     minik-scheduler, minik-dns), minik-agent and
#                                     theirs, /init (images/vm/init), the files
#                                     under images/vm/rootfs/ (minik-node-start) and
#                                     the demo's OCI layouts in /images
#   target/images/vm/manifest.txt     kernel version and the sha256 of both files
#
#   images/vm/build.sh [--force] [--bin-dir DIR] [--oci-dir DIR] [--out DIR]
#   images/vm/build.sh --fetch      only download the kernel packages (needs the network;
#                                   `make images` runs it before the tests' sandbox)
#   images/vm/build.sh --binaries   list the workspace binaries the image is made of
#
# --bin-dir: the workspace binaries (default target/debug; stripped in the image).
# --oci-dir: the OCI layouts baked into /images (default target/images/oci).
# --out: where the three files go (default target/images/vm).
#
# Reproducible: every entry has mtime SOURCE_DATE_EPOCH (default 0), uid/gid 0, and the
# cpio lists entries sorted, so the same inputs give the same sha256. Cached: when the
# inputs (kernel package, binaries, libraries, this script, init) hash as at the last
# build, nothing is rebuilt. Work files stay under target/images/vm/.
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$ROOT/target/images/vm"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
BIN_DIR="$ROOT/target/debug"
# The OCI layouts baked into the image's /images (images/build.sh makes them).
OCI_DIR="$ROOT/target/images/oci"
OCI_IMAGES=(busybox demo-api demo-db)
OUT="$WORK"
force=0

# Workspace binaries a node VM runs: the node's agents, the control plane (node1 of a
# `--backend vm` cluster runs it) and the launcher's agent (`minik shell` on a VM).
NODE_BINARIES=(minilet minilet-shim minik-oci cni-bridge minikproxy
  miniapi minik-controller-manager minik-scheduler minik-dns minik-agent)
# Files copied into the image as they are (scripts the nodes run).
OVERLAY="$ROOT/images/vm/rootfs"
# Debian binaries from the host, with their libraries.
HOST_BINARIES=(/usr/sbin/nft /usr/sbin/ip /usr/sbin/conntrack /usr/sbin/dropbear /usr/bin/scp /usr/bin/iperf3)  # dropbear, scp: SSH for Vagrant nodes (vagrant-boot); iperf3: pod-network throughput (bench-vm)
# Kernel modules to load at boot; their dependencies are added from each module's
# `depends=` (.modinfo), so the order in the image is a valid load order.
MODULES=(
  virtio virtio_ring virtio_pci virtio_net virtio_blk
  virtio_rng  # entropy from the host: without it the first blocking getrandom() waits minutes under TCG
  9pnet 9pnet_virtio 9p
  virtio_console  # the agent's channel (virtio-serial port org.minik.agent): `minik shell NODE`
  overlay veth bridge br_netfilter
  crc32c_generic  # libcrc32c (nf_conntrack, nf_nat) asks for it as a softdep, not in depends=
  nf_conntrack nf_conntrack_netlink nf_nat nf_tables nft_ct nft_nat nft_masq nft_redir
  nft_numgen nft_chain_nat nft_reject nft_reject_inet nft_reject_ipv4 nft_reject_ipv6
  nft_fib nft_fib_inet nft_fib_ipv4 nft_fib_ipv6 nft_limit nft_hash nft_compat
  nf_reject_ipv4 nf_reject_ipv6 nft_dup_ipv4 nft_log nft_quota nft_tproxy nft_socket
)

step() { echo "==> $*"; }
info() { echo "    $*"; }
die() { echo "error: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --force) force=1 ;;
    --fetch) fetch_only=1 ;;
    --binaries) printf '%s\n' "${NODE_BINARIES[@]}"; exit 0 ;;
    --bin-dir) BIN_DIR="$(realpath "${2:?--bin-dir needs a directory}")"; shift ;;
    --oci-dir) OCI_DIR="$(realpath "${2:?--oci-dir needs a directory}")"; shift ;;
    --out) mkdir -p "${2:?--out needs a directory}"; OUT="$(realpath "$2")"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

for t in cpio zstd dpkg-deb apt-get strip sha256sum; do
  command -v "$t" >/dev/null || die "$t is missing; run scripts/deps.sh (as root) to install it"
done
for b in "${NODE_BINARIES[@]}"; do
  [ -n "${fetch_only:-}" ] || [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b is missing; build it: cargo build --workspace --bins (make build)"
done
for img in "${OCI_IMAGES[@]}"; do
  [ -n "${fetch_only:-}" ] || [ -f "$OCI_DIR/$img/index.json" ] || die "no OCI layout $OCI_DIR/$img; build the images first: images/build.sh (make images)"
done
for b in "${HOST_BINARIES[@]}"; do
  [ -x "$b" ] || die "$b is missing; run scripts/deps.sh (as root) to install nftables, iproute2 and conntrack"
done
mkdir -p "$WORK/debs" "$OUT"
# One build at a time: they share the work files (rootfs, kernel) under target/images/vm.
exec 9>"$WORK/build.lock"
if ! flock -n 9; then
  echo "    another images/vm/build.sh runs; waiting for it"
  flock 9
fi

# --- the kernel package ---------------------------------------------------------------

# fetch_deb PKG: PKG's .deb in target/images/vm/debs, fetched with apt-get download when
# it is not there yet.
fetch_deb() {
  local pkg="$1" deb
  deb="$(ls "$WORK"/debs/"${pkg}"_*.deb 2>/dev/null | sort | tail -n1)"
  if [ -z "$deb" ]; then
    echo "    fetching $pkg (apt-get download; not installed)" >&2
    (cd "$WORK/debs" && apt-get download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed; run 'apt-get update' as root"
    deb="$(ls "$WORK"/debs/"${pkg}"_*.deb | sort | tail -n1)"
  fi
  echo "$deb"
}

# depends_of PKG REGEX: PKG's dependencies whose names match REGEX.
depends_of() {
  apt-cache depends "$1" 2>/dev/null | awk -v re="$2" '$1 == "Depends:" && $2 ~ re { print $2 }'
}

# The kernel's packages, one .deb per line. Debian: the linux-image-<ver>-amd64 that
# linux-image-amd64 depends on (modules included). Ubuntu (e.g. CI runners):
# linux-image-<ver>-generic with linux-modules-<ver>-generic and linux-modules-extra.
kernel_debs() {
  local img pkgs=()
  img="$(depends_of linux-image-amd64 '^linux-image-[0-9]' | head -n1)"
  if [ -n "$img" ]; then
    pkgs=("$img")
  else
    img="$(depends_of linux-image-generic '^linux-image-[0-9]' | head -n1)"
    [ -z "$img" ] || pkgs=("$img" $(depends_of "$img" '^linux-modules-[0-9]') $(depends_of linux-image-generic '^linux-modules-extra-[0-9]'))
  fi
  if ((${#pkgs[@]} == 0)); then
    # No package lists (apt-get update not run): use the one fetched before, if any.
    local have
    have="$(ls "$WORK"/debs/linux-image-*-amd64_*.deb 2>/dev/null | sort | tail -n1)"
    [ -n "$have" ] || die "apt-cache knows neither linux-image-amd64 (Debian) nor linux-image-generic (Ubuntu); run 'apt-get update' as root"
    echo "$have"
    return
  fi
  local p
  for p in "${pkgs[@]}"; do
    fetch_deb "$p"
  done
}

# A module file's content (Debian's are plain .ko; Ubuntu's may be .ko.zst or .ko.xz).
modcat() {
  case "$1" in
    *.zst) zstd -q -d -c "$1" ;;
    *.xz) xz -d -c "$1" ;;
    *) cat "$1" ;;
  esac
}

# --- libraries ----------------------------------------------------------------------------

# The libraries and loader ldd lists for BIN, one per line; empty for a static binary.
shared_libs() {
  local out
  if ! out="$(ldd "$1" 2>&1)"; then
    case "$out" in *"not a dynamic executable"*|*"statically linked"*) return 0 ;; esac
    die "ldd $1: $out"
  fi
  printf '%s\n' "$out" | awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $2 == "=>" && $3 == "not" { print "MISSING " $1; next }
    $1 ~ /^\// { print $1 }' | sort -u
}

# copy_with_libs BIN ROOT DEST: BIN at DEST (stripped of debug info), its libraries at
# their own paths (symlinks resolved).
copy_with_libs() {
  local bin="$1" r="$2" dest="$3" lib
  install -D -m 0755 "$bin" "$r$dest"
  strip --strip-all "$r$dest"
  while read -r lib; do
    [ -n "$lib" ] || continue
    case "$lib" in MISSING*) die "$bin needs ${lib#MISSING } which ldd cannot find" ;; esac
    [ -e "$r$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$r$lib"
  done < <(shared_libs "$bin")
}

# --- modules ------------------------------------------------------------------------------

declare -A MOD_PATH=() MOD_DONE=()
MOD_ORDER=()

# add_module NAME: NAME's dependencies first, then NAME (built-in modules are skipped).
add_module() {
  local name="${1//-/_}" path dep
  [ -z "${MOD_DONE[$name]:-}" ] || return 0
  MOD_DONE[$name]=1
  path="${MOD_PATH[$name]:-}"
  if [ -z "$path" ]; then
    grep -q "/${name}.ko$" <(tr - _ <"$KDIR/modules.builtin") && return 0
    die "kernel $KVER has no module $name (neither a .ko nor built in)"
  fi
  for dep in $(modcat "$KDIR/$path" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1 | tr , ' '); do
    add_module "$dep"
  done
  MOD_ORDER+=("$path")
}

# --- inputs and cache -----------------------------------------------------------------------

# --fetch: only download the kernel packages (make does it before entering the test
# sandbox, which has no network).
if [ -n "${fetch_only:-}" ]; then
  fetched="$(kernel_debs)"
  echo "kernel packages: ${fetched//$'\n'/ }"
  exit 0
fi
DEBS_TEXT="$(kernel_debs)"
mapfile -t DEBS <<<"$DEBS_TEXT"
BUSYBOX="$(command -v busybox || true)"
if [ -z "$BUSYBOX" ] || ! "$BUSYBOX" --list >/dev/null 2>&1 || ldd "$BUSYBOX" >/dev/null 2>&1; then
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 && BUSYBOX=/bin/busybox || die "no static busybox; install busybox-static (scripts/deps.sh)"
fi

inputs_hash() {
  {
    echo "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH modules=${MODULES[*]} $(strip --version | head -n1) $(cpio --version | head -n1) $(zstd --version)"
    local f lib
    for f in "$ROOT/images/vm/build.sh" "$ROOT/images/vm/init" $(find "$OVERLAY" -type f | LC_ALL=C sort) \
      $(cd "$OCI_DIR" && find "${OCI_IMAGES[@]}" -type f | LC_ALL=C sort | sed "s|^|$OCI_DIR/|") "${DEBS[@]}" "$BUSYBOX" "${HOST_BINARIES[@]}" "${NODE_BINARIES[@]/#/$BIN_DIR/}"; do
      echo "$(basename "$f") $(sha256sum <"$f" | cut -d' ' -f1)"
      while read -r lib; do
        [ -n "$lib" ] && echo "$lib $(sha256sum <"$(readlink -f "$lib")" | cut -d' ' -f1)"
      done < <(shared_libs "$f" | grep -v '^MISSING' || true)
    done
  } | sha256sum | cut -d' ' -f1
}

step "checking the inputs (kernel $(basename -a "${DEBS[@]}" | tr '\n' ' '), binaries in $BIN_DIR)"
HASH="$(inputs_hash)"
STAMP="$OUT/inputs.sha256"
if ((force == 0)) && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] \
   && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initramfs.img" ] && [ -f "$OUT/manifest.txt" ]; then
  step "node image up to date (inputs unchanged), skipping"
  sed 's/^/    /' "$OUT/manifest.txt"
  exit 0
fi
rm -f "$STAMP"

# --- the kernel -----------------------------------------------------------------------------

step "unpacking $(basename -a "${DEBS[@]}" | tr '\n' ' ')"
KROOT="$WORK/kernel"
rm -rf "$KROOT"
for deb in "${DEBS[@]}"; do
  dpkg-deb -x "$deb" "$KROOT"
done
MODROOT="$KROOT/lib/modules"
[ -d "$MODROOT" ] || MODROOT="$KROOT/usr/lib/modules"
KVER="$(ls "$MODROOT" 2>/dev/null | head -n1)"
[ -n "$KVER" ] && [ -f "$KROOT/boot/vmlinuz-$KVER" ] || die "$(basename -a "${DEBS[@]}") hold no kernel with modules"
KDIR="$MODROOT/$KVER"
info "kernel $KVER"
while read -r p; do
  n="$(basename "$p")"
  n="${n%%.ko*}"
  MOD_PATH[${n//-/_}]="$p"
done < <(cd "$KDIR" && find kernel -name '*.ko' -o -name '*.ko.zst' -o -name '*.ko.xz' | sort)
for m in "${MODULES[@]}"; do
  add_module "$m"
done
info "${#MOD_ORDER[@]} modules (with dependencies)"

# --- the root filesystem ----------------------------------------------------------------------

step "assembling the initramfs"
R="$WORK/rootfs"
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/minik,proc,sys,dev,run,tmp,var/lib,var/log,root,minik,images}
chmod 1777 "$R/tmp"
chmod 0700 "$R/root"
install -m 0755 "$BUSYBOX" "$R/bin/busybox"
while read -r applet; do
  applet="${applet#/}"
  [ -n "$applet" ] && [ "$applet" != bin/busybox ] || continue
  mkdir -p "$R/$(dirname "$applet")"
  [ -e "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)
for b in "${HOST_BINARIES[@]}"; do
  rm -f "$R$b"
  copy_with_libs "$b" "$R" "$b"
done
for b in "${NODE_BINARIES[@]}"; do
  copy_with_libs "$BIN_DIR/$b" "$R" "/usr/bin/$b"
done
for p in "${MOD_ORDER[@]}"; do
  dest="$R/lib/modules/$KVER/${p%.ko*}.ko"
  mkdir -p "$(dirname "$dest")"
  modcat "$KDIR/$p" >"$dest"
  chmod 0644 "$dest"
  echo "${p%.ko*}.ko"
done >"$R/etc/minik/modules"
install -m 0755 "$ROOT/images/vm/init" "$R/init"
# The demo's OCI layouts: a node imports them at boot (a QEMU node of `minik up` gets the
# launcher's --images over 9p on top of these).
for img in "${OCI_IMAGES[@]}"; do
  mkdir -p "$R/images/$img"
  cp -r "$OCI_DIR/$img/." "$R/images/$img/"
done
# The overlay, as it is (modes kept: scripts stay executable).
(cd "$OVERLAY" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -pdm "$R")
# The console for /init's first output, before it mounts devtmpfs.
mknod -m 0600 "$R/dev/console" c 5 1
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$R/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$R/etc/group"
printf '%s\n' 'hosts: files dns' 'passwd: files' 'group: files' >"$R/etc/nsswitch.conf"
printf '%s\n' '127.0.0.1 localhost' >"$R/etc/hosts"
: >"$R/etc/resolv.conf"
info "$(find "$R" | wc -l) entries, $(du -sh "$R" | cut -f1)"

step "writing initramfs.img (cpio newc, sorted, mtime $SOURCE_DATE_EPOCH, zstd)"
find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tmp="$OUT/initramfs.img.tmp"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) | zstd -q -T1 -10 -c >"$tmp"
mv "$tmp" "$OUT/initramfs.img"
install -m 0644 "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
touch -d "@$SOURCE_DATE_EPOCH" "$OUT/vmlinuz" "$OUT/initramfs.img"
{
  echo "kernel $KVER ($(basename -a "${DEBS[@]}" | tr '\n' ' ' | sed 's/ $//'))"
  echo "vmlinuz $(sha256sum <"$OUT/vmlinuz" | cut -d' ' -f1)"
  echo "initramfs.img $(sha256sum <"$OUT/initramfs.img" | cut -d' ' -f1)"
} >"$OUT/manifest.txt"
echo "$HASH" >"$STAMP"
step "node image in $OUT ($(du -sh "$OUT/initramfs.img" | cut -f1) initramfs)"
sed 's/^/    /' "$OUT/manifest.txt"
