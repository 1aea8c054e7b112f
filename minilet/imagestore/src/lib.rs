//! minilet's image store.
//!
//! minik has no registry: images get onto a node by importing an [OCI image layout]
//! directory or an `oci-archive` tarball (a tar of such a layout), as `skopeo copy`,
//! `umoci` or `docker save` (Docker 25 and later) produce them. The store keeps every
//! blob once by digest, unpacks every layer once by its uncompressed digest (`diff_id`)
//! and gives each container an overlayfs rootfs whose lower layers are the shared,
//! read-only unpacked layers.
//!
//! # Using it
//!
//! ```no_run
//! # fn main() -> Result<(), minik_imagestore::ImageError> {
//! use minik_imagestore::{merge_command, ImageStore};
//! use std::path::Path;
//!
//! let store = ImageStore::open("/var/lib/minik/images")?;
//! store.import_archive(Path::new("demo-api.tar"), "demo-api")?;
//! let image = store.resolve("demo-api")?; // = localhost/demo-api:latest
//! let rootfs = store.prepare_rootfs(&image, Path::new("/run/minik/containers/c1"))?;
//! let cmd = merge_command(&image.config, &[], &[], &[], None);
//! # let _ = (rootfs, cmd);
//! store.release_rootfs(Path::new("/run/minik/containers/c1"))?;
//! # Ok(()) }
//! ```
//!
//! Every call is blocking (file I/O, `flock`, `mount`): call it from a blocking thread
//! (`tokio::task::spawn_blocking`) in async code. Several processes (the kubelet and a
//! `minilet image import` command) may use one store at the same time.
//!
//! # Image names
//!
//! Pod specs name images as users write them; [`normalize`] turns them into one
//! canonical form, the way Docker and containerd do, except that **an unqualified name
//! means the node's local store**, `localhost/`:
//!
//! | written | normalized |
//! | --- | --- |
//! | `demo-api` | `localhost/demo-api:latest` |
//! | `demo-api:1.0` | `localhost/demo-api:1.0` |
//! | `localhost/demo-api:1.0` | `localhost/demo-api:1.0` |
//! | `team/app` | `localhost/team/app:latest` |
//! | `docker.io/busybox` | `docker.io/library/busybox:latest` |
//! | `registry.example:5000/app@sha256:…` | unchanged (a digest and no tag) |
//!
//! Lookups ([`ImageStore::resolve`], [`ImageStore::remove`]) try the normalized name
//! first and then one fallback, so that an image imported under its short name is found
//! when a manifest spells out Docker Hub, and the other way round:
//!
//! * `docker.io/library/busybox:latest` → then `localhost/busybox:latest`
//!   (`docker.io/team/app:1` → then `localhost/team/app:1`);
//! * an unqualified `busybox` → then `docker.io/library/busybox:latest`.
//!
//! Other registries (`quay.io/…`, `ghcr.io/…`) have no fallback: import such an image
//! under that full name (`--name quay.io/team/app`).
//!
//! # Store layout on disk
//!
//! Everything lives under the root the kubelet passes (e.g. `/var/lib/minik/images`),
//! so a restarted kubelet finds every image, blob and unpacked layer again:
//!
//! ```text
//! <root>/
//!   images.json               name → manifest digest (+ size); rewritten atomically
//!                             (temp file + fsync + rename) under images.lock
//!   images.lock               flock'd by every writer of images.json
//!   blobs/sha256/<hex>        content-addressed blobs: manifests, configs, layers
//!                             (verified against their digest when imported)
//!   layers/<diffid-hex>/fs/   one unpacked layer (whiteouts in overlayfs form), used
//!                             read-only as an overlay lowerdir
//!   layers/<diffid-hex>/.complete
//!                             written before the layer directory is renamed into place
//!   layers/empty/fs/          the lowerdir of images without layers
//!   layers/.tmp-*             layers being unpacked (removed by the next unpacker)
//!   l/<16 hex>                short symlinks to ../layers/<hex>/fs, the lowerdirs'
//!                             names when absolute paths would not fit in the one page
//!                             of mount options (as Docker's overlay2 does)
//!   locks/layer-<hex>.lock    flock'd while a layer is unpacked
//!   tmp/                      oci-archives being extracted for import
//! ```
//!
//! A container's directory (the kubelet's, given to [`ImageStore::prepare_rootfs`])
//! gets `upper/` and `work/` (the overlay's writable layer) and `rootfs/`, the mount
//! point.
//!
//! # Layers and whiteouts
//!
//! Layers may be `application/vnd.oci.image.layer.v1.tar`, `…tar+gzip`, `…tar+zstd`
//! (and their non-distributable forms) or Docker's
//! `application/vnd.docker.image.rootfs.diff.tar.gzip`. While a layer is unpacked its
//! compressed digest is checked again and its uncompressed digest is checked against
//! the config's `diff_ids`. OCI whiteouts are converted to overlayfs's form as
//! containerd's overlay snapshotter does: `.wh.NAME` becomes a 0/0 character device
//! `NAME`, `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory. Entries with
//! `..`, or that would be written through a symlink out of the layer, are rejected;
//! ownership, modes, times, xattrs, hard links, symlinks and device nodes are kept.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod archive;
mod command;
mod digest;
mod error;
mod fsutil;
mod layout;
mod names;
mod overlay;
mod reference;
mod rootfs;
mod store;
mod unpack;

pub use command::{expand, merge_command, Command, DEFAULT_PATH};
pub use error::ImageError;
pub use layout::ImageConfig;
pub use reference::normalize;
pub use rootfs::Rootfs;
pub use store::{Image, ImageInfo, ImageRef, ImageStore, Layer, IMPORT_COMMAND};
