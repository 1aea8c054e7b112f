//! The agent protocol between the launcher (`minik shell NODE -- CMD` on a VM node) and
//! `minik-agent` in the VM: one JSON object per line each way over the VM's virtio-serial
//! port `org.minik.agent` (a Unix socket on the host side, QEMU's chardev). A request
//! runs one command; its response carries the exit code and the output, base64-encoded
//! (commands may print bytes that are not UTF-8). Responses echo the request's `id`, so
//! a client skips the answer to a request an earlier client gave up on.
//!
//! Compiled into both binaries (`#[path]`), never copied.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The virtio-serial port's name.
pub const PORT_NAME: &str = "org.minik.agent";

/// Run `argv` (no shell; pass `sh -c` for one), stdin empty.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Request {
    /// Echoed in the response.
    pub id: u64,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The command is killed after this many seconds.
    pub timeout_secs: u64,
}

/// How the command ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The exit code; 128+N when killed by signal N; -1 when it could not start.
    pub code: i32,
    /// stdout, base64.
    pub stdout: String,
    /// stderr, base64 (or why the command could not run).
    pub stderr: String,
}

/// Base64 of `b` (standard alphabet).
pub fn encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The bytes of base64 `s`; empty when it is not base64.
pub fn decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_default()
}
