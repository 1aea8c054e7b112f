//! The tables of `bench-minilet`: the runtimes side by side per cgroup layout (median,
//! p90 and the ratio to crun), the lifecycle's steps, the pods' start to Ready (p50, p90,
//! p99, max) with where the time goes, and the memory. They print what was measured and
//! the targets with whether they are met; nothing is asserted.

use std::fmt::Write as _;
use std::time::Duration;

use crate::pods::{PodRun, PHASES};
use crate::procs::{mib, Mem};
use crate::runtimes::{LayoutRun, Measured, Mode, STEPS};
use crate::stats::{ms, percentile, ratio};

/// The runtime whose median minik-oci must not exceed.
pub const REFERENCE_RUNTIME: &str = "crun";

/// The runtime the targets are about.
pub const MINIK_RUNTIME: &str = "minik-oci";

/// The target for pods: p99 from creation to Ready under this.
pub const POD_READY_P99: Duration = Duration::from_secs(1);

fn find<'a>(r: &'a LayoutRun, name: &str, mode: Mode) -> Option<&'a Measured> {
    r.measured.iter().find(|m| m.runtime.name == name && m.mode == mode)
}

/// The runtime tables of one layout.
pub fn runtimes(r: &LayoutRun, n: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "runtime bench, cgroup layout: {}", r.layout.label());
    let _ = writeln!(out, "`/bin/true` in a fresh container, N={n} per runtime and mode, interleaved (ms)");
    let _ = writeln!(
        out,
        "{:<12} {:<25} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "runtime", "mode", "p50", "p90", "min", "max", "p50/crun", "p90/crun"
    );
    for mode in [Mode::Run, Mode::Lifecycle] {
        for m in r.measured.iter().filter(|m| m.mode == mode) {
            let Some(s) = m.total.summary() else { continue };
            let reference = find(r, REFERENCE_RUNTIME, mode).and_then(|c| c.total.summary());
            let (r50, r90) = match reference {
                Some(c) => (format!("{:.2}", ratio(s.p50, c.p50)), format!("{:.2}", ratio(s.p90, c.p90))),
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "{:<12} {:<25} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>9}",
                m.runtime.name,
                mode.label(),
                ms(s.p50),
                ms(s.p90),
                ms(s.min),
                ms(s.max),
                r50,
                r90
            );
        }
    }
    for (rt, why) in &r.refused {
        let first = why.lines().next().unwrap_or_default();
        let _ = writeln!(out, "{:<12} refused this layout: {first}", rt.name);
    }
    let stepped: Vec<&Measured> = r.measured.iter().filter(|m| m.steps.is_some()).collect();
    if !stepped.is_empty() {
        let _ = writeln!(out, "\nthe steps of create+start+wait+delete, p50 (p90) in ms");
        let _ = write!(out, "{:<12}", "runtime");
        for s in STEPS {
            let _ = write!(out, " {s:>15}");
        }
        let _ = writeln!(out);
        for m in stepped {
            let _ = write!(out, "{:<12}", m.runtime.name);
            for s in m.steps.iter().flatten() {
                let cell = s.summary().map(|x| format!("{:.2} ({:.2})", ms(x.p50), ms(x.p90))).unwrap_or_default();
                let _ = write!(out, " {cell:>15}");
            }
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(out, "\ntarget: {MINIK_RUNTIME}'s p50 <= {REFERENCE_RUNTIME}'s p50 (same layout, same bundle)");
    for mode in [Mode::Run, Mode::Lifecycle] {
        let (Some(a), Some(c)) = (find(r, MINIK_RUNTIME, mode), find(r, REFERENCE_RUNTIME, mode)) else { continue };
        let (Some(a), Some(c)) = (a.total.summary(), c.total.summary()) else { continue };
        let x = ratio(a.p50, c.p50);
        let verdict = if x <= 1.0 { "met" } else { "NOT met" };
        let _ = writeln!(out, "  {}: {verdict} ({:.2} ms vs {:.2} ms, ratio {x:.2})", mode.label(), ms(a.p50), ms(c.p50));
    }
    if find(r, MINIK_RUNTIME, Mode::Run).is_none() && find(r, MINIK_RUNTIME, Mode::Lifecycle).is_none() {
        let _ = writeln!(out, "  not measured here: {MINIK_RUNTIME} did not run in this layout");
    } else if find(r, REFERENCE_RUNTIME, Mode::Run).is_none() && find(r, REFERENCE_RUNTIME, Mode::Lifecycle).is_none() {
        let _ = writeln!(out, "  not decidable in this layout: {REFERENCE_RUNTIME} did not run");
    }
    let _ = writeln!(out, "(the issue measured `run` of `true` on this machine: crun ≈ 13–16 ms, runc ≈ 35–43 ms)");
    let _ = writeln!(out, "load average before / after: {} / {}", r.load.0, r.load.1);
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

fn quantile(d: &[Duration], q: f64) -> Duration {
    let mut v = d.to_vec();
    v.sort_unstable();
    percentile(&v, q).unwrap_or_default()
}

/// The pods' start-to-Ready, phase and memory tables of every pod run.
pub fn pods(runs: &[PodRun]) -> String {
    let mut out = String::new();
    let Some(first) = runs.first() else { return out };
    let n = first.rounds.first().map_or(0, Vec::len);
    let _ = writeln!(
        out,
        "pod bench: {n} pods created at once on one node, {} round(s) pooled; manifest write → Ready seen (ms)",
        first.rounds.len()
    );
    let _ = writeln!(
        out,
        "{:<8} {:<10} {:>7} {:>7} {:>7} {:>7}   {:>14} {:>14}",
        "layout", "runtime", "p50", "p90", "p99", "max", "seen→Ready p50", "seen→Ready p99"
    );
    let mut verdicts = Vec::new();
    for r in runs {
        let total: Vec<Duration> = r.pods().map(|p| p.ready).collect();
        let after_seen: Vec<Duration> = r.pods().map(|p| p.ready.saturating_sub(p.phases[0])).collect();
        let p99 = quantile(&total, 0.99);
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:>7.0} {:>7.0} {:>7.0} {:>7.0}   {:>14.0} {:>14.0}",
            r.layout.short(),
            r.runtime.name,
            ms(quantile(&total, 0.5)),
            ms(quantile(&total, 0.9)),
            ms(p99),
            ms(quantile(&total, 1.0)),
            ms(quantile(&after_seen, 0.5)),
            ms(quantile(&after_seen, 0.99)),
        );
        let p99_seen = quantile(&after_seen, 0.99);
        verdicts.push(format!(
            "{} / {}: {} (p99 {:.0} ms; from the manifest seen: {:.0} ms, {})",
            r.layout.short(),
            r.runtime.name,
            if p99 < POD_READY_P99 { "met" } else { "NOT met" },
            ms(p99),
            ms(p99_seen),
            if p99_seen < POD_READY_P99 { "under 1 s" } else { "over 1 s" }
        ));
    }
    let _ = writeln!(out, "target: pod start to Ready p99 < {} ms", POD_READY_P99.as_millis());
    for v in verdicts {
        let _ = writeln!(out, "  {v}");
    }

    let _ = writeln!(out, "\nwhere the time goes: per phase, p50 / max over the pods (ms)");
    let _ = write!(out, "{:<8} {:<10}", "layout", "runtime");
    for p in PHASES {
        let _ = write!(out, " {p:>19}");
    }
    let _ = writeln!(out);
    for r in runs {
        let _ = write!(out, "{:<8} {:<10}", r.layout.short(), r.runtime.name);
        for i in 0..PHASES.len() {
            let d: Vec<Duration> = r.pods().map(|p| p.phases[i]).collect();
            let cell = format!("{:.0} / {:.0}", ms(quantile(&d, 0.5)), ms(quantile(&d, 1.0)));
            let _ = write!(out, " {cell:>19}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "(manifest seen: minilet polls the static pod dir every second; running→Ready seen includes the worker's\n 100 ms tick, the exec probe through the runtime and this benchmark's {} ms poll of `minilet pods -o json`)",
        crate::pods::POLL.as_millis()
    );

    let _ = writeln!(out, "\nmemory with all pods Ready (minilet: idle → loaded; per pod: minilet's growth / pods, and the shims)");
    let _ = writeln!(
        out,
        "{:<8} {:<10} {:>17} {:>9} {:>9} {:>14} {:>13} {:>13} {:>7}",
        "layout", "runtime", "minilet RSS MiB", "PSS MiB", "peak MiB", "Δ/pod KiB", "shim RSS KiB", "shim PSS KiB", "shims"
    );
    for r in runs {
        let pods = n.max(1) as f64;
        let shims = Mem::sum(&r.shims);
        let per = |k: u64| k as f64 / r.shims.len().max(1) as f64;
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:>17} {:>9} {:>9.1} {:>14.0} {:>13.0} {:>13} {:>7}",
            r.layout.short(),
            r.runtime.name,
            format!("{:.1} → {:.1}", mib(r.daemon_idle.rss_kib), mib(r.daemon_loaded.rss_kib)),
            r.daemon_loaded.pss_kib.map(|p| format!("{:.1}", mib(p))).unwrap_or_else(|| "-".into()),
            mib(r.daemon_loaded.hwm_kib),
            (r.daemon_loaded.rss_kib as f64 - r.daemon_idle.rss_kib as f64) / pods,
            per(shims.rss_kib),
            shims.pss_kib.map(|p| format!("{:.0}", per(p))).unwrap_or_else(|| "-".into()),
            r.shims.len(),
        );
    }
    let _ = writeln!(out, "(shim RSS counts the pages all shims share once per shim; PSS splits them: PSS is what a shim really adds)");

    let _ = writeln!(out, "\nper round: random delay first, manifest seen (the static-dir poll's luck) p50, Ready p99, teardown; the benchmark's polls");
    for r in runs {
        let _ = write!(out, "  {} / {}:", r.layout.short(), r.runtime.name);
        for ((pods, down), j) in r.rounds.iter().zip(&r.teardown).zip(&r.jitter) {
            let seen: Vec<Duration> = pods.iter().map(|p| p.phases[0]).collect();
            let ready: Vec<Duration> = pods.iter().map(|p| p.ready).collect();
            let _ = write!(
                out,
                " [delay {:.0}, seen {:.0}, p99 {:.0}, gone in {:.1} s]",
                ms(*j),
                ms(quantile(&seen, 0.5)),
                ms(quantile(&ready, 0.99)),
                down.as_secs_f64()
            );
        }
        let _ = writeln!(out);
        let poll = r.polls.summary().map(|s| format!("{:.1} ms p50, {:.1} ms max, {} polls", ms(s.p50), ms(s.max), r.polls.len()));
        let _ = writeln!(out, "    poll {}; load {} → {}", poll.unwrap_or_default(), r.load.0, r.load.1);
        for note in &r.notes {
            let _ = writeln!(out, "    note: {note}");
        }
    }
    out
}
