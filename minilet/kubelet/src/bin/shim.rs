//! `minilet-shim`: the per-container monitor minilet starts (see `minilet::shim`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use minilet::shim::{run, ShimArgs};

/// Runs one container under an OCI runtime, logs its output, records its exit.
#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    runtime: PathBuf,
    #[arg(long)]
    runtime_root: PathBuf,
    #[arg(long)]
    id: String,
    #[arg(long)]
    bundle: PathBuf,
    #[arg(long)]
    log: PathBuf,
    #[arg(long, default_value_t = 10 << 20)]
    log_max_size: u64,
    #[arg(long, default_value_t = 5)]
    log_max_files: usize,
    #[arg(long)]
    exit_file: PathBuf,
    #[arg(long)]
    start_file: PathBuf,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let a = Args::parse();
    let args = ShimArgs {
        runtime: a.runtime,
        runtime_root: a.runtime_root,
        id: a.id,
        bundle: a.bundle,
        log: a.log,
        log_max_size: a.log_max_size,
        log_max_files: a.log_max_files,
        exit_file: a.exit_file,
        start_file: a.start_file,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minilet-shim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
