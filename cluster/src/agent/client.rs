//! The host side of the agent protocol ([`super::proto`]): runs one command in a VM node
//! through its agent socket `<state>/run/NODE-agent.sock`. QEMU holds one connection at a
//! time; another client's connection waits in the socket's backlog until then.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::proto::{decode, Request, Response};
use crate::config::Layout;

/// The agent socket of VM node `node`.
pub fn socket(layout: &Layout, node: &str) -> PathBuf {
    layout.root.join("run").join(format!("{node}-agent.sock"))
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    /// Exit code (128+N for signal N).
    pub code: i32,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

/// Runs `argv` in the VM behind `sock`; the command is killed in the VM after `limit`,
/// and the call gives up a little later.
pub fn run(sock: &Path, argv: &[String], limit: Duration) -> anyhow::Result<Output> {
    let stream = UnixStream::connect(sock).with_context(|| format!("cannot reach the VM's agent at {} (is the VM running?)", sock.display()))?;
    let id = u64::from(std::process::id()) << 32 | u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0));
    let req = Request { id, argv: argv.to_vec(), timeout_secs: limit.as_secs().max(1) };
    let mut line = serde_json::to_string(&req).context("encoding the request")?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).context("cannot send the command to the agent")?;
    let end = Instant::now() + limit + Duration::from_secs(10);
    let mut reader = BufReader::new(&stream);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("the VM's agent did not answer within {}s", (limit + Duration::from_secs(10)).as_secs());
        }
        stream.set_read_timeout(Some(left)).context("socket timeout")?;
        let mut buf = String::new();
        match reader.read_line(&mut buf) {
            Ok(0) => bail!("the VM's agent closed the connection (the VM stopped?)"),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e).context("reading the agent's answer"),
        }
        match serde_json::from_str::<Response>(buf.trim()) {
            Ok(r) if r.id == id => return Ok(Output { code: r.code, stdout: decode(&r.stdout), stderr: decode(&r.stderr) }),
            Ok(r) => tracing::debug!(id = r.id, "skipping the answer to an earlier request"),
            Err(e) => tracing::debug!(error = %e, line = %buf.trim(), "not an agent answer"),
        }
    }
}
