//! The cluster's own cgroup tree: `minik-<id>/` next to the keeper's cgroup, in every
//! hierarchy (cgroup v1, v2 or hybrid), with one child per node (`node1`, …) and one for
//! the control plane. Every process the keeper starts is moved into its group before it
//! runs (in `pre_exec`), so the pods minilet starts land below it too (minilet puts pods
//! under its own cgroup). That gives `down` and `minik kill NODE` an exact list of a
//! cluster's or a node's processes, and lets `down` remove every cgroup the cluster made.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The cluster's cgroup directories, one per hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterCgroups {
    /// `<mount>/<keeper's cgroup>/minik-<id>` in each hierarchy.
    pub dirs: Vec<PathBuf>,
}

/// A mounted hierarchy and the calling process's cgroup in it.
#[derive(Debug, Clone, PartialEq)]
struct Hierarchy {
    /// The process's own cgroup directory in this hierarchy.
    own: PathBuf,
    /// Whether it is the v1 cpuset hierarchy (new groups need cpus and mems).
    cpuset: bool,
}

/// The name of a cluster's cgroup: stable for a state dir, distinct between clusters.
pub fn group_name(state_dir: &Path) -> String {
    // FNV-1a: tiny, stable across builds (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in state_dir.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("minik-{h:08x}")
}

fn hierarchies(cgroup: &str, mountinfo: &str) -> Vec<Hierarchy> {
    struct Mount<'a> {
        root: &'a str,
        point: &'a str,
        v2: bool,
        opts: Vec<&'a str>,
    }
    let mounts: Vec<Mount> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let fstype = *post.first()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(Mount {
                root: pre.get(3)?,
                point: pre.get(4)?,
                v2: fstype == "cgroup2",
                opts: post.get(2).map(|o| o.split(',').collect()).unwrap_or_default(),
            })
        })
        .collect();
    let mut out = Vec::new();
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let mount = if ctrls.is_empty() {
            mounts.iter().find(|m| m.v2)
        } else {
            let want: Vec<&str> = ctrls.split(',').collect();
            mounts.iter().find(|m| !m.v2 && want.iter().all(|c| m.opts.contains(c)))
        };
        let Some(m) = mount else { continue };
        let rel = if m.root == "/" { path } else { path.strip_prefix(m.root).unwrap_or(path) };
        let rel = rel.trim_start_matches('/');
        let own = if rel.is_empty() { PathBuf::from(m.point) } else { Path::new(m.point).join(rel) };
        if !out.iter().any(|h: &Hierarchy| h.own == own) {
            out.push(Hierarchy { own, cpuset: ctrls.split(',').any(|c| c == "cpuset") });
        }
    }
    out
}

/// Gives a new v1 cpuset group its parent's cpus and mems (it starts empty and refuses
/// processes otherwise).
fn inherit_cpuset(dir: &Path) {
    let Some(parent) = dir.parent() else { return };
    for key in ["cpuset.cpus", "cpuset.mems"] {
        let mine = std::fs::read_to_string(dir.join(key)).unwrap_or_default();
        if mine.trim().is_empty() {
            if let Ok(v) = std::fs::read_to_string(parent.join(key)) {
                let _ = std::fs::write(dir.join(key), v.trim());
            }
        }
    }
}

fn is_cpuset(dir: &Path) -> bool {
    dir.join("cpuset.cpus").exists()
}

/// Opened `cgroup.procs` files of one group; a child writes `0` to each to join it.
pub struct Placement {
    files: Vec<File>,
}

impl Placement {
    /// Makes `cmd` join the group before it runs its program. The command keeps the files
    /// open until it is dropped, so they are valid in the child.
    pub fn apply(self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let files = self.files;
        // SAFETY: the closure only calls write(2) on descriptors it owns (inherited across
        // fork, closed at exec by O_CLOEXEC); it allocates nothing, which keeps it
        // async-signal-safe as pre_exec requires.
        unsafe {
            cmd.pre_exec(move || {
                for f in &files {
                    // Writing 0 moves the writing process (v1 and v2); a hierarchy that
                    // refuses is skipped rather than failing the whole process.
                    let _ = libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1);
                }
                Ok(())
            });
        }
    }
}

impl ClusterCgroups {
    /// Creates `minik-<id>` in every hierarchy of the calling process that lets it
    /// (a hierarchy that does not is left out, with a warning).
    pub fn create(name: &str) -> Self {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut dirs = Vec::new();
        for h in hierarchies(&cgroup, &mountinfo) {
            let dir = h.own.join(name);
            match std::fs::create_dir_all(&dir) {
                Ok(()) => {
                    if h.cpuset {
                        inherit_cpuset(&dir);
                    }
                    dirs.push(dir);
                }
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot create the cluster's cgroup here; skipping this hierarchy"),
            }
        }
        ClusterCgroups { dirs }
    }

    /// Creates the child group `sub` (e.g. `node1`) and opens it for [`Placement::apply`].
    pub fn group(&self, sub: &str) -> anyhow::Result<Placement> {
        let mut files = Vec::new();
        for base in &self.dirs {
            let dir = base.join(sub);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create cgroup {}", dir.display()))?;
            if is_cpuset(&dir) {
                inherit_cpuset(&dir);
            }
            let procs = dir.join("cgroup.procs");
            let f = File::options().write(true).open(&procs).with_context(|| format!("cannot open {}", procs.display()))?;
            files.push(f);
        }
        Ok(Placement { files })
    }

    /// Every process in the tree (or in the child group `sub`), from every hierarchy.
    pub fn pids(&self, sub: Option<&str>) -> BTreeSet<i32> {
        let mut out = BTreeSet::new();
        for base in &self.dirs {
            let top = match sub {
                Some(s) => base.join(s),
                None => base.clone(),
            };
            collect_pids(&top, &mut out);
        }
        out
    }

    /// SIGKILLs every process in the tree (or in `sub`) until none is left (bounded);
    /// returns how many are still there.
    pub fn kill_all(&self, sub: Option<&str>, limit: Duration) -> usize {
        let end = Instant::now() + limit;
        loop {
            let pids = self.pids(sub);
            if pids.is_empty() || Instant::now() >= end {
                return pids.len();
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Removes every group of the tree, deepest first (retrying while the last processes
    /// exit); returns the directories that could not be removed.
    pub fn remove(&self, limit: Duration) -> Vec<PathBuf> {
        let end = Instant::now() + limit;
        loop {
            let mut left = Vec::new();
            for base in &self.dirs {
                remove_tree(base, &mut left);
            }
            if left.is_empty() || Instant::now() >= end {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves the tree's location (for `down` and `kill`).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Loads it; an absent file is an empty tree.
    pub fn load(path: &Path) -> Self {
        std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }
}

fn collect_pids(dir: &Path, out: &mut BTreeSet<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

fn remove_tree(dir: &Path, left: &mut Vec<PathBuf>) {
    if !dir.exists() {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path(), left);
            }
        }
    }
    if std::fs::remove_dir(dir).is_err() {
        left.push(dir.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_each_hierarchy_of_a_hybrid_host() {
        let cg = "4:cpu:/a\n3:cpuset:/\n1:name=systemd:/user.slice\n0::/b\n";
        let hs = hierarchies(cg, HYBRID_MOUNTS);
        let owns: Vec<String> = hs.iter().map(|h| h.own.display().to_string()).collect();
        assert_eq!(
            owns,
            vec!["/sys/fs/cgroup/cpu/a", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/systemd/user.slice", "/sys/fs/cgroup/unified/b"]
        );
        assert!(hs[1].cpuset && !hs[0].cpuset);
    }

    #[test]
    fn a_mount_of_a_subtree_strips_its_root() {
        let mounts = "30 23 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let hs = hierarchies("0::/docker/abc/x\n", mounts);
        assert_eq!(hs[0].own, PathBuf::from("/sys/fs/cgroup/x"));
    }

    #[test]
    fn group_names_differ_per_state_dir() {
        let a = group_name(Path::new("/var/lib/minik/cluster"));
        assert_eq!(a, group_name(Path::new("/var/lib/minik/cluster")));
        assert_ne!(a, group_name(Path::new("/tmp/other")));
        assert!(a.starts_with("minik-") && a.len() == 14);
    }
}
