//! The cgroup v2 backend: one directory in the unified hierarchy.
//!
//! `create` enables the controllers minik uses (`cpu`, `memory`, `pids`) in the
//! `cgroup.subtree_control` of every ancestor from the mount point down, but only those
//! the ancestor offers in `cgroup.controllers` and has not enabled yet, so nothing is
//! written where nothing is missing. Note v2's "no internal processes" rule: a
//! non-root cgroup that holds processes cannot enable controllers for its children, so
//! on a v2 host minik itself should not sit in the cgroup its containers are placed
//! under (use an absolute path, or a delegated sub-tree).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fs::{self, Fs};
use crate::{CgroupError, CgroupManager, Resources, Stats};

/// The v2 controllers minik enables for its cgroups.
pub(crate) const CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

/// A cgroup in the unified hierarchy.
#[derive(Debug)]
pub(crate) struct V2Manager {
    fs: Arc<dyn Fs>,
    /// The hierarchy's mount point (never written to unless a controller is missing).
    mount: PathBuf,
    /// The cgroup's directory (below `mount`).
    dir: PathBuf,
}

/// v1 `cpu.shares` (2..262144) to v2 `cpu.weight` (1..10000), as runc and youki do.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The `cpu.max` line for a quota and period (`None`: leave the file alone).
fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.map(|q| {
        if q > 0 {
            q.to_string()
        } else {
            "max".to_string()
        }
    });
    match (quota, period) {
        (Some(q), Some(p)) => Some(format!("{q} {p}")),
        (Some(q), None) => Some(q),
        (None, Some(p)) => Some(format!("max {p}")),
        (None, None) => None,
    }
}

/// A v2 byte limit: negative means `max`.
fn v2_bytes(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// The `memory.swap.max` value for OCI's memory+swap figure (`swap - limit`).
fn swap_max(limit: Option<i64>, swap: i64) -> Result<String, CgroupError> {
    if swap < 0 {
        return Ok("max".to_string());
    }
    match limit {
        Some(limit) if limit > 0 && swap >= limit => Ok((swap - limit).to_string()),
        Some(limit) if limit > 0 => Err(CgroupError::Invalid(format!(
            "memory+swap limit {swap} is below the memory limit {limit}"
        ))),
        _ => Err(CgroupError::Invalid(
            "a memory+swap limit needs a memory limit on cgroup v2".to_string(),
        )),
    }
}

impl V2Manager {
    /// A manager for `dir` in the hierarchy mounted at `mount`.
    pub(crate) fn new(fs: Arc<dyn Fs>, mount: PathBuf, dir: PathBuf) -> Self {
        Self { fs, mount, dir }
    }

    /// The cgroups whose `subtree_control` governs `dir`: the mount point and every
    /// directory down to `dir`'s parent, top-most first.
    fn ancestors(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .dir
            .ancestors()
            .skip(1)
            .take_while(|p| p.starts_with(&self.mount))
            .map(Path::to_path_buf)
            .collect();
        out.reverse();
        out
    }

    /// Enables the controllers minik uses in `parent`, where offered and still off.
    fn enable_in(&self, parent: &Path) -> Result<(), CgroupError> {
        let offered =
            fs::read_opt(&*self.fs, &parent.join("cgroup.controllers"))?.unwrap_or_default();
        let control = parent.join("cgroup.subtree_control");
        let enabled = fs::read_opt(&*self.fs, &control)?.unwrap_or_default();
        let missing: Vec<String> = CONTROLLERS
            .iter()
            .filter(|c| offered.split_whitespace().any(|o| o == **c))
            .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        fs::write(&*self.fs, &control, &missing.join(" "))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `value` to `name`, which must exist (else its controller is not enabled).
    fn write_controller_file(
        &self,
        controller: &str,
        name: &str,
        value: &str,
    ) -> Result<(), CgroupError> {
        let path = self.file(name);
        if self.fs.exists(&self.dir) && !self.fs.exists(&path) {
            return Err(CgroupError::MissingController(format!(
                "{controller} (no {})",
                path.display()
            )));
        }
        fs::write(&*self.fs, &path, value)
    }

    fn apply_cpu(&self, r: &Resources) -> Result<(), CgroupError> {
        if let Some(shares) = r.cpu_shares.filter(|s| *s != 0) {
            let weight = shares_to_weight(shares).to_string();
            self.write_controller_file("cpu", "cpu.weight", &weight)?;
        }
        if let Some(line) = cpu_max(r.cpu_quota, r.cpu_period) {
            self.write_controller_file("cpu", "cpu.max", &line)?;
        }
        Ok(())
    }

    fn apply_memory(&self, r: &Resources) -> Result<(), CgroupError> {
        let limit = r.memory_limit.filter(|l| *l != 0);
        if let Some(limit) = limit {
            self.write_controller_file("memory", "memory.max", &v2_bytes(limit))?;
        }
        let Some(swap) = r.memory_swap.filter(|s| *s != 0) else {
            return Ok(());
        };
        let value = swap_max(limit, swap)?;
        if !self.fs.exists(&self.file("memory.swap.max")) {
            tracing::debug!(dir = %self.dir.display(), "no memory.swap.max; memory_swap ignored");
            return Ok(());
        }
        self.write_controller_file("memory", "memory.swap.max", &value)
    }
}

impl CgroupManager for V2Manager {
    fn create(&self) -> Result<(), CgroupError> {
        if !self.dir.starts_with(&self.mount) || self.dir == self.mount {
            return Err(CgroupError::Invalid(format!(
                "{} is not below the cgroup2 mount {}",
                self.dir.display(),
                self.mount.display()
            )));
        }
        fs::mkdir_all(&*self.fs, &self.dir)?;
        for parent in self.ancestors() {
            self.enable_in(&parent)?;
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        fs::write(&*self.fs, &self.file("cgroup.procs"), &pid.to_string())
    }

    fn apply(&self, resources: &Resources) -> Result<(), CgroupError> {
        self.apply_cpu(resources)?;
        self.apply_memory(resources)?;
        if let Some(limit) = resources.pids_limit {
            self.write_controller_file("pids", "pids.max", &crate::v1::pids_max(limit))?;
        }
        Ok(())
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let fs = &*self.fs;
        let cpu_stat = self.file("cpu.stat");
        let usage_usec = fs::keyed_u64(&cpu_stat, &fs::read(fs, &cpu_stat)?, "usage_usec")?;
        Ok(Stats {
            memory_usage: fs::read_u64_opt(fs, &self.file("memory.current"))?.unwrap_or(0),
            memory_max_usage: fs::read_u64_opt(fs, &self.file("memory.peak"))?,
            cpu_usage_ns: usage_usec.unwrap_or(0).saturating_mul(1000),
            pids_current: fs::read_u64_opt(fs, &self.file("pids.current"))?.unwrap_or(0),
            oom_kills: fs::read_keyed_opt(fs, &self.file("memory.events"), "oom_kill")?
                .unwrap_or(0),
        })
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        fs::procs_recursive(&*self.fs, &self.dir)
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        let kill_file = self.file("cgroup.kill");
        if signal == nix::sys::signal::Signal::SIGKILL as i32 && self.fs.exists(&kill_file) {
            return fs::write(&*self.fs, &kill_file, "1");
        }
        fs::kill_listed(signal, || self.pids())
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        fs::remove_tree(&*self.fs, &self.dir)
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::fake::{content, populate, FakeFs};

    /// Interface files of a v2 cgroup with cpu, memory and pids available.
    const FILES: &[(&str, &str)] = &[
        ("cgroup.controllers", "cpuset cpu io memory hugetlb pids"),
        ("cgroup.subtree_control", ""),
        ("cgroup.procs", ""),
        ("cgroup.kill", ""),
        (
            "cpu.stat",
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
        ),
        ("cpu.weight", "100"),
        ("cpu.max", "max 100000"),
        ("memory.max", "max"),
        ("memory.swap.max", "max"),
        ("memory.current", "65536"),
        ("memory.peak", "131072"),
        (
            "memory.events",
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n",
        ),
        ("pids.max", "max"),
        ("pids.current", "2"),
    ];

    struct Tree {
        _tmp: tempfile::TempDir,
        mount: PathBuf,
    }

    /// A fake unified mount whose root already enables `cpu` and has `own` below it.
    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let mount = tmp.path().join("unified");
        populate(&mount, FILES);
        std::fs::write(mount.join("cgroup.subtree_control"), "cpu memory pids").unwrap();
        populate(&mount.join("own"), FILES);
        std::fs::write(mount.join("own/cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(mount.join("own/cgroup.subtree_control"), "cpu").unwrap();
        Tree { _tmp: tmp, mount }
    }

    fn manager(t: &Tree, path: &str) -> V2Manager {
        V2Manager::new(Arc::new(FakeFs), t.mount.clone(), t.mount.join(path))
    }

    #[test]
    fn converts_shares_to_weight() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn formats_cpu_max_and_swap() {
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(
            cpu_max(Some(-1), Some(100_000)).as_deref(),
            Some("max 100000")
        );
        assert_eq!(cpu_max(None, Some(20_000)).as_deref(), Some("max 20000"));
        assert_eq!(cpu_max(Some(30_000), None).as_deref(), Some("30000"));
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(swap_max(Some(100), 300).unwrap(), "200");
        assert_eq!(swap_max(Some(100), -1).unwrap(), "max");
        assert!(swap_max(Some(100), 50).is_err());
        assert!(swap_max(None, 50).is_err());
    }

    #[test]
    fn create_enables_only_missing_offered_controllers() {
        let t = tree();
        let m = manager(&t, "own/pod/c1");
        let root_before = content(&t.mount.join("cgroup.subtree_control"));
        m.create().unwrap();
        assert!(t.mount.join("own/pod/c1/cgroup.procs").is_file());
        assert_eq!(
            content(&t.mount.join("cgroup.subtree_control")),
            root_before
        );
        assert_eq!(
            content(&t.mount.join("own/cgroup.subtree_control")),
            "+memory +pids"
        );
        // The fake's new `pod` has an empty `cgroup.controllers` (the kernel would list
        // what `own` enabled), so nothing is enabled there until something is offered.
        assert_eq!(content(&t.mount.join("own/pod/cgroup.subtree_control")), "");
        std::fs::write(t.mount.join("own/pod/cgroup.controllers"), "cpu memory").unwrap();
        m.create().unwrap();
        assert_eq!(
            content(&t.mount.join("own/pod/cgroup.subtree_control")),
            "+cpu +memory"
        );
        assert_eq!(
            m.ancestors(),
            vec![
                t.mount.clone(),
                t.mount.join("own"),
                t.mount.join("own/pod")
            ]
        );
    }

    #[test]
    fn create_with_no_controllers_offered_writes_nothing() {
        let t = tree();
        std::fs::write(t.mount.join("own/cgroup.controllers"), "hugetlb").unwrap();
        std::fs::write(t.mount.join("own/cgroup.subtree_control"), "").unwrap();
        let m = manager(&t, "own/c1");
        m.create().unwrap();
        assert_eq!(content(&t.mount.join("own/cgroup.subtree_control")), "");
    }

    #[test]
    fn refuses_the_mount_point() {
        let t = tree();
        let m = V2Manager::new(Arc::new(FakeFs), t.mount.clone(), t.mount.clone());
        assert!(m.create().is_err());
    }

    #[test]
    fn apply_writes_the_v2_files() {
        let t = tree();
        let m = manager(&t, "own/c1");
        m.create().unwrap();
        let r = Resources {
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(32 << 20),
            memory_swap: Some(48 << 20),
            pids_limit: Some(10),
        };
        m.apply(&r).unwrap();
        let file = |n: &str| content(&t.mount.join("own/c1").join(n));
        assert_eq!(file("cpu.weight"), "39");
        assert_eq!(file("cpu.max"), "50000 100000");
        assert_eq!(file("memory.max"), (32u64 << 20).to_string());
        assert_eq!(file("memory.swap.max"), (16u64 << 20).to_string());
        assert_eq!(file("pids.max"), "10");
        let unlimited = Resources {
            cpu_quota: Some(-1),
            cpu_period: Some(100_000),
            memory_limit: Some(-1),
            pids_limit: Some(0),
            ..Default::default()
        };
        m.apply(&unlimited).unwrap();
        assert_eq!(file("cpu.max"), "max 100000");
        assert_eq!(file("memory.max"), "max");
        assert_eq!(file("pids.max"), "max");
    }

    #[test]
    fn apply_without_controller_files_says_which() {
        let t = tree();
        let m = manager(&t, "own/c1");
        m.create().unwrap();
        std::fs::remove_file(t.mount.join("own/c1/pids.max")).unwrap();
        let err = m
            .apply(&Resources {
                pids_limit: Some(3),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(err, CgroupError::MissingController(_)), "{err}");
        assert!(err.to_string().contains("pids.max"), "{err}");
    }

    #[test]
    fn stats_read_the_v2_files() {
        let t = tree();
        let m = manager(&t, "own");
        assert_eq!(
            m.stats().unwrap(),
            Stats {
                memory_usage: 65536,
                memory_max_usage: Some(131_072),
                cpu_usage_ns: 2_500_000,
                pids_current: 2,
                oom_kills: 1,
            }
        );
        // Without memory/pids controllers (e.g. a hybrid host's unified mount).
        for name in [
            "memory.current",
            "memory.peak",
            "memory.events",
            "pids.current",
        ] {
            std::fs::remove_file(t.mount.join("own").join(name)).unwrap();
        }
        let stats = m.stats().unwrap();
        assert_eq!(stats.memory_max_usage, None);
        assert_eq!(
            (stats.memory_usage, stats.pids_current, stats.oom_kills),
            (0, 0, 0)
        );
        assert!(manager(&t, "gone").stats().is_err());
    }

    #[test]
    fn kill_all_uses_cgroup_kill() {
        let t = tree();
        let m = manager(&t, "own/c1");
        m.create().unwrap();
        m.add_task(31337).unwrap();
        assert_eq!(m.pids().unwrap(), vec![31337]);
        m.kill_all(9).unwrap();
        assert_eq!(content(&t.mount.join("own/c1/cgroup.kill")), "1");
    }

    #[test]
    fn kill_all_signals_without_cgroup_kill() {
        let t = tree();
        let m = manager(&t, "own/c1");
        m.create().unwrap();
        std::fs::remove_file(t.mount.join("own/c1/cgroup.kill")).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        m.add_task(child.id() as i32).unwrap();
        m.kill_all(9).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }

    #[test]
    fn destroy_removes_leaf_first() {
        let t = tree();
        let m = manager(&t, "own/c1");
        m.create().unwrap();
        FakeFs.mkdir(&t.mount.join("own/c1/sub")).unwrap();
        m.destroy().unwrap();
        assert!(!t.mount.join("own/c1").exists());
        assert!(t.mount.join("own").is_dir());
        m.destroy().unwrap();
    }
}
