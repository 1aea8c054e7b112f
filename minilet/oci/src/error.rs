//! The runtime's error type: one enum, with messages written for the person (or the
//! podman/containerd log) that reads them.

use std::path::PathBuf;

/// What can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No state directory for that id under the root.
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    /// The id is taken.
    #[error("container \"{0}\" already exists")]
    AlreadyExists(String),
    /// The id is not usable as a directory name.
    #[error("invalid container id {0:?}: use letters, digits and . _ + - only")]
    InvalidId(String),
    /// config.json (or process.json) is missing, unreadable or has a bad field.
    #[error("{file}: {detail}")]
    Config {
        /// The file (`config.json`, `process.json`).
        file: String,
        /// What is wrong, naming the field.
        detail: String,
    },
    /// The operation does not fit the container's status.
    #[error("{0}")]
    BadState(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The container's init process reported a failure (or died) while being set up.
    #[error("container init: {0}")]
    Init(String),
    /// A cgroup could not be created, joined or limited.
    #[error("cgroup {path}: {source}")]
    Cgroup {
        /// `linux.cgroupsPath`.
        path: String,
        /// Why.
        source: minik_cgroups::CgroupError,
    },
    /// A hook failed.
    #[error("{0}")]
    Hook(String),
    /// The seccomp profile cannot be compiled.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// Something that is not supported (named).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Any other failure, described.
    #[error("{0}")]
    Other(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A failed system call, described by `what`.
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            what: what.into(),
            source,
        }
    }

    /// A failed file operation on `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// A bad field in config.json.
    pub fn config(detail: impl Into<String>) -> Self {
        Error::Config {
            file: "config.json".into(),
            detail: detail.into(),
        }
    }
}

/// Adds a description to nix results: `.sys("mount /proc")?`.
pub trait SysContext<T> {
    /// Maps the errno into [`Error::Sys`] with `what`.
    fn sys(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn sys(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}
