//! One container's attempts: start one (image → rootfs → bundle → shim), observe it
//! (the shim's start and exit records), and clean up after it (runtime delete, rootfs).
//! The decisions — when to restart, back-off, probes — are the pod worker's.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::bundle::{self, BundleInput};
use crate::node::Node;
use crate::sandbox::Sandbox;
use crate::shim::{read_record, ExitRecord, StartRecord};
use crate::state::{ContainerRecord, Termination};
use crate::timefmt::unix;

/// Why an attempt could not be started; shown as the container's waiting reason.
#[derive(Debug, Clone)]
pub struct StartFailure {
    /// `ErrImageNeverPull`, `CreateContainerConfigError`, `CreateContainerError`.
    pub reason: &'static str,
    /// What to do about it.
    pub message: String,
}

/// The files of one attempt.
pub struct AttemptPaths {
    /// The attempt's directory (bundle, rootfs, records).
    pub dir: PathBuf,
    /// The shim's start record.
    pub start: PathBuf,
    /// The shim's exit record.
    pub exit: PathBuf,
}

/// Paths of an attempt.
pub fn attempt_paths(node: &Node, uid: &str, id: &str) -> AttemptPaths {
    let dir = node.pod_dir(uid).join("containers").join(id);
    AttemptPaths { start: dir.join("started.json"), exit: dir.join("exit.json"), dir }
}

/// The runtime ID of an attempt: unique per pod, container and attempt.
pub fn container_id(uid: &str, name: &str, attempt: u32) -> String {
    format!("{}-{name}-{attempt}", &uid[..uid.len().min(12)])
}

/// The cgroup of an attempt (relative: under minilet's own cgroup).
pub fn cgroup_path(uid: &str, id: &str) -> String {
    format!("minik/pod{uid}/{id}")
}

/// Starts a new attempt of `c`; returns the shim process.
pub fn start(node: &Node, pod: &Pod, sb: &Sandbox, c: &Container, rec: &mut ContainerRecord) -> Result<Child, StartFailure> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let image_ref = c.image.clone().unwrap_or_default();
    let image = node.images.resolve(&image_ref).map_err(|e| StartFailure {
        reason: e.waiting_reason(),
        message: if e.is_not_found() {
            format!("Container image {image_ref:?} is not present on this node: {e}")
        } else {
            format!("Container image {image_ref:?}: {e}")
        },
    })?;
    let id = container_id(&uid, &c.name, rec.attempt);
    let paths = attempt_paths(node, &uid, &id);
    // A leftover of a crashed earlier try of this very attempt.
    if node.runtime.root.join(&id).exists() {
        let _ = node.runtime.delete(&id, true);
    }
    let _ = node.images.release_rootfs(&paths.dir);
    let _ = std::fs::remove_dir_all(&paths.dir);
    std::fs::create_dir_all(&paths.dir)
        .map_err(|e| StartFailure { reason: "CreateContainerError", message: format!("cannot create {}: {e}", paths.dir.display()) })?;
    let rootfs = node
        .images
        .prepare_rootfs(&image, &paths.dir)
        .map_err(|e| StartFailure { reason: "CreateContainerError", message: format!("cannot prepare the rootfs: {e}") })?;
    let cg = cgroup_path(&uid, &id);
    let config = bundle::config_json(&BundleInput {
        pod,
        container: c,
        image: &image.config,
        sandbox: sb,
        rootfs: &rootfs.path,
        cgroups_path: &cg,
        pids_limit: node.cfg.pod_pids_limit,
    })
    .map_err(|message| StartFailure { reason: "CreateContainerConfigError", message })?;
    let bytes = serde_json::to_vec_pretty(&config).unwrap_or_default();
    std::fs::write(paths.dir.join("config.json"), bytes)
        .map_err(|e| StartFailure { reason: "CreateContainerError", message: format!("cannot write config.json: {e}") })?;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let log = node.log_path(&ns, &name, &uid, &c.name, rec.restart_count);
    let child = spawn_shim(node, &id, &paths, &log)
        .map_err(|e| StartFailure { reason: "CreateContainerError", message: format!("cannot start the shim: {e}") })?;
    rec.id = Some(id);
    rec.shim_pid = Some(child.id() as i32);
    rec.image_id = Some(format!("{}@{}", image.reference, image.manifest_digest));
    rec.termination = None;
    Ok(child)
}

fn spawn_shim(node: &Node, id: &str, paths: &AttemptPaths, log: &Path) -> std::io::Result<Child> {
    let mut cmd = Command::new(&node.cfg.shim);
    cmd.arg("--runtime")
        .arg(&node.cfg.runtime)
        .arg("--runtime-root")
        .arg(node.cfg.runtime_root())
        .arg("--id")
        .arg(id)
        .arg("--bundle")
        .arg(&paths.dir)
        .arg("--log")
        .arg(log)
        .arg("--log-max-size")
        .arg(node.cfg.container_log_max_size.to_string())
        .arg("--log-max-files")
        .arg(node.cfg.container_log_max_files.to_string())
        .arg("--exit-file")
        .arg(&paths.exit)
        .arg("--start-file")
        .arg(&paths.start)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(paths.dir.join("shim.log"))?));
    // SAFETY: setsid in the forked child only changes the child's session; it allocates
    // nothing and is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}

/// What the shim's records say about an attempt.
pub enum Observed {
    /// Not started yet.
    Creating,
    /// Running since (epoch seconds).
    Running(f64),
    /// Ended.
    Exited(ExitRecord, Option<f64>),
    /// The shim is gone without a record (it was killed).
    Lost,
}

/// Reads the attempt's records; `shim_alive` tells whether the shim still runs.
pub fn observe(node: &Node, uid: &str, id: &str, shim_alive: bool) -> Observed {
    let p = attempt_paths(node, uid, id);
    let started: Option<StartRecord> = read_record(&p.start);
    if let Some(exit) = read_record::<ExitRecord>(&p.exit) {
        return Observed::Exited(exit, started.map(|s| s.started_at));
    }
    match (started, shim_alive) {
        (Some(s), _) => Observed::Running(s.started_at),
        (None, true) => Observed::Creating,
        (None, false) => Observed::Lost,
    }
}

/// Whether a process is alive (for adopted shims, which are not our children).
pub fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

/// Turns an exit record into a termination, reading the cgroup's OOM counter.
pub fn termination(uid: &str, id: &str, exit: &ExitRecord, started_at: Option<f64>) -> Termination {
    let oom = minik_cgroups::open(&cgroup_path(uid, id)).ok().and_then(|cg| cg.stats().ok()).map(|s| s.oom_kills > 0).unwrap_or(false);
    let reason = match (&exit.reason, oom, exit.exit_code) {
        (Some(r), _, _) => r.clone(),
        (None, true, _) => "OOMKilled".to_string(),
        (None, false, 0) => "Completed".to_string(),
        (None, false, _) => "Error".to_string(),
    };
    Termination {
        id: id.to_string(),
        exit_code: exit.exit_code,
        signal: exit.signal,
        reason,
        message: exit.message.clone(),
        started_at: started_at.unwrap_or(0.0),
        finished_at: exit.finished_at,
    }
}

/// Removes an ended attempt: runtime state, rootfs mount, files (its log stays).
pub fn cleanup(node: &Node, uid: &str, id: &str) {
    if let Err(e) = node.runtime.delete(id, true) {
        tracing::warn!(container = id, error = %e, "runtime delete failed");
    }
    let p = attempt_paths(node, uid, id);
    if let Err(e) = node.images.release_rootfs(&p.dir) {
        tracing::warn!(container = id, error = %e, "cannot release the rootfs");
    }
    if let Ok(cg) = minik_cgroups::open(&cgroup_path(uid, id)) {
        let _ = cg.destroy();
    }
    let _ = std::fs::remove_dir_all(&p.dir);
}

/// A termination for an attempt whose shim vanished.
pub fn lost(id: &str) -> Termination {
    let now = unix(SystemTime::now());
    Termination {
        id: id.to_string(),
        exit_code: 255,
        signal: None,
        reason: "Unknown".into(),
        message: Some("the container's shim exited without recording how the container ended".into()),
        started_at: 0.0,
        finished_at: now,
    }
}
