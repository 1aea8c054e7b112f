//! `bench-cni`: cni-bridge against the reference `bridge` + `host-local` (plain, with
//! masquerade alone, and the masquerade + portmap chains), N sequential ADDs then N DELs each, in one run, inside the
//! sandbox; prints median and p90 side by side with the ratio.
//!
//! Run it as `make bench` does: `scripts/sandbox.sh target/release/bench-cni`. It refuses
//! to run outside the sandbox, because it creates bridges, veths and NAT rules. It fails
//! (non-zero exit, with the plugin's message) when any ADD or DEL fails or a DEL leaves
//! something behind; it asserts nothing about time. The cni-bridge it measures is the one
//! in `MINIK_BIN_DIR`, else the one next to this binary (so a release bench measures a
//! release plugin).
//!
//! The measuring is in the library: [`minik_bench::variants`] (what is run and why it is
//! fair), [`minik_bench::stats`] and [`minik_bench::report`].

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use minik_bench::report;
use minik_bench::variants::{self, Case, Impl, Variant};

/// Which cases to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    /// The bridge plugin alone.
    Plain,
    /// The bridge plugin with masquerade, alone (an extra, not in the issue).
    Masq,
    /// Bridge with masquerade, then portmap.
    Chain,
}

/// cni-bridge vs the reference CNI plugins: ADD and DEL latency, median and p90.
#[derive(Debug, Parser)]
#[command(name = "bench-cni")]
struct Args {
    /// Timed ADDs (and DELs) per variant, each on its own pod netns (1..=1000).
    #[arg(long = "n", default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..=1000))]
    n: u16,
    /// Untimed ADD/DEL pairs per variant before the timed ones (0..=100).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=100))]
    warmup: u16,
    /// Run only one case.
    #[arg(long, value_enum)]
    only: Option<Only>,
}

fn main() -> ExitCode {
    // Flags first, so `--help` works outside the sandbox.
    let args = Args::parse();
    minik_tests::require_sandbox();
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench-cni failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: Args) -> Result<()> {
    if std::env::var_os("MINIK_BIN_DIR").is_none() {
        let exe = std::env::current_exe().context("cannot find this binary's path")?;
        if let Some(dir) = exe.parent() {
            // Still single-threaded: nothing reads the environment concurrently.
            std::env::set_var("MINIK_BIN_DIR", dir);
        }
    }
    let cni_bridge = minik_tests::bin("cni-bridge");
    eprintln!("cni-bridge: {}; reference: {}", cni_bridge.display(), minik_tests::REFERENCE_PLUGINS);

    let cases: Vec<Case> = Case::ALL
        .into_iter()
        .filter(|c| match args.only {
            None => true,
            Some(Only::Plain) => *c == Case::Plain,
            Some(Only::Masq) => *c == Case::Masq,
            Some(Only::Chain) => *c == Case::Chain,
        })
        .collect();
    let (n, warmup) = (usize::from(args.n), usize::from(args.warmup));
    let mut results = Vec::new();
    for case in cases {
        for imp in Impl::ALL {
            let v = Variant { case, imp };
            let started = Instant::now();
            eprint!("{} / {}: {warmup} warm-up pairs, {n} ADDs, {n} DELs ... ", case.label(), imp.label());
            let m = variants::run(v, n, warmup).with_context(|| format!("{} with {}", case.label(), imp.label()))?;
            eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
            results.push(m);
        }
    }
    println!("{}", report::render(n, &results));
    println!("extremes and trend (ms):\n{}", report::extremes(&results));
    Ok(())
}
