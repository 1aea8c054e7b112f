//! `state ID`: the OCI state as indented JSON.

use clap::Args;
use minik_oci::Runtime;

/// Flags of `state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The container id.
    pub id: String,
}

/// Runs `state`.
pub fn run(rt: &Runtime, a: StateArgs) -> anyhow::Result<i32> {
    let st = rt.state(&a.id)?;
    println!("{}", serde_json::to_string_pretty(&st)?);
    Ok(0)
}
