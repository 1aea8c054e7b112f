//! Flushing UDP conntrack entries, with Debian's `conntrack` tool (conntrack-tools):
//! UDP has no connection end, so a flow DNATed to an endpoint that is gone would keep
//! going there (or nowhere) until its entry times out; kube-proxy flushes them, and so
//! does minikproxy. Why the tool rather than netlink: ctnetlink's delete-by-filter needs
//! a dump and per-entry deletes, which the tool already does well.

use std::net::Ipv4Addr;
use std::process::Command;

/// A failed flush.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// The tool could not be run.
    #[error("cannot run conntrack (install the Debian package conntrack): {0}")]
    Spawn(std::io::Error),
    /// The tool failed.
    #[error("conntrack {args} failed: {stderr}")]
    Failed {
        /// Its arguments.
        args: String,
        /// What it printed.
        stderr: String,
    },
}

fn run(args: &[String]) -> Result<(), ConntrackError> {
    let out = Command::new("conntrack").args(args).output().map_err(ConntrackError::Spawn)?;
    // Exit 1 with "0 flow entries have been deleted" is not an error.
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() || stderr.contains("0 flow entries") {
        return Ok(());
    }
    Err(ConntrackError::Failed { args: args.join(" "), stderr: stderr.trim().to_string() })
}

/// Deletes the UDP entries DNATed to `endpoint`.
pub fn flush_udp_to_endpoint(endpoint: Ipv4Addr) -> Result<(), ConntrackError> {
    run(&["-D".into(), "-p".into(), "udp".into(), "--dst-nat".into(), endpoint.to_string()])
}

/// Deletes the UDP entries addressed to a Service IP and port (flows that were refused or
/// black-holed before the Service had endpoints).
pub fn flush_udp_to_service(ip: Ipv4Addr, port: u16) -> Result<(), ConntrackError> {
    run(&[
        "-D".into(),
        "-p".into(),
        "udp".into(),
        "--orig-dst".into(),
        ip.to_string(),
        "--dport".into(),
        port.to_string(),
    ])
}
