//! The cgroup layout the runtimes see, and the cgroup directories a benchmark leaves.
//!
//! This machine runs a v1/v2 *hybrid*: v1 controllers under `/sys/fs/cgroup/<ctrl>` and
//! an empty cgroup2 (no controllers) at `/sys/fs/cgroup/unified`. crun refuses it
//! ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"); it
//! accepts the same machine once that cgroup2 mount is gone. So the benchmark has two
//! layouts:
//! - [`Layout::Hybrid`]: the host's, as is (what minilet meets in production here);
//! - [`Layout::NoUnified`]: `/sys/fs/cgroup/unified` unmounted *in the benchmark's own
//!   private mount namespace* (the sandbox's), which crun needs. [`NoUnified`] does it and
//!   undoes it when dropped. It refuses unless this process's mount namespace is not
//!   PID 1's and the mount is not shared with any peer (so the unmount cannot propagate
//!   to the host). In place of the cgroup2 it mounts a small private tmpfs: with the
//!   mount gone, crun still creates a `unified/<path>` directory tree (and a
//!   `cgroup.procs` file) there, which would otherwise land in the host's
//!   `/sys/fs/cgroup` tmpfs, hidden under the host's own cgroup2 mount; in the private
//!   tmpfs it disappears with the unmount.
//!
//! Cgroup directories themselves are global (not per mount namespace): every runtime
//! creates the container's cgroup in every hierarchy and removes it at `delete`, but
//! leaves the parents of a nested `cgroupsPath`. [`remove_tree`] removes what a benchmark
//! created, by its exact relative path, under both places a relative `cgroupsPath` ends
//! up (runc and minik's cgroup library: under the runtime's own cgroup; crun: under each
//! hierarchy's root).

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Where the hybrid's cgroup2 is mounted.
pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// The cgroup layout a measurement ran under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The host's layout as is.
    Hybrid,
    /// The hybrid without its cgroup2 mount (v1 controllers only), in the private mount namespace.
    NoUnified,
    /// A host that is not a hybrid (pure v1 or v2), as is: the only layout there.
    AsIs,
}

impl Layout {
    /// How the tables name it.
    pub fn label(self) -> &'static str {
        match self {
            Layout::Hybrid => "hybrid (host as is)",
            Layout::NoUnified => "v1 only (unified unmounted)",
            Layout::AsIs => "host as is (not a hybrid)",
        }
    }

    /// A short name.
    pub fn short(self) -> &'static str {
        match self {
            Layout::Hybrid => "hybrid",
            Layout::NoUnified => "v1-only",
            Layout::AsIs => "host",
        }
    }
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// The root of the mount within its filesystem.
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The optional fields (`shared:N`, `master:N`, …).
    pub optional: Vec<String>,
    /// The filesystem type.
    pub fstype: String,
    /// The superblock options (for cgroup v1: the controllers).
    pub super_opts: Vec<String>,
}

/// Undoes the `\040`-style octal escapes of mountinfo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountInfo {
                root: unescape(pre.get(3)?),
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                optional: pre.get(6..).unwrap_or(&[]).iter().map(|s| s.to_string()).collect(),
                fstype: post.first()?.to_string(),
                super_opts: post.get(2).map(|o| o.split(',').map(String::from).collect()).unwrap_or_default(),
            })
        })
        .collect()
}

/// This process's mounts.
pub fn mounts() -> Result<Vec<MountInfo>> {
    Ok(parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").context("cannot read /proc/self/mountinfo")?))
}

/// The topmost mount at `path`, if something is mounted exactly there.
fn mount_at(all: &[MountInfo], path: &Path) -> Option<MountInfo> {
    all.iter().rev().find(|m| m.mount_point == path).cloned()
}

/// The layout this process sees now: hybrid when a cgroup2 is mounted at [`UNIFIED`]
/// next to v1 hierarchies; `None` for anything else (pure v1 or pure v2: one layout only).
pub fn current() -> Result<Option<Layout>> {
    let all = mounts()?;
    let v1 = all.iter().any(|m| m.fstype == "cgroup");
    let unified = mount_at(&all, Path::new(UNIFIED)).is_some_and(|m| m.fstype == "cgroup2");
    Ok(match (v1, unified) {
        (true, true) => Some(Layout::Hybrid),
        _ => None,
    })
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; cut at the last ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// The host's mount namespace as far as this process can tell: PID 1's, or, where
/// /proc/1/ns is not readable (in a container), that of the farthest ancestor whose
/// namespace link is readable (the sandbox's caller and its callers are outside it).
fn host_mount_ns() -> Option<(i32, PathBuf)> {
    if let Ok(l) = std::fs::read_link("/proc/1/ns/mnt") {
        return Some((1, l));
    }
    let mut best = None;
    let mut pid = parent_of(std::process::id() as i32)?;
    for _ in 0..64 {
        if pid <= 1 {
            break;
        }
        match std::fs::read_link(format!("/proc/{pid}/ns/mnt")) {
            Ok(l) => best = Some((pid, l)),
            Err(_) => break,
        }
        let Some(p) = parent_of(pid) else { break };
        pid = p;
    }
    best
}

/// Fails unless this process is in the sandbox, in a mount namespace other than the
/// host's (see [`host_mount_ns`]).
pub fn require_private_mount_ns() -> Result<()> {
    ensure!(std::env::var("MINIK_SANDBOX").as_deref() == Ok("inside"), "refusing to touch mounts outside the sandbox");
    let own = std::fs::read_link("/proc/self/ns/mnt").context("cannot read /proc/self/ns/mnt")?;
    let Some((pid, host)) = host_mount_ns() else {
        bail!("refusing to touch mounts: cannot read the mount namespace of PID 1 or of any ancestor to compare with")
    };
    ensure!(
        own != host,
        "refusing to touch mounts: this process is in the same mount namespace as PID {pid} ({}), the host's; run it through scripts/sandbox.sh",
        own.display()
    );
    Ok(())
}

/// The hybrid's cgroup2 mount replaced by a private tmpfs, in this process's private
/// mount namespace, for as long as it lives; dropping it mounts the cgroup2 back.
pub struct NoUnified {
    restored: bool,
}

impl NoUnified {
    /// Unmounts [`UNIFIED`] here (after the checks in the module docs).
    pub fn enter() -> Result<Self> {
        require_private_mount_ns()?;
        let all = mounts()?;
        let Some(m) = mount_at(&all, Path::new(UNIFIED)) else { bail!("nothing is mounted at {UNIFIED}") };
        ensure!(m.fstype == "cgroup2", "{UNIFIED} is a {} mount, not the hybrid's cgroup2", m.fstype);
        ensure!(
            !m.optional.iter().any(|o| o.starts_with("shared:")),
            "refusing to unmount {UNIFIED}: the mount is shared ({:?}), the unmount could propagate out of the sandbox",
            m.optional
        );
        umount2(UNIFIED, MntFlags::empty()).with_context(|| format!("cannot unmount {UNIFIED} (in the private mount namespace)"))?;
        let guard = NoUnified { restored: false };
        mount(Some("minik-bench-nocg2"), UNIFIED, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("size=64m,mode=755"))
            .with_context(|| format!("cannot mount a private tmpfs on {UNIFIED}"))?;
        ensure!(current()?.is_none(), "the layout is still hybrid after unmounting {UNIFIED}");
        Ok(guard)
    }

    /// Puts the cgroup2 back (also done on drop, where errors can only be printed).
    pub fn restore(mut self) -> Result<()> {
        self.restored = true;
        restore_unified()
    }
}

fn restore_unified() -> Result<()> {
    let all = mounts()?;
    if mount_at(&all, Path::new(UNIFIED)).is_some_and(|m| m.fstype == "tmpfs") {
        umount2(UNIFIED, MntFlags::empty()).with_context(|| format!("cannot unmount the private tmpfs on {UNIFIED}"))?;
    }
    mount(Some("cgroup2"), UNIFIED, Some("cgroup2"), MsFlags::MS_RELATIME, None::<&str>)
        .with_context(|| format!("cannot mount the cgroup2 back on {UNIFIED}"))?;
    ensure!(current()? == Some(Layout::Hybrid), "the layout is not hybrid again after remounting {UNIFIED}");
    Ok(())
}

impl Drop for NoUnified {
    fn drop(&mut self) {
        if !self.restored {
            if let Err(e) = restore_unified() {
                eprintln!("warning: {e:#} (only this sandbox's mount namespace is affected)");
            }
        }
    }
}

/// The directories that stand for cgroup `rel` (a relative cgroupsPath) in every mounted
/// hierarchy: under the hierarchy's root and under this process's own cgroup in it.
pub fn candidates(rel: &str) -> Result<Vec<PathBuf>> {
    let own = std::fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
    // "4:memory:/a/b" → (["memory"], "/a/b"); "0::/x" → ([], "/x") for the cgroup2.
    let own: Vec<(Vec<String>, String)> = own
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let ctrls = if ctrls.is_empty() { Vec::new() } else { ctrls.split(',').map(String::from).collect() };
            Some((ctrls, path.to_string()))
        })
        .collect();
    let mut out = Vec::new();
    for m in mounts()? {
        let own_path = match m.fstype.as_str() {
            "cgroup2" => own.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| p.clone()),
            "cgroup" => own
                .iter()
                .find(|(c, _)| !c.is_empty() && c.iter().all(|c| m.super_opts.contains(c)))
                .map(|(_, p)| p.clone()),
            _ => continue,
        };
        out.push(m.mount_point.join(rel));
        if let Some(p) = own_path {
            // The own path is relative to the hierarchy's root; the mount may show a subtree.
            let inner = p.strip_prefix(m.root.as_str()).unwrap_or(&p).trim_start_matches('/').to_string();
            if !inner.is_empty() {
                out.push(m.mount_point.join(inner).join(rel));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What [`remove_tree`] found.
#[derive(Debug, Default)]
pub struct Removed {
    /// Directories removed.
    pub dirs: Vec<PathBuf>,
    /// Directories below the top one (containers' cgroups a runtime should have removed).
    pub leaked: Vec<PathBuf>,
    /// Directories that could not be removed (a process still in them).
    pub stuck: Vec<(PathBuf, String)>,
}

/// Removes cgroup `rel` (and what is below it) from every hierarchy, deepest first;
/// cgroup directories are removed with rmdir only (they hold no regular files).
pub fn remove_tree(rel: &str) -> Result<Removed> {
    let mut r = Removed::default();
    for top in candidates(rel)? {
        if !top.is_dir() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&top, 0, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            match std::fs::remove_dir(&d) {
                Ok(()) => {
                    if d != top {
                        r.leaked.push(d.clone());
                    }
                    r.dirs.push(d);
                }
                Err(e) => r.stuck.push((d, e.to_string())),
            }
        }
    }
    Ok(r)
}

fn collect_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if depth >= 8 {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), depth + 1, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /tmp/a\\040b rw - tmpfs x rw";

    #[test]
    fn parses_mountinfo() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 5);
        assert_eq!(m[1].super_opts, vec!["rw", "memory"]);
        assert_eq!(m[2].optional, vec!["shared:9"]);
        assert_eq!(m[3].fstype, "cgroup2");
        assert_eq!(m[4].mount_point, PathBuf::from("/tmp/a b"));
        assert_eq!(mount_at(&m, Path::new(UNIFIED)).map(|m| m.fstype), Some("cgroup2".into()));
    }
}
