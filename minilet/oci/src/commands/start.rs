//! `start ID`.

use clap::Args;
use minik_oci::Runtime;

/// Flags of `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The container id.
    pub id: String,
}

/// Runs `start`.
pub fn run(rt: &Runtime, a: StartArgs) -> anyhow::Result<i32> {
    rt.start(&a.id)?;
    Ok(0)
}
