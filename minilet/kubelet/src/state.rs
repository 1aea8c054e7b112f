//! What minilet keeps on disk per pod (`<root>/pods/<uid>/state.json`), so that a minilet
//! killed and started again adopts its pods instead of recreating them: the pod as the
//! source gave it, its sandbox (namespaces, CNI result) and, per container, the current
//! attempt and the last termination. Written atomically (temp file + fsync + rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::sandbox::Sandbox;

/// How a container attempt ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Termination {
    /// The runtime's container ID of that attempt.
    pub id: String,
    /// The exit code.
    pub exit_code: i32,
    /// The signal, if signalled.
    pub signal: Option<i32>,
    /// Completed, Error, OOMKilled, CreateContainerError, StartError…
    pub reason: String,
    /// Details for failures.
    pub message: Option<String>,
    /// When it started (epoch seconds; 0 if it never ran).
    pub started_at: f64,
    /// When it ended.
    pub finished_at: f64,
}

/// A container's persistent record.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ContainerRecord {
    /// The container's name in the pod spec.
    pub name: String,
    /// Restarts so far (the `RESTARTS` column).
    pub restart_count: i32,
    /// The attempt number of the current (or next) attempt.
    pub attempt: u32,
    /// The runtime ID of the current attempt, while it exists.
    pub id: Option<String>,
    /// The shim's PID for the current attempt.
    pub shim_pid: Option<i32>,
    /// The previous attempt's end (`lastState`).
    pub last_termination: Option<Termination>,
    /// The current attempt's end, once it ended and until the next attempt starts.
    pub termination: Option<Termination>,
    /// The image's resolved reference and digest of the current attempt.
    pub image_id: Option<String>,
}

/// A pod's persistent record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodRecord {
    /// The pod's UID.
    pub uid: String,
    /// The pod as its source gave it.
    pub pod: Pod,
    /// Its sandbox, once created.
    pub sandbox: Option<Sandbox>,
    /// When minilet first saw it (epoch seconds).
    pub created_at: f64,
    /// Per container, in spec order.
    pub containers: Vec<ContainerRecord>,
}

impl PodRecord {
    /// The pod's directory.
    pub fn dir(pods_dir: &Path, uid: &str) -> PathBuf {
        pods_dir.join(uid)
    }

    /// Saves it.
    pub fn save(&self, pods_dir: &Path) -> std::io::Result<()> {
        let dir = Self::dir(pods_dir, &self.uid);
        std::fs::create_dir_all(&dir)?;
        write_atomic(&dir.join("state.json"), &serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)
    }

    /// Loads every pod record under `pods_dir`; unreadable ones are skipped with a warning.
    pub fn load_all(pods_dir: &Path) -> Vec<PodRecord> {
        let Ok(entries) = std::fs::read_dir(pods_dir) else { return Vec::new() };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path().join("state.json");
                let bytes = std::fs::read(&p).ok()?;
                match serde_json::from_slice(&bytes) {
                    Ok(r) => Some(r),
                    Err(err) => {
                        tracing::warn!(path = %p.display(), error = %err, "skipping an unreadable pod state");
                        None
                    }
                }
            })
            .collect()
    }
}

/// Writes a file atomically: temp file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
