//! `kill ID [SIGNAL] [--all]` (default SIGTERM; names or numbers).

use clap::Args;
use minik_oci::{signal, Runtime};

/// Flags of `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The container id.
    pub id: String,
    /// The signal: TERM, SIGKILL, 9, RTMIN+1 …
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process of the container.
    #[arg(short, long)]
    pub all: bool,
}

/// Runs `kill`.
pub fn run(rt: &Runtime, a: KillArgs) -> anyhow::Result<i32> {
    let sig = signal::parse(&a.signal)?;
    rt.kill(&a.id, sig, a.all)?;
    Ok(0)
}
