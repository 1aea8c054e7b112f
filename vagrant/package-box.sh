#!/usr/bin/env bash
# Packages minik's node image (images/vm/build.sh) as a Vagrant box for vagrant-libvirt:
#
#   target/images/vm/minik-node.box   a tar (gzip) with
#       metadata.json    {"provider":"libvirt","format":"qcow2","virtual_size":1}
#       box.img          an empty 1 GiB qcow2 (vagrant-libvirt's box format needs a disk;
#                        the node runs from its initramfs)
#       Vagrantfile      the box's defaults (vagrant/box/Vagrantfile): direct kernel boot
#                        of the two files below, SSH as root, no synced folder
#       vmlinuz, initramfs.img, manifest.txt   the node image, as build.sh made it
#
#   vagrant/package-box.sh [--force] [--image DIR] [--out FILE]
#
# --image: the node image's directory (default target/images/vm; build it first with
# images/vm/build.sh). --out: the box file (default target/images/vm/minik-node.box).
# Add it with `vagrant box add --name minik-node target/images/vm/minik-node.box`.
#
# Reproducible: tar entries sorted, mtime SOURCE_DATE_EPOCH (default 0), owner 0, gzip
# without a name or time, so the same image gives the same sha256. Cached: when the
# image and these files hash as at the last packaging, nothing is redone.
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
IMAGE="$ROOT/target/images/vm"
OUT=""
force=0

die() { echo "error: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --force) force=1 ;;
    --image) IMAGE="$(realpath "${2:?--image needs a directory}")"; shift ;;
    --out) OUT="${2:?--out needs a file name}"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
OUT="${OUT:-$IMAGE/minik-node.box}"
mkdir -p "$(dirname "$OUT")"
OUT="$(realpath "$OUT")"

command -v qemu-img >/dev/null || die "qemu-img is missing; run scripts/deps.sh as root (Debian package qemu-utils)"
for f in vmlinuz initramfs.img manifest.txt; do
  [ -f "$IMAGE/$f" ] || die "no $f in $IMAGE; build the node image first: images/vm/build.sh"
done
BOX_VAGRANTFILE="$ROOT/vagrant/box/Vagrantfile"

hash_inputs() {
  {
    echo "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH $(qemu-img --version | head -n1) $(tar --version | head -n1) $(gzip --version | head -n1)"
    sha256sum "$0" "$BOX_VAGRANTFILE" "$IMAGE/vmlinuz" "$IMAGE/initramfs.img" | cut -d' ' -f1
  } | sha256sum | cut -d' ' -f1
}

HASH="$(hash_inputs)"
STAMP="$OUT.inputs.sha256"
if ((force == 0)) && [ -f "$OUT" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  echo "==> $OUT up to date (inputs unchanged), skipping"
  echo "    $(sha256sum "$OUT" | cut -d' ' -f1)"
  exit 0
fi
rm -f "$STAMP"

echo "==> packaging $IMAGE as $OUT"
WORK="$(mktemp -d "$(dirname "$OUT")/.box.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
printf '{"provider":"libvirt","format":"qcow2","virtual_size":1}\n' >"$WORK/metadata.json"
qemu-img create -q -f qcow2 "$WORK/box.img" 1G
install -m 0644 "$BOX_VAGRANTFILE" "$WORK/Vagrantfile"
install -m 0644 "$IMAGE/vmlinuz" "$IMAGE/initramfs.img" "$IMAGE/manifest.txt" "$WORK/"
find "$WORK" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar -C "$WORK" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -cf - metadata.json Vagrantfile box.img vmlinuz initramfs.img manifest.txt \
  | gzip -n -1 >"$WORK/box.tmp"
mv "$WORK/box.tmp" "$OUT"
echo "$HASH" >"$STAMP"
echo "==> box $OUT ($(du -h "$OUT" | cut -f1))"
echo "    $(sha256sum "$OUT" | cut -d' ' -f1)"
echo "    add it: vagrant box add --force --name minik-node $OUT"
