//! Containers on disk: one directory `<root>/<id>/` per container with `state.json`
//! (written atomically) and, until `start`, the `exec.fifo` the init waits on.
//!
//! [`Runtime`] is the library API: `create`, `start`, `state`, `kill`, `delete`,
//! `exec`, `ps`, `list` (see `create.rs`, `ops.rs`, `exec.rs`).

mod create;
mod exec;
mod ops;
mod state;

use std::path::{Path, PathBuf};

pub use create::CreateOptions;
pub use exec::{exit_code, wait_exit, ExecOptions, ExecResult};
pub use state::{OciState, StateFile, Status, OCI_VERSION};

use crate::error::{Error, Result};
use crate::procfs;

/// The default state root (`--root`).
pub const DEFAULT_ROOT: &str = "/run/minik-oci";

/// The runtime, rooted at a state directory.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
}

/// A loaded container.
#[derive(Debug, Clone)]
pub struct Container {
    /// Its directory.
    pub dir: PathBuf,
    /// What state.json says.
    pub state: StateFile,
}

impl Container {
    /// The status now: the stored one, unless the init is gone (or its pid reused).
    pub fn status(&self) -> Status {
        let s = &self.state;
        match s.oci.status {
            Status::Stopped => Status::Stopped,
            stored if procfs::is_alive(s.oci.pid, s.pid_start_time) => stored,
            _ => Status::Stopped,
        }
    }

    /// The OCI state with the current status (pid 0 once stopped, as runc prints).
    pub fn oci_state(&self) -> OciState {
        let mut st = self.state.oci.clone();
        st.status = self.status();
        if st.status == Status::Stopped {
            st.pid = 0;
        }
        st
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.state.oci.id
    }

    /// The exec fifo's path.
    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// Writes state.json atomically (temp file + rename).
    pub fn save(&self) -> Result<()> {
        write_state(&self.dir, &self.state)
    }
}

/// Writes `<dir>/state.json` atomically.
pub(crate) fn write_state(dir: &Path, state: &StateFile) -> Result<()> {
    let tmp = dir.join(".state.json.tmp");
    let json = serde_json::to_vec(state).map_err(|e| Error::Other(format!("encode state: {e}")))?;
    std::fs::write(&tmp, json).map_err(|e| Error::io("write", &tmp, e))?;
    let path = dir.join("state.json");
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename to", &path, e))
}

/// Checks that an id is a plain name (letters, digits, `.`, `_`, `+`, `-`).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.into()))
    }
}

impl Runtime {
    /// A runtime keeping its state under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime { root: root.into() }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads a container's state.
    pub fn load(&self, id: &str) -> Result<Container> {
        validate_id(id).map_err(|_| Error::NotFound(id.into()))?;
        let dir = self.root.join(id);
        let path = dir.join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let state: StateFile = serde_json::from_str(&text)
            .map_err(|e| Error::Other(format!("{}: corrupt state: {e}", path.display())))?;
        Ok(Container { dir, state })
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &str) -> Result<OciState> {
        Ok(self.load(id)?.oci_state())
    }

    /// Every container under the root (unreadable ones are skipped).
    pub fn list(&self) -> Result<Vec<OciState>> {
        let mut out = Vec::new();
        let dir = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("read", &self.root, e)),
        };
        for entry in dir.flatten() {
            if let Some(id) = entry.file_name().to_str() {
                if let Ok(c) = self.load(id) {
                    out.push(c.oci_state());
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_x+y", "0123456789abcdef"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "é"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_container_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(dir.path());
        assert_eq!(
            rt.state("nope").unwrap_err().to_string(),
            "container \"nope\" does not exist"
        );
        assert!(rt.list().unwrap().is_empty());
    }

    #[test]
    fn saved_state_loads_and_dead_pid_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(dir.path());
        let cdir = dir.path().join("c1");
        std::fs::create_dir(&cdir).unwrap();
        let me = std::process::id() as i32;
        let start = procfs::stat(me).unwrap().start_time;
        let state = StateFile {
            oci: OciState::new("c1", Status::Running, me, "/b".into()),
            pid_start_time: start,
            cgroups_path: None,
            config: serde_json::from_str(r#"{"ociVersion":"1.0.0"}"#).unwrap(),
        };
        let mut c = Container { dir: cdir, state };
        c.save().unwrap();
        assert_eq!(rt.state("c1").unwrap().status, Status::Running);
        c.state.pid_start_time += 1;
        c.save().unwrap();
        let st = rt.state("c1").unwrap();
        assert_eq!((st.status, st.pid), (Status::Stopped, 0));
        assert_eq!(rt.list().unwrap().len(), 1);
    }
}
