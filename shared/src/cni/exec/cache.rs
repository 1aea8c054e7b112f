//! The result cache, in libcni's on-disk format so that other tools can read it.
//!
//! One file per attachment, `<cache_dir>/results/<network>-<containerID>-<ifname>`, holding
//! `{"kind":"cniCacheV1","containerId":..,"config":<base64>,"ifName":..,"networkName":..,
//! "netns":..,"cniArgs":[[k,v],..],"capabilityArgs":{..},"result":{..}}`. Files are written
//! atomically (temp file, fsync, rename, fsync of the directory), so a crash leaves the old
//! entry or the new one, never half of one.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::debug;

use super::error::ExecError;

/// The `kind` of a libcni cache entry.
pub(super) const CACHE_KIND: &str = "cniCacheV1";

/// One cache file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CacheEntry {
    /// Always [`CACHE_KIND`].
    pub kind: String,
    /// The container ID of the attachment.
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The network configuration list, base64 (Go's encoding of `[]byte`).
    #[serde(default)]
    pub config: Option<String>,
    /// The interface name.
    #[serde(rename = "ifName")]
    pub ifname: String,
    /// The network name.
    #[serde(rename = "networkName")]
    pub network_name: String,
    /// The netns path used on ADD.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// `CNI_ARGS` as pairs.
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<(String, String)>,
    /// The capability arguments given on ADD.
    #[serde(rename = "capabilityArgs", default, skip_serializing_if = "Map::is_empty")]
    pub capability_args: Map<String, Value>,
    /// The final result of the ADD, in the list's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// `<cache_dir>/results`.
pub(super) fn results_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("results")
}

/// The cache file of one attachment. The names must have been validated (no `/`).
pub(super) fn entry_path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    results_dir(cache_dir).join(format!("{network}-{container_id}-{ifname}"))
}

/// Reads the cached result at `path`: `None` when there is no file.
///
/// Like libcni, a file that is not a `cniCacheV1` entry but a bare result (the format
/// before the entry existed) is read as that result.
pub(super) fn read_result(path: &Path) -> Result<Option<Value>, ExecError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExecError::io("read the CNI result cache", path, e)),
    };
    let bad = |reason: String| ExecError::BadCache { path: path.to_path_buf(), reason };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    match value.get("kind").and_then(Value::as_str) {
        Some(CACHE_KIND) => {
            let entry: CacheEntry =
                serde_json::from_value(value).map_err(|e| bad(format!("not a {CACHE_KIND} entry: {e}")))?;
            entry.result.map(Some).ok_or_else(|| bad("the entry has no \"result\"".into()))
        }
        Some(other) => Err(bad(format!("unknown kind {other:?}, expected {CACHE_KIND:?}"))),
        None if value.get("cniVersion").is_some() => Ok(Some(value)),
        None => Err(bad(format!("neither a {CACHE_KIND} entry nor a CNI result"))),
    }
}

/// Writes `entry` to `path` atomically, creating `results/` (mode 0700) if needed.
pub(super) fn write(path: &Path, entry: &CacheEntry) -> Result<(), ExecError> {
    let bytes = serde_json::to_vec(entry)
        .map_err(|e| ExecError::io("encode the CNI result cache", path, std::io::Error::other(e)))?;
    write_atomic(path, &bytes)
}

/// Removes the entry; a missing file is fine.
pub(super) fn remove(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every readable `cniCacheV1` entry with its path, sorted by file name. Unreadable files
/// and other kinds are skipped (as libcni's `GetCachedAttachments`); no directory is no entries.
pub(super) fn list(cache_dir: &Path) -> Result<Vec<(PathBuf, CacheEntry)>, ExecError> {
    let dir = results_dir(cache_dir);
    let read = match fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ExecError::io("list the CNI result cache", &dir, e)),
    };
    let mut names = Vec::new();
    for ent in read {
        let ent = ent.map_err(|e| ExecError::io("list the CNI result cache", &dir, e))?;
        let name = ent.file_name();
        if !name.as_encoded_bytes().starts_with(b".") {
            names.push(name);
        }
    }
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let entry = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<CacheEntry>(&b).map_err(|e| e.to_string()));
        match entry {
            Ok(e) if e.kind == CACHE_KIND && !e.ifname.is_empty() && !e.network_name.is_empty() => out.push((path, e)),
            Ok(_) => debug!(path = %path.display(), "skipping a CNI cache file that is not a {CACHE_KIND} entry"),
            Err(why) => debug!(path = %path.display(), %why, "skipping an unreadable CNI cache file"),
        }
    }
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExecError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ExecError::io("create the CNI result cache directory", dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ExecError::io("write the CNI result cache", path, e)
    })
}

/// Standard base64 with padding (what Go's `encoding/json` does to a `[]byte`).
pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
