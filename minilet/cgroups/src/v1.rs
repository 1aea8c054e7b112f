//! The cgroup v1 backend: one directory per hierarchy (cpu, cpuacct, memory, pids;
//! co-mounted controllers such as `cpu,cpuacct` share one).
//!
//! minik does not use the cpuset, freezer, devices, blkio or named (`name=systemd`)
//! hierarchies, so it creates nothing there; in particular it never has to copy
//! `cpuset.cpus`/`cpuset.mems` from a parent.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fs::{self, Fs};
use crate::{CgroupError, CgroupManager, Resources, Stats};

/// The v1 controllers minik places its cgroups in.
pub(crate) const CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

/// A cgroup in the v1 hierarchies.
#[derive(Debug)]
pub(crate) struct V1Manager {
    fs: Arc<dyn Fs>,
    /// Directory per controller; co-mounted controllers repeat a directory.
    dirs: Vec<(&'static str, PathBuf)>,
}

impl V1Manager {
    /// A manager over `dirs` (controller → directory); at least one is needed.
    pub(crate) fn new(
        fs: Arc<dyn Fs>,
        dirs: Vec<(&'static str, PathBuf)>,
    ) -> Result<Self, CgroupError> {
        if dirs.is_empty() {
            return Err(CgroupError::MissingController(CONTROLLERS.join(", ")));
        }
        Ok(Self { fs, dirs })
    }

    /// The directory of `controller`, if that hierarchy is mounted.
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// The directory of `controller`, or [`CgroupError::MissingController`].
    fn need(&self, controller: &str) -> Result<&Path, CgroupError> {
        self.dir(controller)
            .ok_or_else(|| CgroupError::MissingController(controller.into()))
    }

    /// Each hierarchy's directory once.
    fn unique_dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for (_, dir) in &self.dirs {
            if !out.contains(dir) {
                out.push(dir.clone());
            }
        }
        out
    }

    fn apply_cpu(&self, r: &Resources) -> Result<(), CgroupError> {
        if r.cpu_shares.is_none() && r.cpu_quota.is_none() && r.cpu_period.is_none() {
            return Ok(());
        }
        let dir = self.need("cpu")?;
        if let Some(shares) = r.cpu_shares.filter(|s| *s != 0) {
            fs::write(&*self.fs, &dir.join("cpu.shares"), &shares.to_string())?;
        }
        let quota = r.cpu_quota.map(|q| if q > 0 { q } else { -1 });
        let period_file = dir.join("cpu.cfs_period_us");
        let quota_file = dir.join("cpu.cfs_quota_us");
        match (r.cpu_period, quota) {
            (Some(period), Some(quota)) => {
                // The kernel checks quota against the period; if the new period does not
                // fit the old quota, set the quota first.
                if let Err(e) = fs::write(&*self.fs, &period_file, &period.to_string()) {
                    if !is_einval(&e) {
                        return Err(e);
                    }
                    fs::write(&*self.fs, &quota_file, &quota.to_string())?;
                    return fs::write(&*self.fs, &period_file, &period.to_string());
                }
                fs::write(&*self.fs, &quota_file, &quota.to_string())
            }
            (Some(period), None) => fs::write(&*self.fs, &period_file, &period.to_string()),
            (None, Some(quota)) => fs::write(&*self.fs, &quota_file, &quota.to_string()),
            (None, None) => Ok(()),
        }
    }

    fn apply_memory(&self, r: &Resources) -> Result<(), CgroupError> {
        let limit = r.memory_limit.filter(|l| *l != 0).map(v1_bytes);
        let swap = r.memory_swap.filter(|s| *s != 0).map(v1_bytes);
        if limit.is_none() && swap.is_none() {
            return Ok(());
        }
        let dir = self.need("memory")?;
        let limit_file = dir.join("memory.limit_in_bytes");
        let memsw_file = dir.join("memory.memsw.limit_in_bytes");
        let swap = match swap {
            Some(_) if !self.fs.exists(&memsw_file) => {
                tracing::debug!(path = %memsw_file.display(), "no swap accounting; memory_swap ignored");
                None
            }
            other => other,
        };
        let Some(swap) = swap else {
            return limit.map_or(Ok(()), |l| {
                fs::write(&*self.fs, &limit_file, &l.to_string())
            });
        };
        // memory+swap may never be below memory: raise memsw first, lower it last.
        let current = fs::read_u64_opt(&*self.fs, &memsw_file)?.unwrap_or(u64::MAX);
        let raising = swap < 0 || u64::try_from(swap).map_or(true, |s| s > current);
        if raising {
            fs::write(&*self.fs, &memsw_file, &swap.to_string())?;
        }
        if let Some(limit) = limit {
            fs::write(&*self.fs, &limit_file, &limit.to_string())?;
        }
        if !raising {
            fs::write(&*self.fs, &memsw_file, &swap.to_string())?;
        }
        Ok(())
    }

    fn apply_pids(&self, r: &Resources) -> Result<(), CgroupError> {
        let Some(limit) = r.pids_limit else {
            return Ok(());
        };
        let dir = self.need("pids")?;
        fs::write(&*self.fs, &dir.join("pids.max"), &pids_max(limit))
    }

    fn memory_stats(&self, stats: &mut Stats) -> Result<(), CgroupError> {
        let Some(dir) = self.dir("memory") else {
            return Ok(());
        };
        stats.memory_usage = fs::read_u64(&*self.fs, &dir.join("memory.usage_in_bytes"))?;
        stats.memory_max_usage =
            fs::read_u64_opt(&*self.fs, &dir.join("memory.max_usage_in_bytes"))?;
        let oom_control = dir.join("memory.oom_control");
        stats.oom_kills = fs::read_keyed_opt(&*self.fs, &oom_control, "oom_kill")?.unwrap_or(0);
        Ok(())
    }
}

/// A v1 byte limit: negative means unlimited (`-1`).
fn v1_bytes(value: i64) -> i64 {
    if value < 0 {
        -1
    } else {
        value
    }
}

/// The `pids.max` value: a positive limit, else `max`.
pub(crate) fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

fn is_einval(e: &CgroupError) -> bool {
    matches!(e, CgroupError::Io { source, .. }
        if source.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32)
            || source.kind() == io::ErrorKind::InvalidInput)
}

impl CgroupManager for V1Manager {
    fn create(&self) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            fs::mkdir_all(&*self.fs, &dir)?;
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            fs::write(&*self.fs, &dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn apply(&self, resources: &Resources) -> Result<(), CgroupError> {
        self.apply_cpu(resources)?;
        self.apply_memory(resources)?;
        self.apply_pids(resources)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut stats = Stats::default();
        self.memory_stats(&mut stats)?;
        if let Some(dir) = self.dir("cpuacct") {
            stats.cpu_usage_ns = fs::read_u64(&*self.fs, &dir.join("cpuacct.usage"))?;
        }
        if let Some(dir) = self.dir("pids") {
            stats.pids_current = fs::read_u64(&*self.fs, &dir.join("pids.current"))?;
        }
        Ok(stats)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for dir in self.unique_dirs() {
            pids.extend(fs::procs_recursive(&*self.fs, &dir)?);
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        fs::kill_listed(signal, || self.pids())
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            fs::remove_tree(&*self.fs, &dir)?;
        }
        Ok(())
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.unique_dirs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::fake::{content, populate, FakeFs};

    const CPU_FILES: &[(&str, &str)] = &[
        ("cgroup.procs", ""),
        ("cpu.shares", "1024"),
        ("cpu.cfs_quota_us", "-1"),
        ("cpu.cfs_period_us", "100000"),
        ("cpuacct.usage", "123456789"),
    ];
    const MEMORY_FILES: &[(&str, &str)] = &[
        ("cgroup.procs", ""),
        ("memory.limit_in_bytes", "9223372036854771712"),
        ("memory.memsw.limit_in_bytes", "9223372036854771712"),
        ("memory.usage_in_bytes", "4096"),
        ("memory.max_usage_in_bytes", "8192"),
        (
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        ),
    ];
    const PIDS_FILES: &[(&str, &str)] = &[
        ("cgroup.procs", ""),
        ("pids.max", "max"),
        ("pids.current", "3"),
    ];

    /// A fake v1 host: cpu,cpuacct co-mounted, memory nested under `parent`, pids.
    struct Tree {
        _tmp: tempfile::TempDir,
        root: PathBuf,
    }

    fn tree(memsw: bool) -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        populate(&root.join("cpu,cpuacct"), CPU_FILES);
        let memory: Vec<_> = MEMORY_FILES
            .iter()
            .copied()
            .filter(|(n, _)| memsw || !n.contains("memsw"))
            .collect();
        populate(&root.join("memory/parent"), &memory);
        populate(&root.join("pids"), PIDS_FILES);
        Tree { _tmp: tmp, root }
    }

    fn manager(t: &Tree) -> V1Manager {
        let cpu = t.root.join("cpu,cpuacct/c1");
        let dirs = vec![
            ("cpu", cpu.clone()),
            ("cpuacct", cpu),
            ("memory", t.root.join("memory/parent/c1")),
            ("pids", t.root.join("pids/c1")),
        ];
        V1Manager::new(Arc::new(FakeFs), dirs).unwrap()
    }

    /// Puts realistic values in the new cgroup's (empty) files.
    fn seed(m: &V1Manager) {
        for (controller, files) in [
            ("cpu", CPU_FILES),
            ("memory", MEMORY_FILES),
            ("pids", PIDS_FILES),
        ] {
            let dir = m.dir(controller).unwrap();
            for (name, value) in files {
                if dir.join(name).exists() {
                    std::fs::write(dir.join(name), value).unwrap();
                }
            }
        }
    }

    #[test]
    fn create_makes_each_hierarchy_once() {
        let t = tree(true);
        let m = manager(&t);
        assert_eq!(m.paths().len(), 3);
        m.create().unwrap();
        for dir in m.paths() {
            assert!(dir.join("cgroup.procs").is_file(), "{}", dir.display());
        }
        m.create().unwrap();
    }

    #[test]
    fn apply_writes_the_v1_files() {
        let t = tree(true);
        let m = manager(&t);
        m.create().unwrap();
        seed(&m);
        let r = Resources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(32 << 20),
            memory_swap: Some(64 << 20),
            pids_limit: Some(10),
        };
        m.apply(&r).unwrap();
        let cpu = m.dir("cpu").unwrap();
        assert_eq!(content(&cpu.join("cpu.shares")), "512");
        assert_eq!(content(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(content(&cpu.join("cpu.cfs_period_us")), "100000");
        let mem = m.dir("memory").unwrap();
        assert_eq!(
            content(&mem.join("memory.limit_in_bytes")),
            (32u64 << 20).to_string()
        );
        assert_eq!(
            content(&mem.join("memory.memsw.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        assert_eq!(content(&m.dir("pids").unwrap().join("pids.max")), "10");

        let unlimited = Resources {
            cpu_quota: Some(-1),
            pids_limit: Some(-1),
            ..Default::default()
        };
        m.apply(&unlimited).unwrap();
        assert_eq!(content(&cpu.join("cpu.cfs_quota_us")), "-1");
        assert_eq!(content(&m.dir("pids").unwrap().join("pids.max")), "max");
    }

    #[test]
    fn memsw_is_skipped_without_swap_accounting() {
        let t = tree(false);
        let m = manager(&t);
        m.create().unwrap();
        seed(&m);
        let r = Resources {
            memory_limit: Some(1 << 20),
            memory_swap: Some(2 << 20),
            ..Default::default()
        };
        m.apply(&r).unwrap();
        let mem = m.dir("memory").unwrap();
        assert_eq!(
            content(&mem.join("memory.limit_in_bytes")),
            (1u64 << 20).to_string()
        );
        assert!(!mem.join("memory.memsw.limit_in_bytes").exists());
    }

    #[test]
    fn empty_resources_write_nothing() {
        let t = tree(true);
        let m = manager(&t);
        m.create().unwrap();
        m.apply(&Resources::default()).unwrap();
        assert_eq!(content(&m.dir("cpu").unwrap().join("cpu.shares")), "");
    }

    #[test]
    fn missing_hierarchy_is_reported() {
        let t = tree(true);
        let dirs = vec![("memory", t.root.join("memory/parent/c1"))];
        let m = V1Manager::new(Arc::new(FakeFs), dirs).unwrap();
        m.create().unwrap();
        let err = m
            .apply(&Resources {
                pids_limit: Some(5),
                ..Default::default()
            })
            .unwrap_err();
        assert!(
            matches!(err, CgroupError::MissingController(ref c) if c == "pids"),
            "{err}"
        );
        assert!(V1Manager::new(Arc::new(FakeFs), vec![]).is_err());
    }

    #[test]
    fn write_errors_name_the_file() {
        let t = tree(true);
        let m = manager(&t);
        // Not created: every file is missing.
        let err = m
            .apply(&Resources {
                memory_limit: Some(1),
                ..Default::default()
            })
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("write "), "{text}");
        assert!(
            text.contains("memory/parent/c1/memory.limit_in_bytes"),
            "{text}"
        );
    }

    #[test]
    fn stats_read_the_v1_files() {
        let t = tree(true);
        let m = manager(&t);
        m.create().unwrap();
        seed(&m);
        let stats = m.stats().unwrap();
        assert_eq!(
            stats,
            Stats {
                memory_usage: 4096,
                memory_max_usage: Some(8192),
                cpu_usage_ns: 123_456_789,
                pids_current: 3,
                oom_kills: 2,
            }
        );
        // Kernels before 4.13 have no oom_kill line.
        let oom = m.dir("memory").unwrap().join("memory.oom_control");
        std::fs::write(oom, "oom_kill_disable 0\nunder_oom 0\n").unwrap();
        assert_eq!(m.stats().unwrap().oom_kills, 0);
    }

    #[test]
    fn add_task_pids_and_destroy() {
        let t = tree(true);
        let m = manager(&t);
        m.create().unwrap();
        m.add_task(4242).unwrap();
        for dir in m.paths() {
            assert_eq!(content(&dir.join("cgroup.procs")), "4242");
        }
        let nested = m.dir("memory").unwrap().join("sub");
        FakeFs.mkdir(&nested).unwrap();
        std::fs::write(nested.join("cgroup.procs"), "77\n").unwrap();
        assert_eq!(m.pids().unwrap(), vec![77, 4242]);
        m.destroy().unwrap();
        for dir in m.paths() {
            assert!(!dir.exists(), "{}", dir.display());
        }
        assert!(t.root.join("memory/parent").is_dir());
        m.destroy().unwrap();
    }
}
