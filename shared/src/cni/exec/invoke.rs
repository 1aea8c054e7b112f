//! Finding a plugin binary and running one invocation of it (libcni's `pkg/invoke`).
//!
//! The child gets a clean environment: the `CNI_*` variables and the parent's `PATH`,
//! nothing else. Its config goes in on stdin; its answer comes back on stdout. The child
//! is spawned from the calling thread and so starts in that thread's network namespace.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tracing::debug;

use super::error::ExecError;
use crate::cni::env::Command;
use crate::cni::error::CniError;

/// How much of a plugin's stdout/stderr an error message quotes.
const SNIPPET_LEN: usize = 4096;

/// Attempts to start a plugin whose binary is busy being written (`ETXTBSY`), as libcni retries.
const BUSY_ATTEMPTS: u32 = 6;

/// The parameters of one plugin run.
pub(super) struct Invocation<'a> {
    /// The plugin `type` (for messages and logs).
    pub plugin: &'a str,
    /// The binary found for it.
    pub binary: &'a Path,
    /// The verb.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS`.
    pub netns: &'a OsStr,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_ARGS`, already joined.
    pub args: &'a str,
    /// `CNI_PATH`, already joined.
    pub cni_path: &'a OsStr,
}

/// The first `plugin` binary in `dirs` (a regular file, symlinks followed), as libcni's `FindInPath`.
pub(super) fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
    if plugin.is_empty() || plugin == "." || plugin == ".." || plugin.contains('/') || plugin.contains('\0') {
        return Err(ExecError::Config(CniError::invalid_config(format!(
            "plugin type {plugin:?} is not a plain file name; \"type\" must name a binary in the plugin directories"
        ))));
    }
    dirs.iter()
        .map(|d| d.join(plugin))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .ok_or_else(|| ExecError::PluginNotFound { plugin: plugin.to_string(), searched: dirs.to_vec() })
}

/// `CNI_PATH`: the plugin directories joined by `:`.
pub(super) fn cni_path(dirs: &[PathBuf]) -> OsString {
    let mut out = OsString::new();
    for (i, d) in dirs.iter().enumerate() {
        if i > 0 {
            out.push(":");
        }
        out.push(d);
    }
    out
}

/// `CNI_ARGS`: `K=V;K=V`.
pub(super) fn cni_args(args: &[(String, String)]) -> String {
    let pairs: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(";")
}

/// Runs the plugin with `stdin` as its config and returns its stdout.
///
/// A non-zero exit becomes [`ExecError::Plugin`] when stdout holds a CNI error object,
/// else [`ExecError::PluginFailed`] with the exit status and stderr.
pub(super) fn exec_plugin(inv: &Invocation<'_>, stdin: &[u8]) -> Result<Vec<u8>, ExecError> {
    let started = Instant::now();
    let output = spawn_retrying(inv, stdin);
    let elapsed = started.elapsed();
    let output = match output {
        Ok(o) => o,
        Err(source) => {
            debug!(plugin = inv.plugin, command = inv.command.as_str(), container = inv.container_id, duration = ?elapsed, error = %source, "CNI plugin could not be started");
            return Err(ExecError::io(
                format!("start CNI plugin {:?} for {}", inv.plugin, inv.command.as_str()),
                inv.binary,
                source,
            ));
        }
    };
    debug!(
        plugin = inv.plugin,
        command = inv.command.as_str(),
        container = inv.container_id,
        ifname = inv.ifname,
        duration = ?elapsed,
        status = %output.status,
        "CNI plugin invoked"
    );
    if !output.stderr.is_empty() {
        debug!(plugin = inv.plugin, command = inv.command.as_str(), stderr = %snippet(&output.stderr), "CNI plugin stderr");
    }
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(failure(inv, &output))
}

fn failure(inv: &Invocation<'_>, output: &Output) -> ExecError {
    let stdout = snippet(&output.stdout);
    if !stdout.is_empty() {
        if let Ok(error) = serde_json::from_slice::<CniError>(&output.stdout) {
            return ExecError::Plugin { plugin: inv.plugin.to_string(), command: inv.command.as_str(), error };
        }
    }
    ExecError::PluginFailed {
        plugin: inv.plugin.to_string(),
        command: inv.command.as_str(),
        status: output.status.to_string(),
        stderr: snippet(&output.stderr),
        stdout,
    }
}

/// Output as text for a message: lossy UTF-8, trimmed, at most [`SNIPPET_LEN`] bytes.
pub(super) fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= SNIPPET_LEN {
        return text.to_string();
    }
    let mut end = SNIPPET_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len())
}

fn spawn_retrying(inv: &Invocation<'_>, stdin: &[u8]) -> std::io::Result<Output> {
    let mut attempt = 1;
    loop {
        match run_once(inv, stdin) {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < BUSY_ATTEMPTS => {
                // The binary is open for writing (being installed, or its fd leaked into a
                // concurrently forked child): wait a little and try again.
                debug!(plugin = inv.plugin, attempt, "CNI plugin binary is busy (ETXTBSY); retrying");
                std::thread::sleep(Duration::from_millis(50u64 << attempt.min(5)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn run_once(inv: &Invocation<'_>, stdin: &[u8]) -> std::io::Result<Output> {
    let mut cmd = std::process::Command::new(inv.binary);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("CNI_COMMAND", inv.command.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", inv.args)
        .env("CNI_PATH", inv.cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let writer = child.stdin.take();
    std::thread::scope(|s| {
        if let Some(mut w) = writer {
            s.spawn(move || {
                // A plugin may exit without reading its config (VERSION, or an early
                // failure); its exit status tells the story, so a broken pipe is not ours.
                if let Err(e) = w.write_all(stdin) {
                    debug!(plugin = inv.plugin, error = %e, "could not write the whole config to the CNI plugin's stdin");
                }
            });
        }
        child.wait_with_output()
    })
}
