//! Container rootfs: unpacking an image's layers once each (by diff_id, atomically,
//! under a per-layer `flock`), their short links, and the overlayfs mount and its
//! release.

use crate::digest::Digest;
use crate::error::{io_err, ImageError};
use crate::fsutil::{fsync_dir, lock, mkdir_p, syncfs, unique_suffix};
use crate::overlay;
use crate::store::{Image, ImageStore, Layer};
use crate::unpack::{self, Compression, LayerBlob};
use serde::Serialize;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A mounted container rootfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rootfs {
    /// The mount point (`<container_dir>/rootfs`): the container's `/`.
    pub path: PathBuf,
    /// The overlay's writable layer (`<container_dir>/upper`).
    pub upper: PathBuf,
    /// overlayfs's work directory (`<container_dir>/work`).
    pub work: PathBuf,
}

/// The `.complete` marker of an unpacked layer.
#[derive(Serialize)]
struct Complete<'a> {
    digest: &'a str,
    diff_id: &'a str,
    media_type: &'a str,
}

impl ImageStore {
    /// Unpacks the image's layers that are not unpacked yet (each once, by diff_id,
    /// into `<root>/layers/<hex>/`, atomically and safely against concurrent callers),
    /// then mounts overlayfs at `<container_dir>/rootfs` with the layers as lowerdirs
    /// (top first) and `<container_dir>/upper`, `<container_dir>/work`. A rootfs that
    /// is already mounted (e.g. after a kubelet restart) is left as it is. Needs root.
    pub fn prepare_rootfs(
        &self,
        image: &Image,
        container_dir: &Path,
    ) -> Result<Rootfs, ImageError> {
        let container_dir =
            std::path::absolute(container_dir).map_err(io_err("resolve", container_dir))?;
        let mut lowers = Vec::with_capacity(image.layers.len().max(1));
        let mut short = Vec::with_capacity(lowers.capacity());
        for layer in image.layers.iter().rev() {
            let (fs_dir, key) = self.ensure_layer(layer)?;
            short.push(self.short_link(&key)?);
            lowers.push(fs_dir);
        }
        if lowers.is_empty() {
            lowers.push(self.layers_dir().join("empty/fs"));
            short.push(self.short_link("empty")?);
        }
        let rootfs = Rootfs {
            path: container_dir.join("rootfs"),
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
        };
        for d in [&rootfs.path, &rootfs.upper, &rootfs.work] {
            mkdir_p(d)?;
        }
        if overlay::is_mounted(&rootfs.path)? {
            return Ok(rootfs);
        }
        overlay::mount_overlay(
            &lowers,
            &self.root.join("l"),
            &short,
            &rootfs.upper,
            &rootfs.work,
            &rootfs.path,
        )?;
        Ok(rootfs)
    }

    /// Unmounts `<container_dir>/rootfs` (lazily, `MNT_DETACH`) and removes the upper
    /// and work directories and the empty mount point. Anything missing is fine.
    pub fn release_rootfs(&self, container_dir: &Path) -> Result<(), ImageError> {
        let rootfs = container_dir.join("rootfs");
        overlay::unmount_all(&rootfs)?;
        for d in [container_dir.join("upper"), container_dir.join("work")] {
            match fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &d)(e)),
            }
        }
        // Never recursive: if something is still mounted there, it is not ours to empty.
        match fs::remove_dir(&rootfs) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                tracing::warn!(path = %rootfs.display(), "the rootfs mount point is not empty after unmounting; left in place");
                Ok(())
            }
            Err(e) => Err(io_err("remove", &rootfs)(e)),
        }
    }

    /// Makes sure `<root>/l/<short>` links to `../layers/<key>/fs`; returns `<short>`
    /// (the first 16 characters of the key).
    fn short_link(&self, key: &str) -> Result<String, ImageError> {
        let short: String = key.chars().take(16).collect();
        let link = self.root.join("l").join(&short);
        let target = PathBuf::from(format!("../layers/{key}/fs"));
        match fs::read_link(&link) {
            Ok(t) if t == target => return Ok(short),
            Ok(t) => {
                return Err(ImageError::Store {
                    path: link,
                    reason: format!(
                        "the short layer link points to {} instead of {}; remove it and retry",
                        t.display(),
                        target.display()
                    ),
                })
            }
            Err(_) => {}
        }
        let tmp = self
            .root
            .join("l")
            .join(format!(".tmp-{short}-{}", unique_suffix()));
        std::os::unix::fs::symlink(&target, &tmp).map_err(io_err("create symlink", &tmp))?;
        fs::rename(&tmp, &link).map_err(io_err("rename into place", &link))?;
        Ok(short)
    }

    /// The directory name of an unpacked layer.
    fn layer_key(diff_id: &Digest) -> String {
        match diff_id.algorithm {
            crate::digest::Algorithm::Sha256 => diff_id.hex.clone(),
            other => format!("{}-{}", other.name(), diff_id.hex),
        }
    }

    /// Unpacks a layer if it is not unpacked yet; returns its `fs` directory and key.
    fn ensure_layer(&self, layer: &Layer) -> Result<(PathBuf, String), ImageError> {
        let bad = |reason: String| ImageError::Store {
            path: self.db_path(),
            reason,
        };
        let diff_id = Digest::parse(&layer.diff_id).map_err(bad)?;
        let digest = Digest::parse(&layer.digest).map_err(bad)?;
        let key = Self::layer_key(&diff_id);
        let dir = self.layers_dir().join(&key);
        let fs_dir = dir.join("fs");
        let marker = dir.join(".complete");
        if marker.exists() {
            return Ok((fs_dir, key));
        }
        let _guard = lock(&self.root.join("locks").join(format!("layer-{key}.lock")))?;
        if marker.exists() {
            return Ok((fs_dir, key));
        }
        // Left-overs of an unpacker that died (we hold the lock: nobody else is at it).
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_err("remove incomplete layer", &dir))?;
        }
        let prefix = format!(".tmp-{key}-");
        if let Ok(entries) = fs::read_dir(self.layers_dir()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let compression = Compression::for_media_type(&layer.media_type).ok_or_else(|| {
            ImageError::UnsupportedMediaType {
                what: "layer".to_string(),
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
            }
        })?;
        let blob = self.blob_path(&digest);
        if !blob.is_file() {
            return Err(ImageError::Store {
                path: blob,
                reason: format!(
                    "the layer blob {digest} is missing from the store; import the image again"
                ),
            });
        }
        let tmp = self
            .layers_dir()
            .join(format!("{prefix}{}", unique_suffix()));
        let result = (|| {
            mkdir_p(&tmp.join("fs"))?;
            unpack::unpack_layer(
                &LayerBlob {
                    path: &blob,
                    digest: &digest,
                    diff_id: &diff_id,
                    compression,
                },
                &tmp.join("fs"),
            )?;
            let complete = serde_json::to_vec(&Complete {
                digest: &layer.digest,
                diff_id: &layer.diff_id,
                media_type: &layer.media_type,
            })
            .unwrap_or_default();
            fs::write(tmp.join(".complete"), complete)
                .map_err(io_err("write", tmp.join(".complete")))?;
            syncfs(&tmp)?;
            fs::rename(&tmp, &dir).map_err(io_err("rename into place", &dir))
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        fsync_dir(&self.layers_dir())?;
        tracing::info!(diff_id = %diff_id, digest = %digest, "layer unpacked");
        Ok((fs_dir, key))
    }
}
