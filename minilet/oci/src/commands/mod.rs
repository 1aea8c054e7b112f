//! The verbs, one file each, and the global flags.

pub mod create;
pub mod delete;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod logging;
pub mod ps;
pub mod run;
pub mod start;
pub mod state;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use minik_oci::Runtime;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "minik-oci",
    version,
    about = "minik's OCI runtime (runc-compatible command line)"
)]
pub struct Cli {
    /// Flags before the verb.
    #[command(flatten)]
    pub global: Global,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Global flags, as runc has them.
#[derive(Debug, Args)]
pub struct Global {
    /// Directory for container state.
    #[arg(long, global = true, default_value = minik_oci::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Log debug messages.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Log level (error, warn, info, debug); `--debug` is `--log-level debug`.
    #[arg(long = "log-level", global = true)]
    pub log_level: Option<String>,
    /// Accepted for compatibility (systemd-style cgroupsPath is converted to a path).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for compatibility; ignored.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (it waits for `start`).
    Create(create::CreateArgs),
    /// Start a created container.
    Start(start::StartArgs),
    /// Print a container's state as JSON.
    State(state::StateArgs),
    /// Send a signal to a container's init (or all its processes).
    Kill(kill::KillArgs),
    /// Delete a container.
    Delete(delete::DeleteArgs),
    /// Create, start and wait for a container, then delete it.
    Run(run::RunArgs),
    /// Run a process in a running container.
    Exec(exec::ExecArgs),
    /// List a container's processes.
    Ps(ps::PsArgs),
    /// List containers.
    List(list::ListArgs),
    /// Print the runtime's features as JSON.
    Features,
}

/// Runs the verb; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let rt = Runtime::new(&cli.global.root);
    match cli.command {
        Command::Create(a) => create::run(&rt, a),
        Command::Start(a) => start::run(&rt, a),
        Command::State(a) => state::run(&rt, a),
        Command::Kill(a) => kill::run(&rt, a),
        Command::Delete(a) => delete::run(&rt, a),
        Command::Run(a) => run::run(&rt, a),
        Command::Exec(a) => exec::run(&rt, a),
        Command::Ps(a) => ps::run(&rt, a),
        Command::List(a) => list::run(&rt, a),
        Command::Features => features::run(),
    }
}
