//! `minik down` and `minik kill NODE`. Down stops the keeper (SIGTERM: it stops what it
//! started, in reverse order), then — whatever the keeper managed — SIGKILLs every
//! process left in the cluster's cgroup tree or named in `processes.json`, removes the
//! cgroups, and removes the state dir except `logs/`. With the keeper and its children
//! gone, the sandbox's namespaces, links and mounts are gone too: they lived only in the
//! keeper's private mount namespace.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroups::ClusterCgroups;
use crate::config::{ClusterConfig, Layout};
use crate::keeper::cgroups_file;
use crate::procs::{alive, load_status};
use crate::state::{cmdline_mentions, running_keeper};

/// Stops the keeper: SIGTERM, up to `grace`, then SIGKILL.
fn stop_keeper(pid: u32, grace: Duration) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    let end = Instant::now() + grace;
    while alive(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        tracing::warn!(pid, "keeper did not stop in time; SIGKILL");
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let end = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Mount points under `dir` in this mount namespace (there should be none: the cluster's
/// mounts live in the keeper's namespace).
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

/// SIGKILLs any process of this cluster that escaped its cgroup: one running a binary
/// from `bin_dir` whose command line names the state dir.
fn kill_strays(layout: &Layout, bin_dir: &Path) {
    let me = std::process::id();
    let root = layout.root.display().to_string();
    let Ok(rd) = std::fs::read_dir("/proc") else { return };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me || !cmdline_mentions(pid, &root) {
            continue;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if exe.starts_with(bin_dir) {
            tracing::warn!(pid, exe = %exe.display(), "a process of the cluster outside its cgroup; SIGKILL");
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// Everything after the keeper: leftover processes, cgroups, state files.
pub fn cleanup(layout: &Layout) -> anyhow::Result<()> {
    let cgroups = ClusterCgroups::load(&cgroups_file(layout));
    let left = cgroups.kill_all(None, Duration::from_secs(10));
    let root = layout.root.display().to_string();
    for p in load_status(&layout.processes()) {
        if alive(p.pid) && cmdline_mentions(p.pid, &root) {
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
        }
    }
    if let Ok(cfg) = ClusterConfig::load(&layout.root) {
        kill_strays(layout, &cfg.bin_dir);
    }
    if left > 0 {
        tracing::warn!(left, "processes still in the cluster's cgroup after SIGKILL");
    }
    let stuck = cgroups.remove(Duration::from_secs(5));
    let mounts = mounts_under(&layout.root);
    if !mounts.is_empty() {
        bail!("mounts under {} in this namespace: {}; unmount them, then run `minik down` again", root, mounts.join(", "));
    }
    let entries = match std::fs::read_dir(&layout.root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {root}")),
    };
    for e in entries.flatten() {
        if e.file_name() == "logs" {
            continue;
        }
        let p = e.path();
        let res = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        res.with_context(|| format!("cannot remove {}", p.display()))?;
    }
    if !stuck.is_empty() {
        bail!("cgroups could not be removed: {}", stuck.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    Ok(())
}

/// `minik down`.
pub fn down(state_dir: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(state_dir);
    if !layout.config().exists() && !layout.keeper_pid().exists() {
        println!("no cluster in {}; nothing to do", state_dir.display());
        return Ok(());
    }
    let t0 = Instant::now();
    match running_keeper(&layout) {
        Some(pid) => {
            println!("stopping the cluster in {} (keeper pid {pid}) ...", state_dir.display());
            stop_keeper(pid, Duration::from_secs(20));
        }
        None => println!("the cluster in {} is not running; removing what is left of it ...", state_dir.display()),
    }
    cleanup(&layout)?;
    println!("cluster down in {:.1}s (logs kept in {})", t0.elapsed().as_secs_f64(), layout.logs().display());
    Ok(())
}

/// `minik kill NODE`: a node failure — every process of the node (minilet, minikproxy,
/// its pods' shims and containers) gets SIGKILL; the node's network stays.
pub fn kill_node(state_dir: &Path, node: &str) -> anyhow::Result<()> {
    let cfg = ClusterConfig::load(state_dir)?;
    let layout = cfg.layout();
    // A VM node's QEMU runs in the VM's group: killing it powers the VM off.
    let vc = crate::vm::VmConfig::load(&layout)?;
    let all = vc.all_names(&cfg);
    if !all.iter().any(|n| n == node) {
        bail!("no node {node:?} in this cluster; nodes are {}", all.join(", "));
    }
    if running_keeper(&layout).is_none() {
        bail!("the cluster in {} is not running", state_dir.display());
    }
    let cgroups = ClusterCgroups::load(&cgroups_file(&layout));
    let mut killed = cgroups.pids(Some(node)).len();
    let left = cgroups.kill_all(Some(node), Duration::from_secs(10));
    let root = layout.root.display().to_string();
    for p in load_status(&layout.processes()) {
        if p.node == node && alive(p.pid) && cmdline_mentions(p.pid, &root) {
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
            killed += 1;
        }
    }
    if left > 0 {
        bail!("{left} processes of {node} survived SIGKILL");
    }
    if vc.find(&cfg, node).is_some() {
        println!("{node}: powered off (its QEMU killed); the control plane will mark it NotReady; `minik start {node}` boots it again");
    } else {
        println!("{node}: killed {killed} processes (minilet, minikproxy and its pods); the control plane will mark it NotReady; `minik start {node}` starts them again");
    }
    Ok(())
}
