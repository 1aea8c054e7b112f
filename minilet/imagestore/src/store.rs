//! The image store: its handle and public types, opening it, and importing OCI image
//! layouts and archives (blobs verified and copied once by digest). Names live in
//! `names.rs`, rootfs in `rootfs.rs`; the on-disk layout is in the crate docs.

use crate::archive::extract_archive;
use crate::digest::{Digest, HashReader};
use crate::error::{io_err, ImageError};
use crate::fsutil::{mkdir_p, now_secs, remove_stale, unique_suffix, write_atomic};
use crate::layout::{self, BlobRef, ImageConfig, IndexEntry, MAX_JSON_BLOB};
use crate::names::Record;
use crate::reference::Reference;
use serde::Serialize;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// The command that imports images, as named in [`ImageError::NotFound`]'s hint.
pub const IMPORT_COMMAND: &str = "minilet image import";
/// How deep image indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

/// A node's image store, rooted at a directory (e.g. `/var/lib/minik/images`).
#[derive(Clone, Debug)]
pub struct ImageStore {
    pub(crate) root: PathBuf,
}

/// An image that an import named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// The name it can be resolved by (`localhost/demo-api:1.0`, or
    /// `localhost/demo-api@sha256:…` for an untagged manifest).
    pub reference: String,
    /// Its manifest's digest.
    pub manifest_digest: String,
}

/// One name in the store, as [`ImageStore::list`] gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// The full reference (`localhost/demo-api:1.0`).
    pub reference: String,
    /// The repository (`localhost/demo-api`).
    pub name: String,
    /// The tag (`1.0`), `None` for a name by digest.
    pub tag: Option<String>,
    /// The manifest's digest.
    pub manifest_digest: String,
    /// Manifest, config and (compressed) layers, in bytes.
    pub size: u64,
}

/// One layer of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The blob's (compressed) digest.
    pub digest: String,
    /// The uncompressed tar's digest (the config's diff_id), which names its unpacked
    /// directory.
    pub diff_id: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// An image found in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The normalized name it was found under (`localhost/demo-api:latest`).
    pub reference: String,
    /// Its manifest's digest (the Kubernetes `imageID`).
    pub manifest_digest: String,
    /// Its config (entrypoint, cmd, env, ...).
    pub config: ImageConfig,
    pub(crate) layers: Vec<Layer>,
}

impl Image {
    /// The layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
}

impl ImageStore {
    /// Opens (creating it if needed) the store at `root`. Fails if `images.json` is
    /// damaged.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let root =
            std::path::absolute(root.into()).map_err(io_err("resolve", "image store root"))?;
        let store = ImageStore { root };
        for d in [
            store.root.join("blobs/sha256"),
            store.root.join("blobs/sha512"),
            store.layers_dir(),
            store.root.join("locks"),
            store.root.join("l"),
            store.root.join("tmp"),
        ] {
            mkdir_p(&d)?;
        }
        let empty = store.layers_dir().join("empty");
        if !empty.join(".complete").exists() {
            mkdir_p(&empty.join("fs"))?;
            write_atomic(&empty.join(".complete"), b"{}\n")?;
        }
        remove_stale(&store.root.join("tmp"), "");
        remove_stale(&store.root.join("blobs/sha256"), ".tmp-");
        remove_stale(&store.root.join("blobs/sha512"), ".tmp-");
        store.load_db()?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        layout::blob_path(&self.root, d)
    }

    /// Imports the images of the OCI image layout in `dir`: every manifest that
    /// `index.json` lists, or only the one whose `org.opencontainers.image.ref.name`
    /// is `tag` (or ends in `:tag`). Each is named `name:<tag from ref.name>` (`name`
    /// is normalized: `demo-api` → `localhost/demo-api`); a `name` with a tag
    /// (`demo-api:1.0`) names the one image imported; an image without a ref.name is
    /// `name:latest` when it is the only one, `name@<digest>` otherwise. Nested image
    /// indexes give the manifest for this machine's platform. Every blob is verified
    /// against its digest and size and copied into the store (blobs already there are
    /// skipped); existing names are re-pointed.
    pub fn import_layout(
        &self,
        dir: &Path,
        tag: Option<&str>,
        name: &str,
    ) -> Result<Vec<ImageRef>, ImageError> {
        let target = Reference::parse(name)?;
        if target.digest.is_some() {
            return Err(ImageError::InvalidReference {
                reference: name.to_string(),
                reason: "the name to import as cannot have a digest (the digest comes from the image); give a name like demo-api or demo-api:1.0".to_string(),
            });
        }
        let entries = layout::read_layout_index(dir)?;
        let all_names: Vec<String> = entries
            .iter()
            .map(|e| {
                e.ref_name
                    .clone()
                    .unwrap_or_else(|| e.blob.digest.to_string())
            })
            .collect();
        let mut chosen: Vec<(Option<String>, IndexEntry)> = Vec::new();
        for e in entries {
            let etag = e.ref_name.as_deref().and_then(layout::tag_of_ref_name);
            if let Some(want) = tag {
                if etag.as_deref() != Some(want) && e.ref_name.as_deref() != Some(want) {
                    continue;
                }
            }
            if e.is_manifest() || e.is_index() {
                chosen.push((etag, e));
            } else {
                tracing::warn!(digest = %e.blob.digest, media_type = %e.blob.media_type, "skipping an index entry that is not an image");
            }
        }
        if chosen.is_empty() {
            let reason = match tag {
                Some(t) => format!(
                    "index.json has no image tagged {t:?}; it has: {}",
                    if all_names.is_empty() {
                        "nothing".to_string()
                    } else {
                        all_names.join(", ")
                    }
                ),
                None => "index.json lists no image manifests".to_string(),
            };
            return Err(ImageError::InvalidLayout {
                path: dir.join("index.json"),
                reason,
            });
        }
        let n = chosen.len();
        if target.tag.is_some() && n > 1 {
            return Err(ImageError::InvalidReference {
                reference: name.to_string(),
                reason: format!(
                    "the name has a tag, but {} has {n} images ({}); pick one with --tag, or give the name without a tag",
                    dir.display(),
                    all_names.join(", ")
                ),
            });
        }

        let mut imported: Vec<(String, Record)> = Vec::new();
        for (etag, entry) in chosen {
            let manifest = self.platform_manifest(dir, &entry, 0)?;
            let size = self.import_image(dir, &manifest)?;
            let tag = target
                .tag
                .clone()
                .or(etag)
                .or_else(|| (n == 1).then(|| "latest".to_string()));
            let digest = manifest.digest.to_string();
            let r = Reference {
                digest: tag.is_none().then(|| digest.clone()),
                tag,
                ..target.clone()
            };
            imported.push((
                r.to_string(),
                Record {
                    manifest: digest,
                    size,
                    imported: now_secs(),
                },
            ));
        }
        self.update_db(|db| {
            for (k, rec) in &imported {
                if let Some(old) = db.images.insert(k.clone(), rec.clone()) {
                    if old.manifest != rec.manifest {
                        tracing::info!(name = %k, old = %old.manifest, new = %rec.manifest, "image name re-pointed");
                    }
                }
            }
            Ok(())
        })?;
        Ok(imported
            .into_iter()
            .map(|(reference, rec)| ImageRef {
                reference,
                manifest_digest: rec.manifest,
            })
            .collect())
    }

    /// Imports an `oci-archive`: a tar (maybe gzip- or zstd-compressed) of an OCI image
    /// layout, as `skopeo copy … oci-archive:FILE` or `tar -C LAYOUT -cf FILE .` make.
    /// Names its images as [`ImageStore::import_layout`] does.
    pub fn import_archive(&self, tar: &Path, name: &str) -> Result<Vec<ImageRef>, ImageError> {
        Reference::parse(name)?;
        let tmp = self
            .root
            .join("tmp")
            .join(format!("archive-{}", unique_suffix()));
        mkdir_p(&tmp)?;
        let result = extract_archive(tar, &tmp).and_then(|()| self.import_layout(&tmp, None, name));
        if let Err(e) = fs::remove_dir_all(&tmp) {
            tracing::warn!(path = %tmp.display(), error = %e, "cannot remove an extracted archive");
        }
        result.map_err(|e| match e {
            ImageError::InvalidLayout { path, reason } if path.starts_with(&tmp) => {
                ImageError::InvalidLayout {
                    path: tar.join(path.strip_prefix(&tmp).unwrap_or(&path)),
                    reason,
                }
            }
            other => other,
        })
    }

    /// The image manifest an index entry stands for: itself, or (for an image index)
    /// the manifest for this platform. Nested index blobs are imported too.
    fn platform_manifest(
        &self,
        dir: &Path,
        entry: &IndexEntry,
        depth: usize,
    ) -> Result<BlobRef, ImageError> {
        if entry.is_manifest() {
            return Ok(entry.blob.clone());
        }
        if depth >= MAX_INDEX_DEPTH {
            return Err(ImageError::InvalidLayout {
                path: dir.to_path_buf(),
                reason: format!("image indexes nest more than {MAX_INDEX_DEPTH} deep"),
            });
        }
        let bytes = self.import_json_blob(dir, &entry.blob, "image index")?;
        let nested = layout::parse_index(&bytes).map_err(|reason| ImageError::InvalidLayout {
            path: layout::blob_path(dir, &entry.blob.digest),
            reason,
        })?;
        let (os, arch) = layout::host_platform();
        let images: Vec<&IndexEntry> = nested
            .iter()
            .filter(|e| e.is_manifest() || e.is_index())
            .collect();
        let pick = images
            .iter()
            .find(|e| {
                e.platform
                    .as_ref()
                    .is_some_and(|(o, a)| o == os && a == arch)
            })
            .or_else(|| (images.len() == 1 && images[0].platform.is_none()).then_some(&images[0]));
        match pick {
            Some(e) => self.platform_manifest(dir, e, depth + 1),
            None => Err(ImageError::InvalidLayout {
                path: layout::blob_path(dir, &entry.blob.digest),
                reason: format!(
                    "the image index {} has no image for {os}/{arch} (it has: {}); export the image for this platform (`skopeo copy --override-arch {arch} ...`)",
                    entry.blob.digest,
                    nested
                        .iter()
                        .map(|e| e
                            .platform
                            .as_ref()
                            .map(|(o, a)| format!("{o}/{a}"))
                            .unwrap_or_else(|| "no platform".to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// Imports one image (manifest, config, layers); returns its total size.
    fn import_image(&self, dir: &Path, manifest: &BlobRef) -> Result<u64, ImageError> {
        let mpath = layout::blob_path(dir, &manifest.digest);
        let bytes = self.import_json_blob(dir, manifest, "manifest")?;
        let m = layout::parse_manifest(&bytes).map_err(|e| match e {
            ImageError::InvalidLayout { reason, .. } => ImageError::InvalidLayout {
                path: mpath.clone(),
                reason,
            },
            other => other,
        })?;
        let cbytes = self.import_json_blob(dir, &m.config, "config")?;
        let config = layout::parse_config(&cbytes).map_err(|reason| ImageError::InvalidLayout {
            path: layout::blob_path(dir, &m.config.digest),
            reason,
        })?;
        if config.diff_ids.len() != m.layers.len() {
            return Err(ImageError::InvalidLayout {
                path: mpath,
                reason: format!(
                    "the manifest has {} layers but its config lists {} diff_ids",
                    m.layers.len(),
                    config.diff_ids.len()
                ),
            });
        }
        let mut size = manifest.size + m.config.size;
        for l in &m.layers {
            self.import_blob(dir, l, "layer")?;
            size += l.size;
        }
        Ok(size)
    }

    /// Imports a small JSON blob and returns its bytes.
    fn import_json_blob(
        &self,
        dir: &Path,
        blob: &BlobRef,
        what: &str,
    ) -> Result<Vec<u8>, ImageError> {
        if blob.size > MAX_JSON_BLOB {
            return Err(ImageError::InvalidLayout {
                path: layout::blob_path(dir, &blob.digest),
                reason: format!(
                    "the {what} {} claims {} bytes, more than the {MAX_JSON_BLOB} allowed",
                    blob.digest, blob.size
                ),
            });
        }
        let path = self.import_blob(dir, blob, what)?;
        fs::read(&path).map_err(io_err("read", &path))
    }

    /// Copies a blob from a layout into the store, verifying its size and digest;
    /// a blob already in the store is not copied again. Returns its store path.
    fn import_blob(&self, dir: &Path, blob: &BlobRef, what: &str) -> Result<PathBuf, ImageError> {
        let dst = self.blob_path(&blob.digest);
        if dst.is_file() {
            return Ok(dst);
        }
        let src = layout::blob_path(dir, &blob.digest);
        let f = match File::open(&src) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::InvalidLayout {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "the {what} blob {} is missing ({}); the layout is incomplete: export it again",
                        blob.digest,
                        src.display()
                    ),
                })
            }
            Err(e) => return Err(io_err("open", &src)(e)),
        };
        let src_len = f.metadata().map_err(io_err("stat", &src))?.len();
        if src_len != blob.size {
            return Err(ImageError::SizeMismatch {
                what: what.to_string(),
                digest: blob.digest.to_string(),
                expected: blob.size,
                actual: src_len,
                path: src,
            });
        }
        let dst_dir = dst.parent().unwrap_or(&self.root);
        let tmp = dst_dir.join(format!(".tmp-{}-{}", blob.digest.hex, unique_suffix()));
        let result = (|| {
            let mut out = File::create(&tmp).map_err(io_err("create", &tmp))?;
            let mut r = HashReader::new(BufReader::new(f).take(blob.size), blob.digest.algorithm);
            io::copy(&mut r, &mut out).map_err(io_err("copy", &src))?;
            let (actual, n) = r.finish().map_err(io_err("read", &src))?;
            if n != blob.size {
                return Err(ImageError::SizeMismatch {
                    what: what.to_string(),
                    digest: blob.digest.to_string(),
                    expected: blob.size,
                    actual: n,
                    path: src.clone(),
                });
            }
            if actual != blob.digest {
                return Err(ImageError::DigestMismatch {
                    what: what.to_string(),
                    digest: blob.digest.to_string(),
                    actual: actual.to_string(),
                    path: src.clone(),
                });
            }
            out.sync_all().map_err(io_err("sync", &tmp))?;
            fs::rename(&tmp, &dst).map_err(io_err("rename into place", &dst))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        Ok(dst)
    }
}
