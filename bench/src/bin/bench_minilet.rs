//! `bench-minilet`: minilet's OCI runtime against Debian's crun and runc, and minilet's
//! pod start, in one run, inside the sandbox.
//!
//! 1. Runtime: `/bin/true` in a fresh container (busybox rootfs, `runc spec` config, a new
//!    network namespace), N=100 containers per runtime, timed wall clock from the
//!    runtime's spawn to the container deleted: once as `run`, once as the four verbs a
//!    shim drives (`create`, `start`, wait, `delete`, each also timed). Median, p90, and
//!    the ratio to crun (target: minik-oci's median <= crun's).
//! 2. Pods: 30 pods (busybox `sleep`, exec readiness probe every second) written at once
//!    as static manifests on one minilet node, each timed from its manifest's write to
//!    Ready=True, p50/p90/p99/max (target: p99 < 1 s), where the time goes, and the memory
//!    of minilet and of each pod's shim. Three rounds of 30 per runtime (pooled), since
//!    minilet's one-second poll of the manifest dir adds 0–1 s of luck per round.
//!
//! Both parts run under each cgroup layout (see [`minik_bench::cgroups`]): the host's
//! v1/v2 hybrid as is (crun refuses it, which is shown), then with the empty cgroup2 at
//! `/sys/fs/cgroup/unified` unmounted in the sandbox's private mount namespace (never
//! the host's: the benchmark checks, and mounts it back at the end).
//!
//! Build and run (from the workspace root; the images come from `images/build.sh`):
//!
//! ```text
//! cargo build --release -p minik-bench -p minilet -p cni-bridge -p minik-oci
//! scripts/sandbox.sh target/release/bench-minilet
//! scripts/sandbox.sh target/release/bench-minilet --parts runtime --runtimes crun,runc --n 200
//! scripts/sandbox.sh target/release/bench-minilet --parts pods --layouts v1-only --pods 30
//! scripts/sandbox.sh target/release/bench-minilet --runtimes minik-oci,my=/opt/bin/youki
//! ```
//!
//! It refuses to run outside the sandbox (it creates network namespaces, bridges and
//! mounts). It fails (non-zero exit, with the runtime's or minilet's message) when any
//! container or pod fails, or when something it created is left behind; it asserts
//! nothing about time. The minilet, minilet-shim, cni-bridge and minik-oci it runs are
//! those in `MINIK_BIN_DIR`, else those next to this binary (so a release bench runs
//! release binaries). When minik-oci is not built and the runtime list is the default,
//! it is skipped with a warning (naming it in `--runtimes` makes that an error).
//!
//! The measuring is in the library: [`minik_bench::runtimes`], [`minik_bench::pods`],
//! [`minik_bench::cgroups`], [`minik_bench::procs`] and [`minik_bench::minilet_report`].

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use minik_bench::cgroups::{self, Layout, NoUnified};
use minik_bench::runtimes::{self, Mode, Runtime};
use minik_bench::{minilet_report, pods};

/// The parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// The OCI runtimes on `/bin/true`.
    Runtime,
    /// Pods on a minilet node.
    Pods,
}

/// The cgroup layouts (on a hybrid host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    /// The host's hybrid as is.
    Hybrid,
    /// The hybrid's cgroup2 mount unmounted in the private mount namespace (crun needs it).
    V1Only,
}

/// The ways to drive a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// One `run`.
    Run,
    /// `create`, `start`, wait, `delete`.
    Lifecycle,
}

/// minik-oci vs crun and runc on `true`, and minilet's pod start to Ready.
#[derive(Debug, Parser)]
#[command(name = "bench-minilet")]
struct Args {
    /// What to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Part::Runtime, Part::Pods])]
    parts: Vec<Part>,
    /// The runtimes: minik-oci, crun, runc, or NAME=PATH (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "minik-oci,crun,runc")]
    runtimes: Vec<String>,
    /// The cgroup layouts, in order (on a hybrid host; elsewhere the host's is the only one).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [LayoutArg::Hybrid, LayoutArg::V1Only])]
    layouts: Vec<LayoutArg>,
    /// How containers are driven in the runtime part.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ModeArg::Run, ModeArg::Lifecycle])]
    modes: Vec<ModeArg>,
    /// Timed containers per runtime and mode (1..=1000).
    #[arg(long = "n", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    n: u16,
    /// Untimed containers per runtime and mode first (1..=100).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    warmup: u16,
    /// Pods created at once (1..=200).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=200))]
    pods: u16,
    /// Rounds of `--pods` pods per runtime, pooled (1..=20): each round lands at another
    /// point of minilet's one-second static-dir poll.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    rounds: u16,
}

fn main() -> ExitCode {
    // Flags first, so `--help` works outside the sandbox.
    let args = Args::parse();
    minik_tests::require_sandbox();
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench-minilet failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtimes_from(args: &Args) -> Result<Vec<Runtime>> {
    let default = args.runtimes == ["minik-oci", "crun", "runc"];
    let mut out = Vec::new();
    for spec in &args.runtimes {
        let rt = Runtime::parse(spec)?;
        if !rt.path.exists() {
            if default && rt.name == "minik-oci" {
                eprintln!("warning: {} is not built; skipping minik-oci (build it with `cargo build --release -p minik-oci`)", rt.path.display());
                continue;
            }
            bail!("runtime {}: {} does not exist", rt.name, rt.path.display());
        }
        out.push(rt);
    }
    if out.is_empty() {
        bail!("no runtime to measure");
    }
    Ok(out)
}

fn bench(args: Args) -> Result<()> {
    if std::env::var_os("MINIK_BIN_DIR").is_none() {
        let exe = std::env::current_exe().context("cannot find this binary's path")?;
        if let Some(dir) = exe.parent() {
            // Still single-threaded: nothing reads the environment concurrently.
            std::env::set_var("MINIK_BIN_DIR", dir);
        }
    }
    let rts = runtimes_from(&args)?;
    for rt in &rts {
        eprintln!("{:<10} {} ({})", rt.name, rt.path.display(), rt.version());
    }
    if args.parts.contains(&Part::Pods) {
        for b in ["minilet", "minilet-shim", "cni-bridge"] {
            eprintln!("{:<10} {}", b, minik_tests::bin(b).display());
        }
    }
    let layouts: Vec<Layout> = match cgroups::current()? {
        Some(Layout::Hybrid) => args
            .layouts
            .iter()
            .map(|l| match l {
                LayoutArg::Hybrid => Layout::Hybrid,
                LayoutArg::V1Only => Layout::NoUnified,
            })
            .collect(),
        _ => {
            eprintln!("note: the host's cgroups are not a v1/v2 hybrid; measuring its layout as is");
            vec![Layout::AsIs]
        }
    };
    let modes: Vec<Mode> = args
        .modes
        .iter()
        .map(|m| match m {
            ModeArg::Run => Mode::Run,
            ModeArg::Lifecycle => Mode::Lifecycle,
        })
        .collect();
    let (n, warmup, npods, rounds) = (usize::from(args.n), usize::from(args.warmup), usize::from(args.pods), usize::from(args.rounds));

    let mut pod_runs = Vec::new();
    for (k, layout) in layouts.iter().enumerate() {
        let guard = match layout {
            Layout::NoUnified => Some(NoUnified::enter()?),
            _ => None,
        };
        let mut refused: Vec<Runtime> = Vec::new();
        if args.parts.contains(&Part::Runtime) {
            let started = Instant::now();
            eprint!("runtimes / {}: {warmup} warm-up + {n} containers per runtime and mode ... ", layout.label());
            let r = runtimes::run(*layout, &rts, &modes, n, warmup).with_context(|| format!("runtime bench, {}", layout.label()))?;
            eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
            refused = r.refused.iter().map(|(rt, _)| rt.clone()).collect();
            println!("{}", minilet_report::runtimes(&r, n));
        }
        if args.parts.contains(&Part::Pods) {
            for (j, rt) in rts.iter().enumerate() {
                // crun refuses the hybrid; without the runtime part nobody asked it, so assume it.
                let refuses = refused.contains(rt) || (!args.parts.contains(&Part::Runtime) && *layout == Layout::Hybrid && rt.is_crun());
                if refuses {
                    eprintln!("pods / {} / {}: skipped (crun refuses the hybrid layout)", layout.label(), rt.name);
                    continue;
                }
                let subnet = format!("10.246.{}.0/24", k * 16 + j);
                let started = Instant::now();
                eprint!("pods / {} / {}: {rounds} x {npods} pods ... ", layout.label(), rt.name);
                match pods::run(rt, *layout, npods, rounds, &subnet) {
                    Ok(r) => {
                        eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
                        pod_runs.push(r);
                    }
                    Err(e) => {
                        // What completed is still worth seeing.
                        if !pod_runs.is_empty() {
                            println!("{}", minilet_report::pods(&pod_runs));
                        }
                        return Err(e.context(format!("pod bench, {}, {}", layout.label(), rt.name)));
                    }
                }
            }
        }
        if let Some(g) = guard {
            g.restore()?;
        }
    }
    if !pod_runs.is_empty() {
        println!("{}", minilet_report::pods(&pod_runs));
    }
    Ok(())
}
