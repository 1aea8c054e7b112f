//! Layout detection, path resolution and the choice of backend.
//!
//! Everything here works on the text of `/proc/self/mountinfo` and `/proc/self/cgroup`
//! (parsed into [`Mount`]s and [`ProcCgroup`]s), so it is unit-testable; only
//! [`layout`], [`open`] and [`open_unified`] read the real files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fs::{io_err, RealFs};
use crate::{v1, v2, CgroupError, CgroupManager, Layout};

/// Where the host mounts its cgroup hierarchies.
pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The v2 mount of hybrid hosts.
pub(crate) const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";
const MOUNTINFO: &str = "/proc/self/mountinfo";
const PROC_CGROUP: &str = "/proc/self/cgroup";

/// One line of `/proc/self/mountinfo`, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The root of the mount inside its file system (a sub-cgroup for bind mounts).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// `cgroup`, `cgroup2`, `tmpfs`, …
    pub fstype: String,
    /// The super-block options (`rw,cpu,cpuacct`, `rw,name=systemd`).
    pub super_options: Vec<String>,
}

impl Mount {
    /// Whether this is a v1 hierarchy carrying `controller` (`memory`, `name=systemd`).
    fn has_v1_controller(&self, controller: &str) -> bool {
        self.fstype == "cgroup" && self.super_options.iter().any(|o| o == controller)
    }
}

/// One line of `/proc/self/cgroup`: `ID:controllers:path` (`0::path` on v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcCgroup {
    /// The hierarchy ID (0 for the unified hierarchy).
    pub id: u32,
    /// Controllers of the hierarchy (empty for v2).
    pub controllers: Vec<String>,
    /// The process's cgroup, from the hierarchy root.
    pub path: String,
}

/// Parses `/proc/self/mountinfo`; lines that do not parse are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let root = unescape(fields.get(3)?);
    let mount_point = PathBuf::from(unescape(fields.get(4)?));
    let mut rest = after.split(' ');
    let fstype = rest.next()?.to_string();
    let _source = rest.next()?;
    let super_options = rest
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    Some(Mount {
        root,
        mount_point,
        fstype,
        super_options,
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/cgroup`; lines that do not parse are skipped.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?.trim().parse().ok()?;
            let controllers = parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let path = parts.next()?.to_string();
            Some(ProcCgroup {
                id,
                controllers,
                path,
            })
        })
        .collect()
}

/// The layout the mounts describe, `None` if no cgroup file system is mounted.
pub(crate) fn layout_of(mounts: &[Mount]) -> Option<Layout> {
    let at = |point: &str, fstype: &str| {
        mounts
            .iter()
            .any(|m| m.mount_point == Path::new(point) && m.fstype == fstype)
    };
    if at(CGROUP_ROOT, "cgroup2") {
        return Some(Layout::V2);
    }
    if mounts.iter().any(|m| m.fstype == "cgroup") {
        return Some(if at(HYBRID_UNIFIED, "cgroup2") {
            Layout::Hybrid
        } else {
            Layout::V1
        });
    }
    mounts
        .iter()
        .any(|m| m.fstype == "cgroup2")
        .then_some(Layout::V2)
}

/// The unified (v2) mount: `/sys/fs/cgroup`, else `/sys/fs/cgroup/unified`, else the
/// first cgroup2 mount.
pub(crate) fn unified_mount(mounts: &[Mount]) -> Option<&Mount> {
    let v2 = || mounts.iter().filter(|m| m.fstype == "cgroup2");
    v2().find(|m| m.mount_point == Path::new(CGROUP_ROOT))
        .or_else(|| v2().find(|m| m.mount_point == Path::new(HYBRID_UNIFIED)))
        .or_else(|| v2().next())
}

/// The components of a requested cgroup path; refuses `.`/`..` and a path that names
/// the process's own cgroup or the hierarchy root (nothing of ours to create there).
pub(crate) fn components(path: &str) -> Result<Vec<&str>, CgroupError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(CgroupError::Invalid(format!(
            "cgroup path {path:?} may not contain . or .."
        )));
    }
    if parts.is_empty() {
        return Err(CgroupError::Invalid(format!(
            "cgroup path {path:?} names an existing cgroup (the hierarchy root or our own); give a child"
        )));
    }
    Ok(parts)
}

/// The directory of cgroup `path` in the hierarchy mounted by `mount`, where the
/// process itself sits at `own` (from `/proc/self/cgroup`).
pub(crate) fn resolve(mount: &Mount, own: &str, path: &str) -> Result<PathBuf, CgroupError> {
    let parts = components(path)?;
    let base = if path.starts_with('/') { "/" } else { own };
    let mut dir = mount.mount_point.join(strip_mount_root(&mount.root, base));
    dir.extend(parts);
    Ok(dir)
}

/// `cgroup` (from the hierarchy root) relative to the mount's root; if the mount does not
/// contain it (e.g. a container's bind mount without a cgroup namespace), the path as is.
fn strip_mount_root(root: &str, cgroup: &str) -> PathBuf {
    let relative = Path::new(cgroup)
        .strip_prefix(root)
        .unwrap_or(Path::new(cgroup));
    relative.strip_prefix("/").unwrap_or(relative).to_path_buf()
}

/// The directory of `path` in each mounted v1 hierarchy carrying one of `controllers`,
/// per controller (co-mounted controllers share a directory). Controllers that are not
/// mounted are left out.
pub(crate) fn v1_dirs(
    mounts: &[Mount],
    procs: &[ProcCgroup],
    path: &str,
    controllers: &[&'static str],
) -> Result<Vec<(&'static str, PathBuf)>, CgroupError> {
    let mut dirs = Vec::new();
    for &controller in controllers {
        let Some(mount) = mounts.iter().find(|m| m.has_v1_controller(controller)) else {
            tracing::debug!(controller, "cgroup v1 controller not mounted");
            continue;
        };
        let own = procs
            .iter()
            .find(|p| p.id != 0 && p.controllers.iter().any(|c| c == controller))
            .ok_or_else(|| CgroupError::Parse {
                path: PathBuf::from(PROC_CGROUP),
                detail: format!("no line for the {controller} hierarchy"),
            })?;
        dirs.push((controller, resolve(mount, &own.path, path)?));
    }
    Ok(dirs)
}

/// The v2 mount point and the directory of `path` in it.
pub(crate) fn v2_dir(
    mounts: &[Mount],
    procs: &[ProcCgroup],
    path: &str,
) -> Result<(PathBuf, PathBuf), CgroupError> {
    let mount = unified_mount(mounts)
        .ok_or_else(|| CgroupError::MissingController("unified (cgroup2) hierarchy".into()))?;
    let own = procs
        .iter()
        .find(|p| p.id == 0 && p.controllers.is_empty())
        .ok_or_else(|| CgroupError::Parse {
            path: PathBuf::from(PROC_CGROUP),
            detail: "no 0:: line for the unified hierarchy".into(),
        })?;
    Ok((mount.mount_point.clone(), resolve(mount, &own.path, path)?))
}

fn read_host() -> Result<(Vec<Mount>, Vec<ProcCgroup>), CgroupError> {
    let mountinfo =
        std::fs::read_to_string(MOUNTINFO).map_err(|e| io_err("read", Path::new(MOUNTINFO), e))?;
    let proc_cgroup = std::fs::read_to_string(PROC_CGROUP)
        .map_err(|e| io_err("read", Path::new(PROC_CGROUP), e))?;
    Ok((parse_mountinfo(&mountinfo), parse_proc_cgroup(&proc_cgroup)))
}

/// The host's layout, from mountinfo, falling back to `statfs(/sys/fs/cgroup)`.
pub(crate) fn layout() -> Layout {
    let from_mounts = std::fs::read_to_string(MOUNTINFO)
        .ok()
        .and_then(|text| layout_of(&parse_mountinfo(&text)));
    from_mounts.unwrap_or_else(layout_from_statfs)
}

fn layout_from_statfs() -> Layout {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    let is_v2 = |p: &str| statfs(p).map(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
    match (is_v2(CGROUP_ROOT), is_v2(HYBRID_UNIFIED)) {
        (Ok(true), _) => Layout::V2,
        (_, Ok(true)) => Layout::Hybrid,
        _ => Layout::V1,
    }
}

/// Opens `path` with the backend the host's layout calls for.
pub(crate) fn open(path: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let (mounts, procs) = read_host()?;
    let layout = layout_of(&mounts).unwrap_or_else(layout_from_statfs);
    tracing::debug!(?layout, path, "opening cgroup");
    match layout {
        Layout::V2 => open_v2_with(&mounts, &procs, path),
        Layout::V1 | Layout::Hybrid => {
            let dirs = v1_dirs(&mounts, &procs, path, v1::CONTROLLERS)?;
            Ok(Box::new(v1::V1Manager::new(Arc::new(RealFs), dirs)?))
        }
    }
}

/// The directory of `path` in every mounted hierarchy: each v1 hierarchy (with
/// controllers or named, like `name=systemd`) and the unified one.
pub(crate) fn all_dirs(mounts: &[Mount], procs: &[ProcCgroup], path: &str) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2") {
        let own = if m.fstype == "cgroup2" {
            procs.iter().find(|p| p.id == 0 && p.controllers.is_empty())
        } else {
            procs.iter().find(|p| p.id != 0 && p.controllers.iter().any(|c| m.has_v1_controller(c)))
        };
        let Some(own) = own else { continue };
        let dir = resolve(m, &own.path, path)?;
        if !out.contains(&dir) {
            out.push(dir);
        }
    }
    Ok(out)
}

/// Removes `path` (and every cgroup below it) from every mounted hierarchy.
pub(crate) fn remove_everywhere(path: &str) -> Result<(), CgroupError> {
    let (mounts, procs) = read_host()?;
    for dir in all_dirs(&mounts, &procs, path)? {
        crate::fs::remove_tree(&RealFs, &dir)?;
    }
    Ok(())
}

/// Opens `path` in the unified hierarchy, wherever it is mounted.
pub(crate) fn open_unified(path: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let (mounts, procs) = read_host()?;
    open_v2_with(&mounts, &procs, path)
}

fn open_v2_with(
    mounts: &[Mount],
    procs: &[ProcCgroup],
    path: &str,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let (mount_point, dir) = v2_dir(mounts, procs, path)?;
    Ok(Box::new(v2::V2Manager::new(
        Arc::new(RealFs),
        mount_point,
        dir,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This sandbox's mountinfo (hybrid), trimmed.
    const HYBRID_MOUNTINFO: &str = "\
25 1 253:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const HYBRID_PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/a494
2:cpuacct:/
1:cpu:/
0::/
";

    /// A classic v1 host (co-mounted cpu,cpuacct) inside a docker-style bind mount.
    const V1_MOUNTINFO: &str = "\
700 600 0:50 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs rw,mode=755
701 700 0:26 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
702 700 0:29 /docker/abc /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory
703 700 0:31 /docker/abc /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
";

    const V1_PROC_CGROUP: &str = "\
12:pids:/docker/abc
4:cpu,cpuacct:/docker/abc/sub
3:memory:/docker/abc
";

    const V2_MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn parses_mountinfo() {
        let mounts = parse_mountinfo(V1_MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[1].root, "/docker/abc");
        assert_eq!(
            mounts[1].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(mounts[1].fstype, "cgroup");
        assert_eq!(mounts[1].super_options, vec!["rw", "cpu", "cpuacct"]);
        let escaped = parse_mountinfo("1 2 0:1 / /mnt/a\\040b rw - tmpfs x rw\n");
        assert_eq!(escaped[0].mount_point, PathBuf::from("/mnt/a b"));
        assert!(parse_mountinfo("garbage\n").is_empty());
    }

    #[test]
    fn parses_proc_cgroup() {
        let procs = parse_proc_cgroup(HYBRID_PROC_CGROUP);
        assert_eq!(procs.len(), 6);
        assert_eq!(procs[0].controllers, vec!["name=systemd"]);
        assert_eq!(procs[2].path, "/process_api/a494");
        assert_eq!(
            procs[5],
            ProcCgroup {
                id: 0,
                controllers: vec![],
                path: "/".into()
            }
        );
        let v1 = parse_proc_cgroup(V1_PROC_CGROUP);
        assert_eq!(v1[1].controllers, vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn detects_layouts() {
        assert_eq!(
            layout_of(&parse_mountinfo(HYBRID_MOUNTINFO)),
            Some(Layout::Hybrid)
        );
        assert_eq!(layout_of(&parse_mountinfo(V1_MOUNTINFO)), Some(Layout::V1));
        assert_eq!(layout_of(&parse_mountinfo(V2_MOUNTINFO)), Some(Layout::V2));
        assert_eq!(
            layout_of(&parse_mountinfo("25 1 253:0 / / rw - ext4 /dev/vda rw\n")),
            None
        );
    }

    #[test]
    fn all_dirs_covers_every_hierarchy_once() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        let procs = parse_proc_cgroup(HYBRID_PROC_CGROUP);
        let dirs = all_dirs(&mounts, &procs, "minik/pod1").unwrap();
        let want = [
            "/sys/fs/cgroup/cpu/minik/pod1",
            "/sys/fs/cgroup/cpuacct/minik/pod1",
            "/sys/fs/cgroup/memory/process_api/a494/minik/pod1",
            "/sys/fs/cgroup/pids/minik/pod1",
            "/sys/fs/cgroup/systemd/minik/pod1",
            "/sys/fs/cgroup/unified/minik/pod1",
        ];
        // cpuset has no line in this /proc/self/cgroup, so it is left out.
        assert_eq!(dirs, want.iter().map(PathBuf::from).collect::<Vec<_>>());
    }

    #[test]
    fn resolves_relative_paths_per_controller() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        let procs = parse_proc_cgroup(HYBRID_PROC_CGROUP);
        let dirs = v1_dirs(&mounts, &procs, "minik/pod1/c1", v1::CONTROLLERS).unwrap();
        let expect = [
            ("cpu", "/sys/fs/cgroup/cpu/minik/pod1/c1"),
            ("cpuacct", "/sys/fs/cgroup/cpuacct/minik/pod1/c1"),
            (
                "memory",
                "/sys/fs/cgroup/memory/process_api/a494/minik/pod1/c1",
            ),
            ("pids", "/sys/fs/cgroup/pids/minik/pod1/c1"),
        ];
        let expect: Vec<(&str, PathBuf)> =
            expect.iter().map(|(c, p)| (*c, PathBuf::from(p))).collect();
        assert_eq!(dirs, expect);
    }

    #[test]
    fn resolves_absolute_paths_from_the_root() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        let procs = parse_proc_cgroup(HYBRID_PROC_CGROUP);
        let dirs = v1_dirs(&mounts, &procs, "/minik/c1", &["memory"]).unwrap();
        assert_eq!(
            dirs,
            vec![("memory", PathBuf::from("/sys/fs/cgroup/memory/minik/c1"))]
        );
    }

    #[test]
    fn resolves_co_mounted_and_bind_mounted_hierarchies() {
        let mounts = parse_mountinfo(V1_MOUNTINFO);
        let procs = parse_proc_cgroup(V1_PROC_CGROUP);
        let dirs = v1_dirs(&mounts, &procs, "c1", v1::CONTROLLERS).unwrap();
        let cpu = PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/sub/c1");
        assert_eq!(dirs[0], ("cpu", cpu.clone()));
        assert_eq!(dirs[1], ("cpuacct", cpu));
        assert_eq!(
            dirs[2],
            ("memory", PathBuf::from("/sys/fs/cgroup/memory/c1"))
        );
        assert_eq!(dirs[3], ("pids", PathBuf::from("/sys/fs/cgroup/pids/c1")));
    }

    #[test]
    fn unmounted_controllers_are_left_out() {
        let mounts = parse_mountinfo(V1_MOUNTINFO);
        let procs = parse_proc_cgroup(V1_PROC_CGROUP);
        let dirs = v1_dirs(&mounts, &procs, "c1", &["memory", "blkio"]).unwrap();
        assert_eq!(dirs.len(), 1);
    }

    #[test]
    fn missing_proc_line_is_an_error() {
        let mounts = parse_mountinfo(V1_MOUNTINFO);
        let procs = parse_proc_cgroup("3:memory:/docker/abc\n");
        let err = v1_dirs(&mounts, &procs, "c1", &["pids"]).unwrap_err();
        assert!(err.to_string().contains("/proc/self/cgroup"), "{err}");
    }

    #[test]
    fn resolves_v2_paths() {
        let mounts = parse_mountinfo(V2_MOUNTINFO);
        let procs = parse_proc_cgroup("0::/system.slice/minik.service\n");
        let (mount, dir) = v2_dir(&mounts, &procs, "pod1/c1").unwrap();
        assert_eq!(mount, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(
            dir,
            PathBuf::from("/sys/fs/cgroup/system.slice/minik.service/pod1/c1")
        );
        let (_, abs) = v2_dir(&mounts, &procs, "/kubepods/c1").unwrap();
        assert_eq!(abs, PathBuf::from("/sys/fs/cgroup/kubepods/c1"));
        // On a hybrid host the 0:: line is relative to the unified mount.
        let hybrid = parse_mountinfo(HYBRID_MOUNTINFO);
        let procs = parse_proc_cgroup(HYBRID_PROC_CGROUP);
        let (mount, dir) = v2_dir(&hybrid, &procs, "t1").unwrap();
        assert_eq!(mount, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(dir, PathBuf::from("/sys/fs/cgroup/unified/t1"));
    }

    #[test]
    fn refuses_roots_and_dot_dot() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        let procs = parse_proc_cgroup(HYBRID_PROC_CGROUP);
        for bad in ["", "/", "//", "a/../b", "./a", ".."] {
            assert!(
                v1_dirs(&mounts, &procs, bad, v1::CONTROLLERS).is_err(),
                "{bad:?}"
            );
            assert!(v2_dir(&mounts, &procs, bad).is_err(), "{bad:?}");
        }
    }
}
