//! What can go wrong when running CNI plugins, with enough context to act on it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cni::error::CniError;
use crate::cni::version::CniVersion;

/// An error of the CNI executor.
#[derive(thiserror::Error, Debug)]
pub enum ExecError {
    /// No plugin binary named like the config's `type` exists in any plugin directory.
    #[error(
        "CNI plugin {plugin:?} was not found in {}; install the binary there or fix the \"type\" in the network config",
        dirs(.searched)
    )]
    PluginNotFound {
        /// The plugin `type` that was looked for.
        plugin: String,
        /// The directories that were searched, in order.
        searched: Vec<PathBuf>,
    },
    /// The plugin failed and printed a CNI error object (its own diagnosis).
    #[error("CNI plugin {plugin:?} failed on {command}: {error}")]
    Plugin {
        /// The plugin `type`.
        plugin: String,
        /// The verb (`ADD`, `DEL`, ...).
        command: &'static str,
        /// The error the plugin printed on stdout.
        error: CniError,
    },
    /// The plugin exited unsuccessfully without printing a CNI error object.
    #[error(
        "CNI plugin {plugin:?} failed on {command} ({status}) without printing a CNI error; stderr: {stderr:?}; stdout: {stdout:?}"
    )]
    PluginFailed {
        /// The plugin `type`.
        plugin: String,
        /// The verb.
        command: &'static str,
        /// How the process ended (`exit status: 2`, `signal: 9 (SIGKILL)`).
        status: String,
        /// What it printed on stderr (truncated).
        stderr: String,
        /// What it printed on stdout (truncated), when that was not a CNI error.
        stdout: String,
    },
    /// The plugin succeeded but its output cannot be used.
    #[error("CNI plugin {plugin:?} printed an unusable answer to {command}: {reason}; output: {output:?}")]
    BadOutput {
        /// The plugin `type`.
        plugin: String,
        /// The verb.
        command: &'static str,
        /// What is wrong with the output.
        reason: String,
        /// The output (truncated).
        output: String,
    },
    /// A file or process operation failed.
    #[error("failed to {what} ({}): {source}", .path.display())]
    Io {
        /// What was being done.
        what: String,
        /// The file, directory or binary involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The network config or the runtime parameters are invalid (before any plugin ran).
    #[error("{0}")]
    Config(CniError),
    /// A file in the config directory does not parse.
    #[error("network configuration file {} is invalid: {error}; fix or remove the file", .path.display())]
    BadConfigFile {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        error: CniError,
    },
    /// No network of that name in the config directory.
    #[error(
        "no network named {name:?} in {} (searched *.conflist, then *.conf and *.json); add its config there",
        .conf_dir.display()
    )]
    NetworkNotFound {
        /// The name that was looked for.
        name: String,
        /// The directory searched.
        conf_dir: PathBuf,
    },
    /// The verb does not exist in the network's CNI version.
    #[error("network {network:?} runs CNI {version}, which has no {command}; it needs cniVersion {needs} or later")]
    NotSupported {
        /// The network name.
        network: String,
        /// The verb.
        command: &'static str,
        /// The version the list runs at.
        version: CniVersion,
        /// The first version with the verb.
        needs: CniVersion,
    },
    /// CHECK needs the result of the ADD, and there is none in the cache.
    #[error(
        "no cached ADD result for network {network:?}, container {container_id:?}, interface {ifname:?} (looked for {}); \
         CHECK needs one: was the attachment added through this executor with the same cache directory?",
        .path.display()
    )]
    NoCachedResult {
        /// The network name.
        network: String,
        /// The container ID.
        container_id: String,
        /// The interface name.
        ifname: String,
        /// The cache file that does not exist.
        path: PathBuf,
    },
    /// A cache file exists but cannot be used.
    #[error("the cached CNI result {} is unusable: {reason}; DEL the attachment and ADD it again", .path.display())]
    BadCache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// GC's DEL of a cached attachment that is no longer valid failed.
    #[error("DEL of stale attachment (container {container_id:?}, interface {ifname:?}) failed: {source}")]
    StaleAttachment {
        /// The container ID of the stale attachment.
        container_id: String,
        /// Its interface name.
        ifname: String,
        /// Why the DEL failed.
        source: Box<ExecError>,
    },
    /// One or more steps of a GC failed (GC keeps going after a failure, as libcni does).
    #[error("GC of network {network:?} had {} failure(s): {}", .errors.len(), join(.errors))]
    Gc {
        /// The network name.
        network: String,
        /// Every failure, in order.
        errors: Vec<ExecError>,
    },
}

impl ExecError {
    /// The CNI error code, when the failure carries one (a plugin's error or a config error).
    pub fn cni_code(&self) -> Option<u32> {
        match self {
            ExecError::Plugin { error, .. } | ExecError::Config(error) | ExecError::BadConfigFile { error, .. } => {
                Some(error.code)
            }
            ExecError::StaleAttachment { source, .. } => source.cni_code(),
            _ => None,
        }
    }

    pub(super) fn io(what: impl Into<String>, path: &Path, source: std::io::Error) -> Self {
        ExecError::Io { what: what.into(), path: path.to_path_buf(), source }
    }
}

fn dirs(searched: &[PathBuf]) -> String {
    if searched.is_empty() {
        return "no directories (the executor has no plugin_dirs)".into();
    }
    let list: Vec<String> = searched.iter().map(|d| d.display().to_string()).collect();
    list.join(", ")
}

fn join(errors: &[ExecError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        let _ = write!(out, "{}{e}", if i == 0 { "" } else { "; " });
    }
    out
}
