//! The keeper's processes: each started inside a node's network namespace, in its cgroup,
//! with its log under `<state-dir>/logs/`; watched for exits (recorded, not restarted: a
//! dead node agent is what `minik kill` simulates), listed in `processes.json` for
//! `minik status`, and stopped by PID in reverse start order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use minik_shared::netns::NetNs;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cgroups::ClusterCgroups;

/// What `processes.json` says about one process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcInfo {
    /// e.g. `minilet`.
    pub name: String,
    /// The node it runs on (its netns), or `-`.
    pub node: String,
    /// Its PID.
    pub pid: u32,
    /// `running`, or how it ended (`exited 2`, `killed by SIGKILL`).
    pub state: String,
    /// Its log file.
    pub log: PathBuf,
}

struct Proc {
    info: ProcInfo,
    child: Child,
}

/// The set of processes one keeper runs.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Mutex<Vec<Proc>>>,
    status_file: PathBuf,
    logs: PathBuf,
    cgroups: ClusterCgroups,
}

/// How a started process is doing shortly after start.
pub enum Early {
    /// Still running.
    Running,
    /// Ended with this description and the tail of its log.
    Ended(String, String),
}

impl Supervisor {
    /// A supervisor writing `status_file`, logs in `logs`.
    pub fn new(status_file: PathBuf, logs: PathBuf, cgroups: ClusterCgroups) -> Self {
        Supervisor { inner: Arc::new(Mutex::new(Vec::new())), status_file, logs, cgroups }
    }

    /// Starts `cmd` as `name` in `node`'s network namespace (`netns`) and cgroup group `group`.
    pub fn spawn(&self, name: &str, node: &str, netns: &NetNs, group: &str, mut cmd: Command) -> anyhow::Result<u32> {
        let log_path = self.logs.join(format!("{}{name}.log", if node == "-" { String::new() } else { format!("{node}-") }));
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let log2 = log.try_clone().context("log file")?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        if !self.cgroups.dirs.is_empty() {
            self.cgroups.group(group)?.apply(&mut cmd);
        }
        let child = netns
            .run(|| cmd.spawn())
            .with_context(|| format!("cannot enter {}'s network namespace", node))?
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        let pid = child.id();
        tracing::info!(name, node, pid, "started");
        let info = ProcInfo { name: name.into(), node: node.into(), pid, state: "running".into(), log: log_path };
        self.lock().push(Proc { info, child });
        self.write_status();
        Ok(pid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Proc>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reaps exited processes, records how they ended; returns whether anything changed.
    pub fn reap(&self) -> bool {
        let mut changed = false;
        for p in self.lock().iter_mut() {
            if p.info.state != "running" {
                continue;
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                use std::os::unix::process::ExitStatusExt;
                p.info.state = match (st.code(), st.signal()) {
                    (Some(c), _) => format!("exited {c}"),
                    (None, Some(s)) => format!("killed by {}", Signal::try_from(s).map(|s| s.as_str()).unwrap_or("a signal")),
                    _ => "ended".into(),
                };
                tracing::warn!(name = %p.info.name, node = %p.info.node, pid = p.info.pid, state = %p.info.state, "process ended");
                changed = true;
            }
        }
        if changed {
            self.write_status();
        }
        changed
    }

    /// Waits `grace` (less when all have ended) to see which of `pids` keep running.
    pub fn early_all(&self, pids: &[u32], grace: Duration) -> Vec<Early> {
        let end = Instant::now() + grace;
        loop {
            self.reap();
            let states: Vec<Option<(String, PathBuf)>> = pids
                .iter()
                .map(|pid| {
                    self.lock()
                        .iter()
                        .find(|p| p.info.pid == *pid && p.info.state != "running")
                        .map(|p| (p.info.state.clone(), p.info.log.clone()))
                })
                .collect();
            if Instant::now() >= end || states.iter().all(Option::is_some) {
                return states
                    .into_iter()
                    .map(|s| match s {
                        Some((state, log)) => Early::Ended(state, tail(&log, 5)),
                        None => Early::Running,
                    })
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `pid` is still running.
    pub fn running(&self, pid: u32) -> bool {
        self.reap();
        self.lock().iter().any(|p| p.info.pid == pid && p.info.state == "running")
    }

    /// The log of the process `pid`, last lines.
    pub fn log_tail(&self, pid: u32, lines: usize) -> String {
        let log = self.lock().iter().find(|p| p.info.pid == pid).map(|p| p.info.log.clone());
        log.map(|l| tail(&l, lines)).unwrap_or_default()
    }

    /// Writes `processes.json`.
    pub fn write_status(&self) {
        let infos: Vec<ProcInfo> = self.lock().iter().map(|p| p.info.clone()).collect();
        let tmp = self.status_file.with_extension("tmp");
        let res = serde_json::to_string_pretty(&infos)
            .map_err(std::io::Error::other)
            .and_then(|t| std::fs::write(&tmp, t))
            .and_then(|_| std::fs::rename(&tmp, &self.status_file));
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot write processes.json");
        }
    }

    /// Stops everything: SIGTERM in reverse start order, up to `grace` for each group to
    /// exit, then SIGKILL.
    pub fn stop_all(&self, grace: Duration) {
        let pids: Vec<(u32, String)> = {
            let procs = self.lock();
            procs.iter().rev().filter(|p| p.info.state == "running").map(|p| (p.info.pid, p.info.name.clone())).collect()
        };
        for (pid, name) in &pids {
            tracing::info!(pid, name, "stopping");
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
        let end = Instant::now() + grace;
        while Instant::now() < end && pids.iter().any(|(pid, _)| self.running(*pid)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for (pid, name) in &pids {
            if self.running(*pid) {
                tracing::warn!(pid, name, "did not stop in time; SIGKILL");
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && pids.iter().any(|(pid, _)| self.running(*pid)) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads `processes.json`.
pub fn load_status(path: &Path) -> Vec<ProcInfo> {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// Whether a PID is alive (signal 0).
pub fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok() && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}
