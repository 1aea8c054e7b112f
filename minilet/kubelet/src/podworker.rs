//! One pod's worker: a loop that makes the pod's actual state follow its spec.
//!
//! Each tick: make sure the sandbox exists → for each container, observe the current
//! attempt (shim records), record how it ended, restart it per `restartPolicy` with the
//! kubelet's exponential back-off (CrashLoopBackOff), start the first attempt → run the
//! probes that are due (startup gates liveness and readiness; a failed liveness probe
//! restarts the container) → write the pod's status. Stopping a pod sends SIGTERM, waits
//! the grace period, sends SIGKILL, and tears the sandbox down.

use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::container::{self, Observed};
use crate::events::{self, EventType};
use crate::node::Node;
use crate::probe::{self, Outcome, ProbeState};
use crate::sandbox;
use crate::state::{ContainerRecord, PodRecord};
use crate::status;
use crate::timefmt::unix;

/// What a container is doing right now (besides its record).
#[derive(Debug, Clone)]
pub enum Phase {
    /// Not running: why.
    Waiting {
        /// ContainerCreating, CrashLoopBackOff, ErrImageNeverPull, …
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since (epoch seconds).
    Running(f64),
    /// Ended and will not be restarted.
    Terminated,
}

/// In-memory state of one container.
pub struct Ctr {
    /// The spec.
    pub spec: Container,
    /// The persistent record.
    pub rec: ContainerRecord,
    /// The phase.
    pub phase: Phase,
    shim: Option<Child>,
    backoff_until: Option<Instant>,
    last_start_try: Option<Instant>,
    /// Ready per its readiness probe (or true without one, once running).
    pub ready: bool,
    /// Started per its startup probe (or true without one, once running).
    pub started: bool,
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
    kill_deadline: Option<Instant>,
}

/// One pod's worker.
pub struct PodWorker {
    node: Arc<Node>,
    /// The record (pod, sandbox, containers).
    pub rec: PodRecord,
    /// Containers, in spec order.
    pub ctrs: Vec<Ctr>,
    sandbox_error: Option<String>,
    next_sandbox_try: Instant,
}

fn restart_policy(pod: &Pod) -> String {
    pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into())
}

impl PodWorker {
    /// A worker for a new pod, or for one adopted from its record after a restart.
    pub fn new(node: Arc<Node>, rec: PodRecord) -> Self {
        let specs = rec.pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
        let mut records = rec.containers.clone();
        let ctrs = specs
            .into_iter()
            .map(|spec| {
                let r = records
                    .iter()
                    .position(|r| r.name == spec.name)
                    .map(|i| records.remove(i))
                    .unwrap_or_else(|| ContainerRecord { name: spec.name.clone(), ..Default::default() });
                Ctr {
                    spec,
                    rec: r,
                    phase: Phase::Waiting { reason: "ContainerCreating".into(), message: None },
                    shim: None,
                    backoff_until: None,
                    last_start_try: None,
                    ready: false,
                    started: false,
                    startup: None,
                    liveness: None,
                    readiness: None,
                    kill_deadline: None,
                }
            })
            .collect();
        PodWorker { node, rec, ctrs, sandbox_error: None, next_sandbox_try: Instant::now() }
    }

    fn uid(&self) -> String {
        self.rec.uid.clone()
    }

    fn save(&mut self) {
        self.rec.containers = self.ctrs.iter().map(|c| c.rec.clone()).collect();
        if let Err(e) = self.rec.save(&self.node.cfg.pods_dir()) {
            tracing::error!(pod = %self.rec.uid, error = %e, "cannot save the pod state");
        }
    }

    fn event(&self, kind: EventType, reason: &str, message: String) {
        events::record(&self.node.pod_dir(&self.rec.uid), &self.rec.pod, kind, reason, &message);
    }

    /// One pass of the loop.
    pub async fn tick(&mut self) {
        if self.rec.sandbox.is_none() {
            if Instant::now() < self.next_sandbox_try {
                return self.write_status();
            }
            let dir = self.node.pod_dir(&self.rec.uid);
            match sandbox::create(&self.node.cfg, &self.node.cni, &self.rec.pod, &dir).await {
                Ok(sb) => {
                    self.sandbox_error = None;
                    self.rec.sandbox = Some(sb);
                    self.save();
                }
                Err(e) => {
                    let msg = format!("Failed to create pod sandbox: {e:#}");
                    if self.sandbox_error.as_deref() != Some(msg.as_str()) {
                        self.event(EventType::Warning, "FailedCreatePodSandBox", msg.clone());
                    }
                    self.sandbox_error = Some(msg);
                    self.next_sandbox_try = Instant::now() + Duration::from_secs(2);
                    return self.write_status();
                }
            }
        }
        let mut changed = false;
        // Starting containers runs processes and mounts: let the runtime move other
        // pods' work to another thread meanwhile.
        tokio::task::block_in_place(|| {
            for i in 0..self.ctrs.len() {
                changed |= self.sync_container(i);
            }
        });
        for i in 0..self.ctrs.len() {
            changed |= self.run_probes(i).await;
        }
        if changed {
            self.save();
        }
        self.write_status();
    }

    /// Observes and (re)starts container `i`; returns whether its record changed.
    fn sync_container(&mut self, i: usize) -> bool {
        let uid = self.uid();
        let policy = restart_policy(&self.rec.pod);
        let node = self.node.clone();
        let Some(sb) = self.rec.sandbox.clone() else { return false };
        let pod = self.rec.pod.clone();
        let c = &mut self.ctrs[i];
        let mut changed = false;

        if let Some(id) = c.rec.id.clone() {
            let alive = match c.shim.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                None => c.rec.shim_pid.is_some_and(container::pid_alive),
            };
            match container::observe(&node, &uid, &id, alive) {
                Observed::Creating => {}
                Observed::Running(since) => {
                    if !matches!(c.phase, Phase::Running(_)) {
                        c.phase = Phase::Running(since);
                        let started = Instant::now();
                        let spec = &c.spec;
                        c.startup = spec.startup_probe.clone().map(|p| ProbeState::new(p, started, false));
                        c.liveness = spec.liveness_probe.clone().map(|p| ProbeState::new(p, started, true));
                        c.readiness = spec.readiness_probe.clone().map(|p| ProbeState::new(p, started, false));
                        c.started = c.startup.is_none();
                        c.ready = c.readiness.is_none() && c.started;
                        events::record(&node.pod_dir(&uid), &pod, EventType::Normal, "Started", &format!("Started container {}", c.spec.name));
                    }
                }
                Observed::Exited(exit, started_at) => {
                    let t = container::termination(&uid, &id, &exit, started_at);
                    tracing::info!(pod = ?pod.metadata.name, container = %c.spec.name, exit = t.exit_code, reason = %t.reason, "container ended");
                    if let Some(m) = &t.message {
                        events::record(&node.pod_dir(&uid), &pod, EventType::Warning, "Failed", &format!("Error: {}: {m}", t.reason));
                    }
                    container::cleanup(&node, &uid, &id);
                    if let Some(mut s) = c.shim.take() {
                        let _ = s.wait();
                    }
                    c.rec.id = None;
                    c.rec.shim_pid = None;
                    c.rec.termination = Some(t);
                    c.ready = false;
                    c.started = false;
                    c.kill_deadline = None;
                    changed = true;
                }
                Observed::Lost => {
                    container::cleanup(&node, &uid, &id);
                    c.rec.id = None;
                    c.rec.shim_pid = None;
                    c.rec.termination = Some(container::lost(&id));
                    c.shim = None;
                    c.ready = false;
                    changed = true;
                }
            }
        }
        if let (Some(deadline), Some(id)) = (c.kill_deadline, c.rec.id.clone()) {
            if Instant::now() >= deadline {
                let _ = node.runtime.kill(&id, "KILL");
                c.kill_deadline = None;
            }
        }
        if c.rec.id.is_some() {
            return changed;
        }

        // No attempt exists: start one, restart after a termination, or stay ended.
        if let Some(t) = c.rec.termination.clone() {
            let restart = match policy.as_str() {
                "Never" => false,
                "OnFailure" => t.exit_code != 0,
                _ => true,
            };
            if !restart {
                c.phase = Phase::Terminated;
                return changed;
            }
            if c.backoff_until.is_none() {
                // The kubelet restarts the first crash at once, then backs off 10 s,
                // 20 s, 40 s … up to 5 min; a container that ran 10 min resets it.
                let ran = if t.started_at > 0.0 { t.finished_at - t.started_at } else { 0.0 };
                let n = if ran > 600.0 { 0 } else { c.rec.restart_count };
                let delay = if n == 0 {
                    Duration::ZERO
                } else {
                    let base = node.cfg.backoff_base;
                    base.saturating_mul(1u32 << (n - 1).min(16) as u32).min(node.cfg.backoff_max)
                };
                c.backoff_until = Some(Instant::now() + delay);
                if !delay.is_zero() {
                    events::record(&node.pod_dir(&uid), &pod, EventType::Warning, "BackOff", &format!("Back-off restarting failed container {} in pod {}", c.spec.name, pod.metadata.name.clone().unwrap_or_default()));
                }
            }
            if c.backoff_until.is_some_and(|u| Instant::now() < u) {
                let secs = node.cfg.backoff_base.as_secs_f64() * 2f64.powi((c.rec.restart_count - 1).max(0));
                c.phase = Phase::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={} pod={}",
                        secs.min(node.cfg.backoff_max.as_secs_f64()),
                        c.spec.name,
                        pod.metadata.name.clone().unwrap_or_default()
                    )),
                };
                return changed;
            }
            c.backoff_until = None;
            c.rec.last_termination = c.rec.termination.take();
            c.rec.restart_count += 1;
            c.rec.attempt += 1;
            changed = true;
        }
        // Image errors and the like are retried every few seconds, not every tick.
        if c.last_start_try.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) && matches!(c.phase, Phase::Waiting { ref reason, .. } if reason != "ContainerCreating") {
            return changed;
        }
        c.last_start_try = Some(Instant::now());
        match container::start(&node, &pod, &sb, &c.spec, &mut c.rec) {
            Ok(child) => {
                c.shim = Some(child);
                c.phase = Phase::Waiting { reason: "ContainerCreating".into(), message: None };
                events::record(&node.pod_dir(&uid), &pod, EventType::Normal, "Created", &format!("Created container {}", c.spec.name));
            }
            Err(f) => {
                let first = !matches!(&c.phase, Phase::Waiting { reason, .. } if reason == f.reason);
                c.phase = Phase::Waiting { reason: f.reason.to_string(), message: Some(f.message.clone()) };
                if first {
                    events::record(&node.pod_dir(&uid), &pod, EventType::Warning, "Failed", &format!("Error: {}: {}", f.reason, f.message));
                }
            }
        }
        true
    }

    /// Runs the due probes of container `i`.
    async fn run_probes(&mut self, i: usize) -> bool {
        let ip = self.rec.sandbox.as_ref().and_then(|s| s.ips.first().copied());
        let node = self.node.clone();
        let uid = self.uid();
        let pod = self.rec.pod.clone();
        let c = &mut self.ctrs[i];
        let (Phase::Running(_), Some(id)) = (&c.phase, c.rec.id.clone()) else { return false };
        if c.kill_deadline.is_some() {
            return false;
        }
        let now = Instant::now();
        let spec = c.spec.clone();
        if let Some(p) = c.startup.as_mut().filter(|p| !c.started && p.due(now)) {
            let o = probe::run_once(&p.probe, &spec, ip, &node.runtime, &id).await;
            if let Outcome::Failure(m) = &o {
                events::record(&node.pod_dir(&uid), &pod, EventType::Warning, "Unhealthy", &format!("Startup probe failed: {m}"));
            }
            p.record(o, Instant::now());
            if p.passing {
                c.started = true;
                c.ready = c.readiness.is_none();
            } else if p.failures >= p.probe.failure_threshold.unwrap_or(3).max(1) {
                c.kill_deadline = Some(Instant::now() + grace(&pod));
                let _ = node.runtime.kill(&id, "TERM");
            }
        }
        if !c.started {
            return false;
        }
        if let Some(p) = c.liveness.as_mut().filter(|p| p.due(now)) {
            let o = probe::run_once(&p.probe, &spec, ip, &node.runtime, &id).await;
            if let Outcome::Failure(m) = &o {
                events::record(&node.pod_dir(&uid), &pod, EventType::Warning, "Unhealthy", &format!("Liveness probe failed: {m}"));
            }
            if p.record(o, Instant::now()) && !p.passing {
                events::record(&node.pod_dir(&uid), &pod, EventType::Normal, "Killing", &format!("Container {} failed liveness probe, will be restarted", spec.name));
                c.kill_deadline = Some(Instant::now() + grace(&pod));
                c.ready = false;
                let _ = node.runtime.kill(&id, "TERM");
                return true;
            }
        }
        if let Some(p) = c.readiness.as_mut().filter(|p| p.due(now)) {
            let o = probe::run_once(&p.probe, &spec, ip, &node.runtime, &id).await;
            if let Outcome::Failure(m) = &o {
                events::record(&node.pod_dir(&uid), &pod, EventType::Warning, "Unhealthy", &format!("Readiness probe failed: {m}"));
            }
            p.record(o, Instant::now());
            c.ready = p.passing;
        }
        false
    }

    fn write_status(&self) {
        let st = status::pod_status(self, self.sandbox_error.as_deref());
        let mut pod = self.rec.pod.clone();
        pod.status = Some(st);
        let dir = self.node.pod_dir(&self.rec.uid);
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(bytes) = serde_json::to_vec_pretty(&pod) {
            if let Err(e) = crate::state::write_atomic(&dir.join("status.json"), &bytes) {
                tracing::warn!(error = %e, "cannot write the pod status");
            }
        }
    }

    /// Stops every container (SIGTERM, grace period, SIGKILL) and removes the sandbox
    /// and the pod's directory.
    pub async fn stop(mut self) {
        let g = grace(&self.rec.pod);
        for c in &self.ctrs {
            if let Some(id) = &c.rec.id {
                let _ = self.node.runtime.kill(id, "TERM");
            }
        }
        let deadline = Instant::now() + g;
        loop {
            let uid = self.uid();
            let running: Vec<String> = self
                .ctrs
                .iter()
                .filter_map(|c| c.rec.id.clone())
                .filter(|id| !container::attempt_paths(&self.node, &uid, id).exit.exists())
                .filter(|id| self.node.runtime.status(id).as_deref() == Some("running"))
                .collect();
            if running.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for id in &running {
                    let _ = self.node.runtime.kill(id, "KILL");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let uid = self.uid();
        for c in &mut self.ctrs {
            if let Some(id) = c.rec.id.take() {
                container::cleanup(&self.node, &uid, &id);
            }
            if let Some(mut s) = c.shim.take() {
                let _ = s.wait();
            }
        }
        if let Some(sb) = &self.rec.sandbox {
            sandbox::destroy(&self.node.cni, &self.rec.pod, sb).await;
        }
        if let Ok(cg) = minik_cgroups::open(&format!("minik/pod{uid}")) {
            let _ = cg.destroy();
        }
        // The runtime also made the pod's cgroups in the hierarchies minilet does not manage.
        if let Err(e) = minik_cgroups::remove_everywhere(&format!("minik/pod{uid}")) {
            tracing::warn!(pod = ?self.rec.pod.metadata.name, error = %e, "cannot remove the pod's cgroups");
        }
        let _ = std::fs::remove_dir_all(self.node.pod_dir(&uid));
        tracing::info!(pod = ?self.rec.pod.metadata.name, "pod stopped");
    }

    /// Seconds since minilet first saw the pod.
    pub fn age(&self) -> f64 {
        unix(SystemTime::now()) - self.rec.created_at
    }
}

/// The pod's termination grace period.
pub fn grace(pod: &Pod) -> Duration {
    Duration::from_secs(pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30).max(0) as u64)
}
