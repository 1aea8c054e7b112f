//! `run ID --bundle DIR [--detach]`: create, start, wait for the init, delete; exits
//! with the container's exit code.

use clap::Args;
use minik_oci::Runtime;

use super::create::CreateArgs;

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The create flags.
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return after start instead of waiting.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
}

/// Runs `run`.
pub fn run(rt: &Runtime, a: RunArgs) -> anyhow::Result<i32> {
    let id = a.create.id.clone();
    if !a.detach {
        // The init is our grandchild when it has a PID namespace: adopt it to wait.
        nix::sys::prctl::set_child_subreaper(true)?;
    }
    let c = rt.create(&id, &a.create.bundle, &a.create.options())?;
    if let Err(e) = rt.start(&id) {
        let _ = rt.delete(&id, true);
        return Err(e.into());
    }
    if a.detach {
        return Ok(0);
    }
    let code = minik_oci::container::wait_exit(c.state.oci.pid)?;
    if !a.keep {
        rt.delete(&id, true)?;
    }
    Ok(code)
}
