//! `bench-cluster`: how long `minik up` takes to boot three nodes with the course's demo
//! Ready (the target: 10 s), step by step from the launcher's own progress file,
//! next to a reference measured in the same run: a one-node cluster without the demo (the
//! launcher's floor: sandbox, network, API server, one minilet Ready). Each run boots with
//! a fresh state dir and a free API port and is taken down before the next.
//!
//! Run it as `make bench` does: `scripts/sandbox.sh target/release/bench-cluster`. The
//! binaries are the ones next to `minik` (`MINIK_BIN_DIR`, else target/debug). It prints
//! what it measured and asserts nothing about time.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use minik_bench::stats::{ms, percentile};
use minik_tests::cluster::Cluster;
use serde_json::Value;

/// Cluster boot time: three nodes to demo Ready, against one node without the demo.
#[derive(Debug, Parser)]
#[command(name = "bench-cluster")]
struct Args {
    /// Boots of each kind (1..=10).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    runs: u32,
}

/// The target for three nodes to demo Ready.
const TARGET: Duration = Duration::from_secs(10);

/// One boot: its total wall time and each step's (title, seconds).
struct Boot {
    total: Duration,
    steps: Vec<(String, f64)>,
}

fn boot(args: &[&str]) -> Result<Boot> {
    let t0 = Instant::now();
    let c = Cluster::up(args);
    let total = t0.elapsed();
    let text = std::fs::read_to_string(c.dir().join("progress.jsonl")).context("progress.jsonl")?;
    let mut steps = Vec::new();
    let mut title = String::new();
    for line in text.lines() {
        let ev: Value = serde_json::from_str(line).context("progress line")?;
        match ev["event"].as_str() {
            Some("step") => title = ev["title"].as_str().unwrap_or_default().split(':').next().unwrap_or_default().to_string(),
            Some("ok") | Some("warn") => steps.push((title.clone(), ev["secs"].as_f64().unwrap_or(0.0))),
            _ => {}
        }
    }
    if c.up_output.contains("NOT READY") {
        eprintln!("warning: parts of the cluster were not ready:\n{}", c.up_output);
    }
    c.down();
    Ok(Boot { total, steps })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5).unwrap_or_default()
}

fn report(label: &str, boots: &[Boot]) {
    println!("{label}: median of {} boots", boots.len());
    if let Some(first) = boots.first() {
        for (i, (title, _)) in first.steps.iter().enumerate() {
            let d = median(boots.iter().filter_map(|b| b.steps.get(i)).map(|(_, s)| Duration::from_secs_f64(*s)).collect());
            println!("  {title:<40} {:>9.1} ms", ms(d));
        }
    }
    let total = median(boots.iter().map(|b| b.total).collect());
    println!("  {:<40} {:>9.1} ms", "total (minik up, wall clock)", ms(total));
}

fn bench() -> Result<()> {
    let args = Args::parse();
    let mut three = Vec::new();
    let mut one = Vec::new();
    for _ in 0..args.runs {
        three.push(boot(&["--nodes", "3"])?);
        one.push(boot(&["--nodes", "1", "--no-demo"])?);
    }
    report("3 nodes, demo Ready", &three);
    report("reference: 1 node, no demo", &one);
    let t3 = median(three.iter().map(|b| b.total).collect());
    let t1 = median(one.iter().map(|b| b.total).collect());
    println!(
        "3 nodes to demo Ready: {:.1} s (target <= {:.0} s: {}); {:.2}x the one-node floor",
        t3.as_secs_f64(),
        TARGET.as_secs_f64(),
        if t3 <= TARGET { "met" } else { "NOT met" },
        t3.as_secs_f64() / t1.as_secs_f64().max(0.001)
    );
    Ok(())
}

fn main() -> ExitCode {
    minik_tests::require_sandbox();
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-cluster: {e:#}");
            ExitCode::FAILURE
        }
    }
}
