//! nftables through the `nft` JSON API (`nft -j -f -`): one batch per call, applied by
//! the kernel as one transaction, so a rule set is never seen half-written.
//!
//! Why the JSON API rather than a netlink crate: the JSON schema (libnftables-json(5)) is
//! nftables' documented, stable programmatic interface, and Debian's `nft` ships it; the
//! Rust netlink crates for nf_tables cover only part of the expression set minik needs
//! (sets with comments, numgen maps, NAT). Callers build `serde_json::Value` commands;
//! this module only runs them and reads the answers.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// A failed nft call.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` is not installed.
    #[error("the nft command was not found in /usr/sbin, /sbin or PATH; install the Debian package nftables")]
    NotInstalled,
    /// nft could not be started.
    #[error("cannot run nft: {0}")]
    Spawn(std::io::Error),
    /// nft refused the batch.
    #[error("nft refused the batch: {stderr}")]
    Refused {
        /// What nft printed.
        stderr: String,
    },
    /// nft printed something that is not its JSON.
    #[error("nft printed output that is not JSON: {0}")]
    BadOutput(String),
}

impl NftError {
    /// Whether nft refused because an object named in the batch does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NftError::Refused { stderr } if stderr.contains("No such file or directory"))
    }
}

/// Finds the nft binary.
pub fn nft_path() -> Result<PathBuf, NftError> {
    for p in ["/usr/sbin/nft", "/sbin/nft"] {
        if std::path::Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("nft")).find(|p| p.exists()))
        .ok_or(NftError::NotInstalled)
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, NftError> {
    let mut child = Command::new(nft_path()?)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Spawn)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).map_err(NftError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(NftError::Spawn)?;
    if !out.status.success() {
        return Err(NftError::Refused { stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(out.stdout)
}

/// Applies a batch of JSON commands (`{"add": {...}}`, `{"flush": {...}}`, …) atomically.
pub fn apply(commands: Vec<Value>) -> Result<(), NftError> {
    if commands.is_empty() {
        return Ok(());
    }
    let batch = json!({ "nftables": commands });
    let bytes = serde_json::to_vec(&batch).map_err(|e| NftError::BadOutput(e.to_string()))?;
    tracing::debug!(batch = %batch, "nft apply");
    run(&["-j", "-f", "-"], Some(&bytes)).map(|_| ())
}

/// Runs a `list` command (e.g. `["list", "set", "inet", "t", "s"]`) and returns the
/// objects of the answer, without the metainfo entry.
pub fn list(args: &[&str]) -> Result<Vec<Value>, NftError> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = run(&full, None)?;
    let v: Value = serde_json::from_slice(&out).map_err(|e| NftError::BadOutput(e.to_string()))?;
    Ok(v.get("nftables")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|o| o.get("metainfo").is_none()).cloned().collect())
        .unwrap_or_default())
}
