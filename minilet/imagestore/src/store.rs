//! The image store on disk (layout in the crate docs): importing layouts and archives,
//! the name database (`images.json`), lookups, and preparing and releasing container
//! rootfs.

use crate::digest::{Digest, HashReader};
use crate::error::{io_err, ImageError};
use crate::layout::{self, BlobRef, ImageConfig, IndexEntry, MAX_JSON_BLOB};
use crate::overlay;
use crate::reference::Reference;
use crate::unpack::{self, Compression, LayerBlob};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The command that imports images, as named in [`ImageError::NotFound`]'s hint.
pub const IMPORT_COMMAND: &str = "minilet image import";
/// The version of `images.json` this code writes.
const DB_VERSION: u32 = 1;
/// Temp files and directories older than this are left-overs of a crash.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How deep image indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

/// A node's image store, rooted at a directory (e.g. `/var/lib/minik/images`).
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
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
    layers: Vec<Layer>,
}

impl Image {
    /// The layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
}

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

/// `images.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Db {
    version: u32,
    images: BTreeMap<String, Record>,
}

/// One name in `images.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    /// The manifest digest.
    manifest: String,
    /// Manifest + config + layers, in bytes.
    size: u64,
    /// When it was imported (seconds since the epoch).
    #[serde(default)]
    imported: u64,
}

/// The `.complete` marker of an unpacked layer.
#[derive(Serialize)]
struct Complete<'a> {
    digest: &'a str,
    diff_id: &'a str,
    media_type: &'a str,
}

fn unique_suffix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mkdir_p(p: &Path) -> Result<(), ImageError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p)
        .map_err(io_err("create directory", p))
}

fn lock(path: &Path) -> Result<Flock<File>, ImageError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open lock file", path))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| ImageError::Io {
        action: "lock".to_string(),
        path: path.to_path_buf(),
        source: io::Error::from_raw_os_error(e as i32),
    })
}

fn fsync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the dir.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", unique_suffix()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename into place", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dir)
}

/// Removes entries of `dir` whose name starts with `prefix` and that are older than
/// [`STALE_AFTER`].
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            let p = e.path();
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            if let Err(err) = r {
                tracing::warn!(path = %p.display(), error = %err, "cannot remove a stale temp file");
            }
        }
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

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn db_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        layout::blob_path(&self.root, d)
    }

    fn load_db(&self) -> Result<Db, ImageError> {
        let path = self.db_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Db {
                    version: DB_VERSION,
                    images: BTreeMap::new(),
                })
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let db: Db = serde_json::from_slice(&bytes).map_err(|e| ImageError::Store {
            path: path.clone(),
            reason: format!("images.json is not valid ({e}); restore it from a backup, or remove it and import the images again"),
        })?;
        if db.version > DB_VERSION {
            return Err(ImageError::Store {
                path,
                reason: format!(
                    "images.json has version {}, newer than this minilet's {DB_VERSION}: upgrade minilet",
                    db.version
                ),
            });
        }
        Ok(db)
    }

    /// Runs `f` on the database under the store's lock and writes the result.
    fn update_db<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let _guard = lock(&self.root.join("images.lock"))?;
        let mut db = self.load_db()?;
        let out = f(&mut db)?;
        db.version = DB_VERSION;
        let mut bytes = serde_json::to_vec_pretty(&db).map_err(|e| ImageError::Store {
            path: self.db_path(),
            reason: format!("cannot serialize images.json: {e}"),
        })?;
        bytes.push(b'\n');
        write_atomic(&self.db_path(), &bytes)?;
        Ok(out)
    }

    // ---- import ----

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

    // ---- names ----

    /// Every name in the store, sorted.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let db = self.load_db()?;
        Ok(db
            .images
            .iter()
            .map(|(k, rec)| {
                let (name, tag) = match Reference::parse(k) {
                    Ok(r) => (r.repository(), r.tag),
                    Err(_) => (k.clone(), None),
                };
                ImageInfo {
                    reference: k.clone(),
                    name,
                    tag,
                    manifest_digest: rec.manifest.clone(),
                    size: rec.size,
                }
            })
            .collect())
    }

    /// The database keys a candidate reference matches.
    fn matches(db: &Db, r: &Reference) -> Vec<String> {
        match &r.digest {
            Some(d) => {
                let repo = r.repository();
                db.images
                    .iter()
                    .filter(|(k, rec)| {
                        &rec.manifest == d
                            && Reference::parse(k).is_ok_and(|kr| kr.repository() == repo)
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            }
            None => {
                let key = r.to_string();
                if db.images.contains_key(&key) {
                    vec![key]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Looks an image up by the name a pod spec gives (normalized, with the fallbacks
    /// in the crate docs). A missing image is [`ImageError::NotFound`] whose hint
    /// says how to import it.
    pub fn resolve(&self, user_ref: &str) -> Result<Image, ImageError> {
        let r = Reference::parse(user_ref)?;
        let db = self.load_db()?;
        for c in r.lookup_candidates() {
            if let Some(key) = Self::matches(&db, &c).into_iter().next() {
                if let Some(rec) = db.images.get(&key) {
                    let reference = if c.digest.is_some() {
                        c.to_string()
                    } else {
                        key
                    };
                    return self.load_image(reference, rec);
                }
            }
        }
        Err(not_found(user_ref, &r, &db))
    }

    /// Removes a name (or, for `name@digest`, every tag of `name` pointing at that
    /// manifest). Blobs and unpacked layers stay (other images and running containers
    /// may use them).
    pub fn remove(&self, user_ref: &str) -> Result<(), ImageError> {
        let r = Reference::parse(user_ref)?;
        self.update_db(|db| {
            for c in r.lookup_candidates() {
                let keys = Self::matches(db, &c);
                if !keys.is_empty() {
                    for k in keys {
                        db.images.remove(&k);
                    }
                    return Ok(());
                }
            }
            Err(not_found(user_ref, &r, db))
        })
    }

    fn read_blob(&self, d: &Digest, what: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(d);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::Store {
                    path,
                    reason: format!(
                        "the {what} blob {d} is missing from the store; import the image again"
                    ),
                })
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let actual = crate::digest::digest_of(d.algorithm, &bytes);
        if &actual != d {
            return Err(ImageError::DigestMismatch {
                what: format!("{what} (in the store)"),
                digest: d.to_string(),
                actual: actual.to_string(),
                path,
            });
        }
        Ok(bytes)
    }

    fn load_image(&self, reference: String, rec: &Record) -> Result<Image, ImageError> {
        let store_err = |reason: String| ImageError::Store {
            path: self.db_path(),
            reason,
        };
        let md = Digest::parse(&rec.manifest).map_err(store_err)?;
        let manifest = layout::parse_manifest(&self.read_blob(&md, "manifest")?)?;
        let config = layout::parse_config(&self.read_blob(&manifest.config.digest, "config")?)
            .map_err(|reason| ImageError::Store {
                path: self.blob_path(&manifest.config.digest),
                reason,
            })?;
        if config.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Store {
                path: self.blob_path(&md),
                reason: "the manifest's layers and its config's diff_ids differ in number; import the image again".to_string(),
            });
        }
        let layers = manifest
            .layers
            .iter()
            .zip(&config.diff_ids)
            .map(|(l, d)| Layer {
                digest: l.digest.to_string(),
                diff_id: d.to_string(),
                media_type: l.media_type.clone(),
                size: l.size,
            })
            .collect();
        Ok(Image {
            reference,
            manifest_digest: rec.manifest.clone(),
            config: config.config,
            layers,
        })
    }

    // ---- rootfs ----

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

/// Flushes the file system holding `path` (an unpacked layer is many files: one
/// `syncfs` beats an fsync each).
fn syncfs(path: &Path) -> Result<(), ImageError> {
    let d = File::open(path).map_err(io_err("open", path))?;
    // SAFETY: syncfs takes a file descriptor, which `d` keeps open across the call.
    let rc = unsafe { libc::syncfs(d.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io_err("sync the file system of", path)(
            io::Error::last_os_error(),
        ))
    }
}

/// The [`ImageError::NotFound`] for `user_ref`, with an import hint.
fn not_found(user_ref: &str, r: &Reference, db: &Db) -> ImageError {
    let candidates = r.lookup_candidates();
    let normalized = candidates
        .first()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let written_repo = if r.explicit_domain {
        r.repository()
    } else {
        r.path.clone()
    };
    let name_arg = match &r.tag {
        Some(t) if t != "latest" => format!("{written_repo}:{t}"),
        _ => written_repo,
    };
    let mut hint =
        format!("import it with: {IMPORT_COMMAND} <layout-dir|oci-archive.tar> --name {name_arg}");
    if let Some(d) = &r.digest {
        hint.push_str(&format!(" (the image must have manifest digest {d})"));
    }
    if candidates.len() > 1 {
        let others: Vec<String> = candidates[1..].iter().map(|c| c.to_string()).collect();
        hint.push_str(&format!("; also looked up as {}", others.join(", ")));
    }
    let repos: Vec<String> = candidates.iter().map(|c| c.repository()).collect();
    let same_repo: Vec<&String> = db
        .images
        .keys()
        .filter(|k| Reference::parse(k).is_ok_and(|kr| repos.contains(&kr.repository())))
        .collect();
    if !same_repo.is_empty() {
        hint.push_str(&format!(
            "; this node has: {}",
            same_repo
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    ImageError::NotFound {
        reference: user_ref.to_string(),
        normalized,
        hint,
    }
}

/// Extracts an oci-archive (tar, tar.gz or tar.zst of a layout) into `dest`: regular
/// files and directories only, nothing outside `dest`.
fn extract_archive(tar_path: &Path, dest: &Path) -> Result<(), ImageError> {
    let mut f = File::open(tar_path).map_err(io_err("open archive", tar_path))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(io_err("read", tar_path))?;
    drop(f);
    let f = BufReader::new(File::open(tar_path).map_err(io_err("open archive", tar_path))?);
    let reader: Box<dyn Read> = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(f)
                .map_err(io_err("read zstd archive", tar_path))?,
        )
    } else {
        Box::new(f)
    };
    let bad = |reason: String| ImageError::InvalidLayout {
        path: tar_path.to_path_buf(),
        reason,
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("bad tar archive: {e}")))?;
        let kind = entry.header().entry_type();
        let raw = entry
            .path()
            .map_err(|e| bad(format!("bad path in archive: {e}")))?
            .into_owned();
        let Some(rel) = unpack::clean_path(&raw).map_err(bad)? else {
            continue;
        };
        let target = dest.join(&rel);
        if kind.is_dir() {
            mkdir_p(&target)?;
        } else if kind.is_file() || kind.is_contiguous() {
            if let Some(parent) = target.parent() {
                mkdir_p(parent)?;
            }
            let mut out = File::create(&target).map_err(io_err("create", &target))?;
            io::copy(&mut entry, &mut out).map_err(io_err("extract", &target))?;
            count += 1;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            return Err(bad(format!(
                "{} is a {kind:?} entry; an oci-archive holds only files and directories",
                raw.display()
            )));
        }
    }
    if count == 0 {
        return Err(bad("the archive is empty or not a tar archive".to_string()));
    }
    Ok(())
}
