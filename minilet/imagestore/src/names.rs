//! The store's names: `images.json` (read, and rewritten atomically under its lock),
//! listing, lookups with normalisation and fallbacks, removal, and loading an image's
//! manifest and config from the store.

use crate::digest::Digest;
use crate::error::{io_err, ImageError};
use crate::fsutil::{lock, write_atomic};
use crate::layout;
use crate::reference::Reference;
use crate::store::{Image, ImageInfo, ImageStore, Layer, IMPORT_COMMAND};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;

/// The version of `images.json` this code writes.
const DB_VERSION: u32 = 1;

/// `images.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Db {
    pub(crate) version: u32,
    pub(crate) images: BTreeMap<String, Record>,
}

/// One name in `images.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The manifest digest.
    pub(crate) manifest: String,
    /// Manifest + config + layers, in bytes.
    pub(crate) size: u64,
    /// When it was imported (seconds since the epoch).
    #[serde(default)]
    pub(crate) imported: u64,
}

impl ImageStore {
    pub(crate) fn load_db(&self) -> Result<Db, ImageError> {
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
    pub(crate) fn update_db<T>(
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
