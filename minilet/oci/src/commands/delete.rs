//! `delete ID [--force]`.

use clap::Args;
use minik_oci::Runtime;

/// Flags of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The container id.
    pub id: String,
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `delete`.
pub fn run(rt: &Runtime, a: DeleteArgs) -> anyhow::Result<i32> {
    rt.delete(&a.id, a.force)?;
    Ok(0)
}
