//! A container's status and the state file kept in `<root>/<id>/state.json`, with the
//! transitions the OCI runtime spec allows.

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The OCI runtime spec's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created (hooks see this).
    Creating,
    /// Created; the user process waits for `start`.
    Created,
    /// The user process runs.
    Running,
    /// The container's init exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        })
    }
}

impl Status {
    /// `start` needs `created`.
    pub fn check_start(self) -> Result<()> {
        match self {
            Status::Created => Ok(()),
            s => Err(Error::BadState(format!(
                "cannot start a container that is not in created state (status: {s})"
            ))),
        }
    }

    /// `kill` needs a live init (`created` or `running`).
    pub fn check_kill(self, id: &str) -> Result<()> {
        match self {
            Status::Created | Status::Running => Ok(()),
            s => Err(Error::BadState(format!(
                "container \"{id}\" is not running (status: {s})"
            ))),
        }
    }

    /// `delete` takes `stopped` (and `created`, like runc); `running` needs `force`.
    pub fn check_delete(self, id: &str, force: bool) -> Result<()> {
        match (self, force) {
            (Status::Running, false) | (Status::Creating, false) => Err(Error::BadState(format!(
                "cannot delete container \"{id}\" that is not stopped (status: {self}); use --force"
            ))),
            _ => Ok(()),
        }
    }

    /// `exec` needs a live init.
    pub fn check_exec(self, id: &str) -> Result<()> {
        match self {
            Status::Created | Status::Running => Ok(()),
            s => Err(Error::BadState(format!(
                "cannot exec in container \"{id}\": it is {s}"
            ))),
        }
    }
}

/// The state as `minik-oci state` prints it (the OCI state plus runc's extra fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciState {
    /// The runtime spec version.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// Its status.
    pub status: Status,
    /// The init process's pid on the host (0 once stopped).
    pub pid: i32,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The rootfs directory.
    #[serde(default)]
    pub rootfs: PathBuf,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created: String,
    /// The owner (runc prints "" unless rootless).
    #[serde(default)]
    pub owner: String,
    /// config.json's annotations.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// The OCI runtime spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

impl OciState {
    /// A state with the given basics.
    pub fn new(id: &str, status: Status, pid: i32, bundle: PathBuf) -> Self {
        OciState {
            oci_version: OCI_VERSION.into(),
            id: id.into(),
            status,
            pid,
            bundle,
            rootfs: PathBuf::new(),
            created: String::new(),
            owner: String::new(),
            annotations: HashMap::new(),
        }
    }
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    /// The public part.
    #[serde(flatten)]
    pub oci: OciState,
    /// The init's start time (clock ticks since boot, /proc/PID/stat field 22), to tell
    /// a reused pid from the init.
    pub pid_start_time: u64,
    /// `linux.cgroupsPath`, when the container has a cgroup.
    #[serde(default)]
    pub cgroups_path: Option<String>,
    /// The config it was created from (exec and delete need it).
    pub config: Spec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        assert!(Status::Created.check_start().is_ok());
        assert_eq!(
            Status::Running.check_start().unwrap_err().to_string(),
            "cannot start a container that is not in created state (status: running)"
        );
        assert!(Status::Stopped.check_start().is_err());
        assert!(Status::Running.check_kill("a").is_ok());
        assert!(Status::Created.check_kill("a").is_ok());
        assert!(Status::Stopped
            .check_kill("a")
            .unwrap_err()
            .to_string()
            .contains("not running"));
        assert!(Status::Stopped.check_delete("a", false).is_ok());
        assert!(Status::Created.check_delete("a", false).is_ok());
        let e = Status::Running
            .check_delete("a", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not stopped") && e.contains("--force"), "{e}");
        assert!(Status::Running.check_delete("a", true).is_ok());
        assert!(Status::Stopped.check_exec("a").is_err());
    }

    #[test]
    fn state_json_shape() {
        let mut s = OciState::new("c", Status::Running, 7, "/b".into());
        s.annotations.insert("k".into(), "v".into());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ociVersion"], OCI_VERSION);
        assert_eq!(v["status"], "running");
        assert_eq!(v["pid"], 7);
        assert_eq!(v["bundle"], "/b");
        assert_eq!(v["annotations"]["k"], "v");
    }
}
