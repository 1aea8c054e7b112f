#!/usr/bin/env bash
# Builds minik's container images, offline, as OCI image layouts:
#
#   busybox    Debian's busybox-static with applet links (sh, wget, nc, nslookup, ping, ...)
#   demo-api   the workspace's demo-api (go-demo-2 in Rust), glibc-dynamic, with its libraries
#   demo-db    the workspace's demo-db as /usr/bin/mongod (stand-in for mongo:3.3)
#
# Each lands in target/images/oci/<name>/ (tags latest and 1.0) and, as an oci-archive,
# in target/images/<name>.tar. Root filesystems are assembled in target/images/rootfs/.
# Nothing is written outside the repository's target/ (and /tmp).
#
#   images/build.sh [--force] [NAME...]     (default: all three)
#
# Idempotent: an image whose inputs (binaries, libraries, spec, this script, the
# builder, SOURCE_DATE_EPOCH) hash the same as at its last build is skipped. Layers are
# reproducible: the same inputs give the same digests (SOURCE_DATE_EPOCH, default 0, is
# every file's mtime).
#
# busybox comes from the installed busybox-static package if there is one; otherwise its
# .deb is fetched with `apt-get download` into target/images/debs and unpacked there,
# without installing it (busybox-static conflicts with the `busybox` package).
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/images"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CARGO="${CARGO:-cargo}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
ALL_IMAGES=(busybox demo-api demo-db)
PATH_DIRS=(bin sbin usr/bin usr/sbin)

# Applets the busybox image must have (it gets every applet busybox lists; these are checked).
REQUIRED_APPLETS=(sh ls cat echo wget nc nslookup ping sleep ps hostname ip id env grep true false
  mkdir rm httpd top kill head tail seq tr sort vi)

step() { echo "==> $*"; }
info() { echo "    $*"; }
die() { echo "error: $*" >&2; exit 1; }

force=0
images=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    busybox|demo-api|demo-db) images+=("$arg") ;;
    *) die "unknown image or option '$arg' (images: ${ALL_IMAGES[*]})" ;;
  esac
done
((${#images[@]})) || images=("${ALL_IMAGES[@]}")

mkdir -p "$WORK"/{oci,rootfs,stamps,debs}

# --- the binaries ------------------------------------------------------------------------

step "building the release binaries (minik-image-build, demo-api, demo-db)"
(cd "$ROOT" && "$CARGO" build --release --quiet -p minik-image-build -p demo-api -p demo-db)
BUILDER="$TARGET_DIR/release/minik-image-build"
[ -x "$BUILDER" ] || die "the builder $BUILDER was not built"

# --- busybox ------------------------------------------------------------------------------

busybox_binary() {
  if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
    local path
    path="$(dpkg-query -L busybox-static | grep -E '/s?bin/busybox$' | head -n1)"
    [ -n "$path" ] && [ -x "$path" ] && { echo "$path"; return; }
  fi
  local dir="$WORK/debs/busybox-static"
  if [ ! -x "$dir/bin/busybox" ]; then
    echo "    busybox-static is not installed; fetching its .deb (not installing it)" >&2
    (
      cd "$WORK/debs"
      rm -f busybox-static_*.deb
      if ! apt-get download busybox-static >/dev/null 2>&1; then
        [ "$(id -u)" -eq 0 ] || die "apt-get download busybox-static failed; run 'apt-get update' as root"
        apt-get update -qq >/dev/null
        apt-get download busybox-static >/dev/null
      fi
      rm -rf "$dir"
      dpkg-deb -x busybox-static_*.deb "$dir"
    ) >&2
  fi
  [ -x "$dir/bin/busybox" ] || die "no busybox binary in the busybox-static package"
  echo "$dir/bin/busybox"
}

# --- helpers ----------------------------------------------------------------------------

# The files ldd lists for BIN (libraries and the dynamic loader), one per line, sorted.
# Empty for a static binary.
shared_libs() {
  local bin="$1" out
  if ! out="$(ldd "$bin" 2>&1)"; then
    case "$out" in *"not a dynamic executable"*|*"statically linked"*) return 0 ;; esac
    die "ldd $bin: $out"
  fi
  printf '%s\n' "$out" | awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $2 == "=>" && $3 == "not" { print "MISSING " $1; next }
    $1 ~ /^\// { print $1 }' | sort -u
}

# copy_with_libs BIN ROOTFS [DEST]: copies BIN into ROOTFS at DEST (default: its own path),
# plus every library ldd lists and the dynamic loader, each at the same path as on this
# machine (symlinks resolved), so the binary runs in the image as it does here. Binaries
# are stripped of debug info when `strip` is available.
copy_with_libs() {
  local bin="$1" rootfs="$2" dest="${3:-$1}" lib
  install -D -m 0755 "$bin" "$rootfs$dest"
  if command -v strip >/dev/null; then
    strip --strip-debug "$rootfs$dest"
  fi
  while read -r lib; do
    [ -n "$lib" ] || continue
    case "$lib" in MISSING*) die "$bin needs ${lib#MISSING } which ldd cannot find" ;; esac
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done < <(shared_libs "$bin")
  # glibc looks these up through nsswitch.conf; since 2.34 they are stubs, before that
  # they do the work. Copy them when present so name resolution works either way.
  for lib in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2 \
             /lib/aarch64-linux-gnu/libnss_files.so.2 /lib/aarch64-linux-gnu/libnss_dns.so.2; do
    if [ -e "$lib" ] && shared_libs "$bin" | grep -q "$(dirname "$lib")/libc.so"; then
      install -D -m 0644 "$(readlink -f "$lib")" "$rootfs$lib"
    fi
  done
}

# base_fs ROOTFS: the directories and /etc files every image has.
base_fs() {
  local r="$1" d
  for d in "${PATH_DIRS[@]}" etc root tmp proc sys dev var/tmp; do
    mkdir -p "$r/$d"
  done
  chmod 0700 "$r/root"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'nobody:x:65534:' >"$r/etc/group"
  printf '%s\n' 'hosts: files dns' 'passwd: files' 'group: files' >"$r/etc/nsswitch.conf"
  : >"$r/etc/hosts"        # the runtime bind-mounts the pod's
  : >"$r/etc/resolv.conf"  # the runtime bind-mounts the pod's
  chmod 0644 "$r"/etc/{passwd,group,nsswitch.conf,hosts,resolv.conf}
}

# Prints a hash of everything an image is made from: NAME, then files (path and content).
inputs_hash() {
  local name="$1"; shift
  {
    echo "image=$name SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH strip=$(command -v strip || echo none)"
    local f
    for f in "$ROOT/images/build.sh" "$ROOT/images/specs/$name.json" "$BUILDER" "$@"; do
      echo "$f $(sha256sum <"$f" | cut -d' ' -f1)"
    done
  } | sha256sum | cut -d' ' -f1
}

# --- the images ---------------------------------------------------------------------------

assemble_busybox() {
  local r="$1" bb="$2" applet dir
  base_fs "$r"
  install -m 0755 "$bb" "$r/bin/busybox"
  # Every applet at the path busybox gives it (e.g. bin/sh, usr/bin/wget, sbin/ip).
  while read -r applet; do
    applet="${applet#/}"
    [ -n "$applet" ] && [ "$applet" != "bin/busybox" ] || continue
    dir="$(dirname "$applet")"
    mkdir -p "$r/$dir"
    [ -e "$r/$applet" ] || [ -L "$r/$applet" ] || ln -s "/bin/busybox" "$r/$applet"
  done < <("$bb" --list-full)
  for applet in "${REQUIRED_APPLETS[@]}"; do
    local found=0
    for dir in "${PATH_DIRS[@]}"; do
      [ -L "$r/$dir/$applet" ] && found=1
    done
    ((found)) || die "busybox has no '$applet' applet"
  done
}

assemble_demo_api() {
  local r="$1"
  base_fs "$r"
  copy_with_libs "$TARGET_DIR/release/demo-api" "$r" /usr/bin/demo-api
}

assemble_demo_db() {
  local r="$1"
  base_fs "$r"
  copy_with_libs "$TARGET_DIR/release/mongod" "$r" /usr/bin/mongod
  mkdir -p "$r/data/db" "$r/data/configdb"
}

declare -A SUMMARY=()

build_image() {
  local name="$1" inputs=() bb="" hash stamp
  case "$name" in
    busybox)
      bb="$(busybox_binary)"
      inputs=("$bb")
      ;;
    demo-api) inputs=("$TARGET_DIR/release/demo-api") ;;
    demo-db) inputs=("$TARGET_DIR/release/mongod") ;;
  esac
  local bin lib
  for bin in "${inputs[@]}"; do
    while read -r lib; do
      [ -n "$lib" ] && inputs+=("$(readlink -f "$lib")")
    done < <(shared_libs "$bin" | grep -v '^MISSING' || true)
  done
  hash="$(inputs_hash "$name" "${inputs[@]}")"
  stamp="$WORK/stamps/$name.sha256"
  local layout="$WORK/oci/$name" archive="$WORK/$name.tar"

  if ((force == 0)) && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] \
     && [ -f "$layout/index.json" ] && [ -f "$archive" ]; then
    step "$name: up to date (inputs unchanged), skipping"
  else
    step "$name: assembling the root filesystem"
    local r="$WORK/rootfs/$name"
    rm -rf "$r"
    mkdir -p "$r"
    case "$name" in
      busybox) assemble_busybox "$r" "$bb" ;;
      demo-api) assemble_demo_api "$r" ;;
      demo-db) assemble_demo_db "$r" ;;
    esac
    info "$(find "$r" | wc -l) entries, $(du -sh "$r" | cut -f1)"
    step "$name: writing the OCI layout and archive"
    rm -f "$stamp"
    RUST_LOG="${RUST_LOG:-warn}" "$BUILDER" --out "$layout" --spec "$ROOT/images/specs/$name.json" \
      --layer-dir "$r" --archive "$archive" | sed 's/^/    /'
    echo "$hash" >"$stamp"
  fi
  local digest
  digest="$(sed -n 's/.*"digest": *"\(sha256:[0-9a-f]*\)".*/\1/p' "$layout/index.json" | head -n1)"
  SUMMARY[$name]="$(printf '%-9s %-19s %s  layout %s  archive %s' "$name" "latest,1.0" "$digest" \
    "$(du -sh "$layout" | cut -f1)" "$(du -sh "$archive" | cut -f1)")"
}

for name in "${images[@]}"; do
  build_image "$name"
done

step "images in $WORK"
for name in "${images[@]}"; do
  info "${SUMMARY[$name]}"
done
