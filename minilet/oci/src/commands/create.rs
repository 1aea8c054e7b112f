//! `create ID --bundle DIR [--pid-file F] [--console-socket S] [--preserve-fds N]`.

use std::path::PathBuf;

use clap::Args;
use minik_oci::{CreateOptions, Runtime};

/// Flags of `create` (shared with `run`).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The container id.
    pub id: String,
    /// The bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write the init's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass N extra fds (3..3+N) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for compatibility; pivot_root is always used.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for compatibility; ignored.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
}

impl CreateArgs {
    /// The library options.
    pub fn options(&self) -> CreateOptions {
        CreateOptions {
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
            stdio: None,
        }
    }
}

/// Runs `create`.
pub fn run(rt: &Runtime, a: CreateArgs) -> anyhow::Result<i32> {
    rt.create(&a.id, &a.bundle, &a.options())?;
    Ok(0)
}
