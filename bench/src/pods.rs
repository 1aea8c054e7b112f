//! The pod benchmark: N pods (30 by default) created at once on one minilet node, each
//! timed from its manifest's write to its Ready condition; minilet's memory, and what
//! each pod costs in memory.
//!
//! The node is the pod tests' [`MiniletNode`]: a node netns with a cni-bridge network,
//! the images imported, minilet's config, the daemon started (binaries from
//! `MINIK_BIN_DIR`; the OCI runtime from `MINIK_TEST_RUNTIME`, set here per runtime).
//! Every pod is busybox `sleep 3600` with an exec readiness probe (`cat /etc/hostname`,
//! every second), so Ready means: seen, sandboxed (netns, CNI ADD), rootfs prepared,
//! container created and started through the shim and the runtime, seen running, and
//! one probe run through the runtime's `exec`.
//!
//! How it is timed:
//! - the daemon is started and left idle for a moment (its startup is not measured),
//!   then its idle memory is read;
//! - the N manifests are written one after the other (each an atomic rename), and each
//!   pod's clock starts at its own rename;
//! - `minilet pods -o json` is polled every 50 ms (bounded); a pod's clock stops at the
//!   first poll that shows it Ready=True, so a sample overstates by at most one poll
//!   period plus one poll's duration (both printed);
//! - any container that fails (a waiting reason other than ContainerCreating, a
//!   termination, a restart) fails the benchmark with minilet's log;
//! - then the manifests are removed and the pods waited for, and the next round (3 by
//!   default) writes N new ones on the same node. Rounds matter because minilet polls
//!   the static pod dir once a second: when the manifests land relative to that poll
//!   (anywhere from 0 to 1 s before it) is luck, shared by all N pods of a round; each
//!   round starts after a random delay in [0, 1 s) so the rounds sample that luck, and
//!   the samples of all rounds are pooled.
//!
//! Where the time goes, per pod, from what minilet writes on disk (epoch timestamps and
//! file modification times, all on the same clock as the write): the manifest seen
//! (`state.json`'s `created_at`: the static-dir poll), the sandbox done (the pod's
//! `hostname` file, written last by the sandbox setup), the bundle written
//! (`config.json` of the container: rootfs prepared), the container started
//! (`started.json`: the runtime's `start` returned), and Ready seen.
//!
//! Memory with all N pods Ready: minilet's RSS/PSS (and its growth over idle; the round
//! where it was highest), and the `minilet-shim` processes of this node (one per
//! container; found by their command line, which holds the node's temp dir). After the
//! last round the harness's drop stops the daemon; then nothing of the node may be left
//! running, and pod cgroups minilet left behind are removed (and reported).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use minik_tests::minilet::MiniletNode;
use serde_json::Value;

use crate::cgroups::{self, Layout};
use crate::procs::{self, Mem};
use crate::runtimes::Runtime;
use crate::stats::Samples;

/// How often the pods are polled.
pub const POLL: Duration = Duration::from_millis(50);

/// How long all pods may take to be Ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the pods may take to be gone after their manifests are removed.
pub const GONE_TIMEOUT: Duration = Duration::from_secs(60);

/// The phases of a pod's start, in order, as the tables name them.
pub const PHASES: [&str; 5] = ["manifest seen", "sandbox", "rootfs+bundle", "create+start", "running→Ready seen"];

/// One pod's timings.
#[derive(Debug, Clone)]
pub struct PodTimes {
    /// The pod's name.
    pub name: String,
    /// From the manifest's write to Ready seen.
    pub ready: Duration,
    /// The phases ([`PHASES`]); they add up to `ready`.
    pub phases: [Duration; 5],
}

/// One run of the pod benchmark.
#[derive(Debug, Clone)]
pub struct PodRun {
    /// The runtime minilet used.
    pub runtime: Runtime,
    /// The cgroup layout.
    pub layout: Layout,
    /// Per round, per pod in manifest order.
    pub rounds: Vec<Vec<PodTimes>>,
    /// minilet before any pod (idle), and with all pods Ready.
    pub daemon_idle: Mem,
    /// minilet with all pods Ready (the round where its RSS was highest).
    pub daemon_loaded: Mem,
    /// The shims with all pods Ready (last round).
    pub shims: Vec<Mem>,
    /// The duration of each `minilet pods -o json` poll.
    pub polls: Samples,
    /// Per round: from the manifests' removal until every pod was gone.
    pub teardown: Vec<Duration>,
    /// Per round: the random delay before its manifests were written.
    pub jitter: Vec<Duration>,
    /// Things noticed (leftovers found and removed, …).
    pub notes: Vec<String>,
    /// /proc/loadavg before and after.
    pub load: (String, String),
}

impl PodRun {
    /// Every pod of every round.
    pub fn pods(&self) -> impl Iterator<Item = &PodTimes> {
        self.rounds.iter().flatten()
    }
}

/// The manifest of pod `name`.
pub fn manifest(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {{command: ["cat", "/etc/hostname"]}}
      periodSeconds: 1
"#
    )
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Why a pod's container failed, if it did.
fn failure(p: &Value) -> Option<String> {
    for c in p["status"]["containerStatuses"].as_array().into_iter().flatten() {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            if r != "ContainerCreating" {
                return Some(format!("{r}: {}", c["state"]["waiting"]["message"].as_str().unwrap_or("")));
            }
        }
        if c["state"]["terminated"].is_object() {
            return Some(format!("terminated: {}", c["state"]["terminated"]));
        }
        if c["restartCount"].as_i64().unwrap_or(0) > 0 {
            return Some(format!("restarted: {}", c["lastState"]));
        }
    }
    None
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn mtime(p: &Path) -> Result<f64> {
    let m = std::fs::metadata(p).and_then(|m| m.modified()).with_context(|| format!("no mtime for {}", p.display()))?;
    Ok(epoch(m))
}

fn read_json(p: &Path) -> Result<Value> {
    serde_json::from_slice(&std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)
        .with_context(|| format!("{} is not JSON", p.display()))
}

/// The phases of pod `uid` from minilet's files (epoch seconds): written → seen →
/// sandbox → bundle → started → Ready seen.
fn phases(pods_dir: &Path, uid: &str, written: f64, ready: f64) -> Result<[Duration; 5]> {
    let dir = pods_dir.join(uid);
    let state = read_json(&dir.join("state.json"))?;
    let seen = state["created_at"].as_f64().ok_or_else(|| anyhow!("state.json of {uid} has no created_at"))?;
    let sandbox = mtime(&dir.join("hostname"))?;
    let id = state["containers"][0]["id"].as_str().ok_or_else(|| anyhow!("state.json of {uid} has no container id"))?;
    let cdir = dir.join("containers").join(id);
    let bundle = mtime(&cdir.join("config.json"))?;
    let started = read_json(&cdir.join("started.json"))?["started_at"]
        .as_f64()
        .ok_or_else(|| anyhow!("started.json of {id} has no started_at"))?;
    let marks = [written, seen, sandbox, bundle, started, ready];
    let d = |i: usize| Duration::from_secs_f64((marks[i + 1] - marks[i]).max(0.0));
    Ok([d(0), d(1), d(2), d(3), d(4)])
}

/// This node's daemon (its command line names the node's config).
fn daemon_pid(cfg: &str) -> Option<i32> {
    procs::find(|a| procs::argv0_is(a, "minilet") && a.iter().any(|x| x == cfg) && a.iter().any(|x| x == "run")).first().copied()
}

/// This node's shims (their command lines hold the node's dir).
fn shim_pids(dir: &str) -> Vec<i32> {
    procs::find(|a| procs::argv0_is(a, "minilet-shim") && a.iter().any(|x| x.starts_with(dir)))
}

/// A delay in [0, 1 s), different per call (splitmix64 of the clock, the PID and `salt`).
fn random_delay(salt: usize) -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut z = nanos ^ (u64::from(std::process::id()) << 32) ^ (salt as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Duration::from_micros(z % 1_000_000)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// What one round (N pods at once, then their removal) produced.
struct Round {
    pods: Vec<PodTimes>,
    loaded: Mem,
    shims: Vec<Mem>,
    teardown: Duration,
}

/// One round on a running node: `n` pods named `bench-<r>-<i>` written at once, timed to
/// Ready, memory read, then removed and waited for.
fn round(
    node: &MiniletNode,
    r: usize,
    n: usize,
    pid: i32,
    runtime: &Runtime,
    polls: &mut Samples,
    uids: &mut BTreeSet<String>,
) -> Result<Round> {
    let dir = node.dir.path().to_path_buf();
    let dir_s = dir.to_string_lossy().into_owned();
    let pods_dir = dir.join("root/pods");
    let names: Vec<String> = (0..n).map(|i| format!("bench-{r}-{i:02}")).collect();
    let mut written: Vec<(Instant, SystemTime)> = Vec::with_capacity(n);
    for name in &names {
        node.apply(&format!("{name}.yaml"), &manifest(name));
        written.push((Instant::now(), SystemTime::now()));
    }

    // name-node1 → index
    let index: BTreeMap<String, usize> = names.iter().enumerate().map(|(i, n)| (format!("{n}-node1"), i)).collect();
    let mut ready: Vec<Option<(Instant, SystemTime, String)>> = vec![None; n];
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = Vec::new();
    while ready.iter().any(Option::is_none) {
        if Instant::now() > deadline {
            let waiting: Vec<&String> = names.iter().zip(&ready).filter(|(_, r)| r.is_none()).map(|(n, _)| n).collect();
            let st: Vec<String> = last.iter().map(|p: &Value| format!("{} {}", p["metadata"]["name"], p["status"])).collect();
            bail!(
                "{} of {n} pods not Ready within {READY_TIMEOUT:?} ({waiting:?}); last status:\n{}\nminilet log:\n{}",
                waiting.len(),
                st.join("\n"),
                node.log()
            );
        }
        let tick = Instant::now();
        let pods = node.pods();
        let now = (Instant::now(), SystemTime::now());
        polls.push(now.0 - tick);
        for p in &pods {
            let Some(&i) = p["metadata"]["name"].as_str().and_then(|n| index.get(n)) else { continue };
            if let Some(uid) = p["metadata"]["uid"].as_str() {
                uids.insert(uid.to_string());
            }
            if let Some(why) = failure(p) {
                bail!("pod {} failed with {}: {why}\nstatus: {}\nminilet log:\n{}", names[i], runtime.name, p["status"], node.log());
            }
            if ready[i].is_none() && is_ready(p) {
                let uid = p["metadata"]["uid"].as_str().unwrap_or_default().to_string();
                ready[i] = Some((now.0, now.1, uid));
            }
        }
        last = pods;
        std::thread::sleep(POLL.saturating_sub(tick.elapsed()));
    }

    let loaded = procs::mem(pid).ok_or_else(|| anyhow!("minilet exited; its log:\n{}", node.log()))?;
    let shims: Vec<Mem> = shim_pids(&dir_s).into_iter().filter_map(procs::mem).collect();
    let mut pods = Vec::with_capacity(n);
    for (i, name) in names.iter().enumerate() {
        let Some((at, at_sys, uid)) = ready[i].clone() else { continue };
        let ph = phases(&pods_dir, &uid, epoch(written[i].1), epoch(at_sys)).with_context(|| format!("timestamps of {name}"))?;
        pods.push(PodTimes { name: name.clone(), ready: at - written[i].0, phases: ph });
    }

    // Tear down: every manifest removed at once; time until minilet has stopped every pod.
    let t = Instant::now();
    for name in &names {
        node.remove(&format!("{name}.yaml"));
    }
    let gone_by = t + GONE_TIMEOUT;
    loop {
        let left = std::fs::read_dir(&pods_dir).map(|d| d.count()).unwrap_or(0);
        if left == 0 && shim_pids(&dir_s).is_empty() {
            break;
        }
        ensure!(
            Instant::now() < gone_by,
            "{left} pods still there {GONE_TIMEOUT:?} after their manifests were removed; minilet log:\n{}",
            node.log()
        );
        std::thread::sleep(POLL);
    }
    Ok(Round { pods, loaded, shims, teardown: t.elapsed() })
}

/// What the rounds measured.
struct Measurement {
    idle: Mem,
    polls: Samples,
    rounds: Vec<Round>,
    jitter: Vec<Duration>,
}

/// Starts the daemon, lets it idle, then runs the rounds; every pod UID seen goes to `uids`.
fn measure(node: &mut MiniletNode, runtime: &Runtime, n: usize, rounds: usize, uids: &mut BTreeSet<String>) -> Result<Measurement> {
    let cfg = node.dir.path().join("minilet.yaml").to_string_lossy().into_owned();
    node.start();
    // Let the daemon come up (adoption, CNI GC) and idle, then read its memory.
    let up = Instant::now();
    let pid = loop {
        if let Some(p) = daemon_pid(&cfg) {
            break p;
        }
        ensure!(up.elapsed() < Duration::from_secs(10), "minilet did not start; its log:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_secs(2));
    let idle = procs::mem(pid).ok_or_else(|| anyhow!("minilet exited at start; its log:\n{}", node.log()))?;

    let mut polls = Samples::with_capacity(256);
    let mut all = Vec::with_capacity(rounds);
    let mut jitter = Vec::with_capacity(rounds);
    for r in 0..rounds {
        // Land each round at a random point of minilet's one-second static-dir poll.
        let j = random_delay(r);
        std::thread::sleep(j);
        jitter.push(j);
        all.push(round(node, r, n, pid, runtime, &mut polls, uids).with_context(|| format!("round {} of {rounds}", r + 1))?);
    }
    Ok(Measurement { idle, polls, rounds: all, jitter })
}

/// After the node is gone: nothing of it may still run, and the cgroups of pods `uids`
/// that minilet left are removed; returns the notes about them.
fn cleanup(dir: &str, uids: &BTreeSet<String>) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut left = Vec::new();
    for uid in uids {
        let r = cgroups::remove_tree(&format!("minik/pod{uid}"))?;
        ensure!(r.stuck.is_empty(), "pod cgroups that cannot be removed: {:?}", r.stuck);
        left.extend(r.dirs);
    }
    if let Some(first) = left.first() {
        // /sys/fs/cgroup/<hierarchy>/…: which hierarchies minilet did not clean.
        let mut where_: Vec<String> =
            left.iter().filter_map(|p| p.strip_prefix("/sys/fs/cgroup").ok()?.iter().next().map(|h| h.to_string_lossy().into_owned())).collect();
        where_.sort();
        where_.dedup();
        notes.push(format!(
            "minilet left {} pod cgroup dirs after the pods were gone (removed now), in {} (e.g. {})",
            left.len(),
            where_.join(", "),
            first.display()
        ));
    }
    let procs_left = procs::find(|a| a.iter().any(|x| x.contains(dir)));
    ensure!(procs_left.is_empty(), "processes of the node still running after it was dropped: {procs_left:?}");
    Ok(notes)
}

/// Runs the benchmark with `runtime`: `rounds` times `n` pods at once on one fresh node
/// whose pods get IPs from `subnet`. The node is torn down (and checked) whether the
/// measurement succeeded or not.
pub fn run(runtime: &Runtime, layout: Layout, n: usize, rounds: usize, subnet: &str) -> Result<PodRun> {
    ensure!((1..=200).contains(&n), "between 1 and 200 pods (got {n})");
    ensure!((1..=20).contains(&rounds), "between 1 and 20 rounds (got {rounds})");
    ensure!(runtime.path.exists(), "{} is not there: {}", runtime.name, runtime.path.display());
    // Read by MiniletNode::new, on this thread; nothing else reads the environment now.
    std::env::set_var("MINIK_TEST_RUNTIME", &runtime.path);
    let mut node = MiniletNode::new(subnet, "");
    let dir = node.dir.path().to_string_lossy().into_owned();
    let load0 = loadavg();
    let mut uids = BTreeSet::new();
    let measured = measure(&mut node, runtime, n, rounds, &mut uids);
    let load1 = loadavg();
    drop(node);
    let cleaned = cleanup(&dir, &uids);
    let m = measured?;
    let mut notes = cleaned?;

    let last = m.rounds.last().ok_or_else(|| anyhow!("no round ran"))?;
    if last.shims.len() != n {
        notes.push(format!("{} shim processes for {n} containers", last.shims.len()));
    }
    let loaded = m.rounds.iter().map(|r| r.loaded).max_by_key(|m| m.rss_kib).unwrap_or_default();
    Ok(PodRun {
        runtime: runtime.clone(),
        layout,
        rounds: m.rounds.iter().map(|r| r.pods.clone()).collect(),
        daemon_idle: m.idle,
        daemon_loaded: loaded,
        shims: last.shims.clone(),
        polls: m.polls,
        teardown: m.rounds.iter().map(|r| r.teardown).collect(),
        jitter: m.jitter,
        notes,
        load: (load0, load1),
    })
}
