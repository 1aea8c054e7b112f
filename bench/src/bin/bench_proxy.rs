//! `bench-proxy`: with 1 000 and 10 000 Services programmed in a namespace, the time from
//! one Service change to its rules being live: minikproxy's incremental batch against a
//! full rewrite of the same rule set (the iptables-restore way), p50 and p99 side by side.
//!
//! Run it as `make bench` does: `scripts/sandbox.sh target/release/bench-proxy`. It
//! refuses to run outside the sandbox (it programs nftables). It fails when nft refuses a
//! batch; it asserts nothing about time. The measuring is in [`minik_bench::proxy`].

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use minik_bench::proxy;
use minik_bench::stats::ms;

/// minikproxy's incremental nft batch vs a full rewrite, per Service change.
#[derive(Debug, Parser)]
#[command(name = "bench-proxy")]
struct Args {
    /// Numbers of Services to run with (comma-separated, each 1..=50000).
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    services: Vec<usize>,
    /// Timed changes per size (1..=1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    changes: u16,
    /// Time budget for the full rewrites of one size, in seconds (at least 2 are timed).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    full_budget_seconds: u64,
}

fn main() -> ExitCode {
    // Flags first, so `--help` works outside the sandbox.
    let args = Args::parse();
    minik_tests::require_sandbox();
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench-proxy failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: Args) -> Result<()> {
    if let Some(bad) = args.services.iter().find(|n| **n == 0 || **n > 50_000) {
        anyhow::bail!("--services {bad}: use 1..=50000");
    }
    let mut runs = Vec::new();
    for &n in &args.services {
        let started = Instant::now();
        eprint!("{n} Services: programming, then {} changes each way ... ", args.changes);
        let r = proxy::run(n, usize::from(args.changes), std::time::Duration::from_secs(args.full_budget_seconds))
            .with_context(|| format!("with {n} Services"))?;
        eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
        runs.push(r);
    }
    println!("\none Service change → rules live (ms; each sample = build the batch + nft commits it)\n");
    println!(
        "{:>9} {:>8} | {:>28} | {:>28} | {:>9}",
        "services", "rules", "incremental p50 / p99 (n)", "full rewrite p50 / p99 (n)", "p50 ratio"
    );
    for r in &runs {
        let (ip50, ip99) = proxy::p50_p99(&r.incremental).context("no samples")?;
        let (fp50, fp99) = proxy::p50_p99(&r.full).context("no samples")?;
        println!(
            "{:>9} {:>8} | {:>10.2} / {:>9.2} ({:>4}) | {:>10.2} / {:>9.2} ({:>4}) | {:>8.4}x",
            r.services,
            r.rules,
            ms(ip50),
            ms(ip99),
            r.incremental.len(),
            ms(fp50),
            ms(fp99),
            r.full.len(),
            ip50.as_secs_f64() / fp50.as_secs_f64()
        );
    }
    for r in &runs {
        let (p50, _) = proxy::p50_p99(&r.resync).context("no samples")?;
        println!(
            "minikproxy restart with {} Services and nothing changed: full resync in {:.1} ms (median of {})",
            r.services,
            ms(p50),
            r.resync.len()
        );
    }
    println!(
        "\nbatch sizes (nft commands): {}",
        runs.iter()
            .map(|r| format!(
                "{} Services: {} incremental vs {} full",
                r.services, r.incremental_commands, r.full_commands
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}
