//! cgroups for minik's containers: v1 (one hierarchy per controller), v2 (the unified
//! hierarchy) and the hybrid layout some hosts run, behind one interface.
//!
//! Callers name a cgroup by a path such as `minik/pod1/c1`. A relative path is placed
//! under the calling process's own cgroup (read from `/proc/self/cgroup`, per controller
//! on v1), so containers stay inside the limits minik itself runs under; an absolute path
//! is taken from the hierarchy root, as runc does.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::path::PathBuf;

/// Resource limits to apply (the OCI `linux.resources` subset minik uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU weight as v1 `cpu.shares` (2..262144); converted to `cpu.weight` on v2.
    pub cpu_shares: Option<u64>,
    /// CPU quota in microseconds per period (`-1` or `None` = unlimited).
    pub cpu_quota: Option<i64>,
    /// CPU period in microseconds (default 100000).
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// Memory + swap limit in bytes (v1 `memsw`, v2 `memory.swap.max` = swap - limit).
    pub memory_swap: Option<i64>,
    /// Maximum number of tasks (`pids.max`).
    pub pids_limit: Option<i64>,
}

/// Usage figures of one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Peak memory, bytes, where the kernel reports it.
    pub memory_max_usage: Option<u64>,
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Tasks in the cgroup now.
    pub pids_current: u64,
    /// OOM kills inside the cgroup so far.
    pub oom_kills: u64,
}

/// Which cgroup layout the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies.
    V1,
    /// v1 controllers plus an (often empty) v2 mount at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// Only the unified v2 hierarchy.
    V2,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done ("write", "create", …).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A controller minik needs is not available.
    #[error("cgroup controller {0} is not available on this host")]
    MissingController(String),
    /// Something the kernel printed could not be parsed.
    #[error("cannot parse {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A bad request.
    #[error("{0}")]
    Invalid(String),
}

/// One container's (or pod's) cgroup, whichever version backs it.
pub trait CgroupManager: Send + Sync + std::fmt::Debug {
    /// Creates the cgroup (and its parents) in every hierarchy used.
    fn create(&self) -> Result<(), CgroupError>;
    /// Moves a process into it.
    fn add_task(&self, pid: i32) -> Result<(), CgroupError>;
    /// Applies limits.
    fn apply(&self, resources: &Resources) -> Result<(), CgroupError>;
    /// Reads usage.
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// The PIDs inside it (recursively).
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Sends a signal to every process inside it.
    fn kill_all(&self, signal: i32) -> Result<(), CgroupError>;
    /// Removes it (it must be empty); a missing cgroup is fine.
    fn destroy(&self) -> Result<(), CgroupError>;
    /// The directories that back it (one per v1 hierarchy, one on v2), for diagnostics
    /// and for bind-mounting into a container.
    fn paths(&self) -> Vec<PathBuf>;
}

/// Detects the host's layout from `/sys/fs/cgroup`.
pub fn layout() -> Layout {
    detect::layout()
}

/// Opens the cgroup named `path` (see the module docs for relative vs absolute paths),
/// backed by v2 where the host's controllers live there, else by v1.
pub fn open(path: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    detect::open(path)
}

/// Removes the cgroup `path` and everything below it from *every* mounted hierarchy,
/// not only the controllers a manager uses: OCI runtimes (runc, crun, minik-oci) also
/// create a container's cgroup in blkio, cpuset, devices, freezer, `name=systemd` and the
/// unified hierarchy of a v1 or hybrid host. Missing directories are fine.
pub fn remove_everywhere(path: &str) -> Result<(), CgroupError> {
    detect::remove_everywhere(path)
}

/// Opens the cgroup named `path` in the unified (v2) hierarchy whatever the layout:
/// `/sys/fs/cgroup` on V2 hosts, `/sys/fs/cgroup/unified` on hybrid ones (where it
/// usually has no cpu/memory/pids controllers, so only create, add_task, pids, kill_all,
/// destroy and cpu time work). A relative `path` goes under the process's `0::` cgroup.
/// Meant for tests and diagnostics; [`open`] picks the right backend for containers.
pub fn open_unified(path: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    detect::open_unified(path)
}

mod detect;
mod fs;
mod v1;
mod v2;
