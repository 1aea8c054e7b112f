//! `minik-oci`: an OCI runtime with runc's command line (`create`, `start`, `state`,
//! `kill`, `delete`, `run`, `exec`, `ps`, `list`, `features`) and global flags
//! (`--root`, `--log`, `--log-format`, `--debug`; `--systemd-cgroup` is accepted).
//! Errors go to stderr and, with `--log`, to the log as runc's JSON lines; the exit
//! code is 1 (or the container's, for `run` and `exec`).

mod commands;

use clap::Parser;

fn main() {
    let cli = commands::Cli::parse();
    let logged = commands::logging::init(&cli.global);
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            if logged {
                tracing::error!("{msg}");
            }
            eprintln!("minik-oci: {msg}");
            1
        }
    };
    std::process::exit(code);
}
