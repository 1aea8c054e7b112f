//! The `cgroup` mount type: on a v2 host a `cgroup2` mount; on v1 and hybrid hosts a
//! tmpfs with one mount per host hierarchy (as runc lays it out). Each hierarchy mount
//! falls back to a bind mount of the host's directory if the kernel refuses it.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::paths::remount_readonly;
use crate::error::{Error, Result};
use crate::syscall::Syscall;

/// One cgroup filesystem mounted on the host under `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where the host mounts it.
    pub mount_point: PathBuf,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// The controllers (v1 super options such as `cpu` or `name=systemd`).
    pub options: String,
}

/// Parses `/proc/self/mountinfo` text for the cgroup mounts under `/sys/fs/cgroup`.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut r = right.split(' ');
        let (Some(fstype), Some(_source), Some(super_opts)) = (r.next(), r.next(), r.next()) else {
            continue;
        };
        if !(fstype == "cgroup" || fstype == "cgroup2")
            || !mount_point.starts_with("/sys/fs/cgroup")
        {
            continue;
        }
        let options = super_opts
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && (fstype == "cgroup" || o.is_empty()))
            .collect::<Vec<_>>()
            .join(",");
        out.push(CgroupMount {
            mount_point: mount_point.into(),
            fstype: fstype.into(),
            options,
        });
    }
    out
}

/// Reads the host's cgroup mounts.
pub fn host_mounts() -> Vec<CgroupMount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

/// Mounts cgroup filesystems at `dest` with `flags` (nosuid, ro, …).
pub fn mount(dest: &Path, flags: MsFlags, host: &[CgroupMount], sys: &dyn Syscall) -> Result<()> {
    let err = |what: String| move |e| Error::sys(what, e);
    sys.mkdir_all(dest, 0o755)
        .map_err(err(format!("mkdir {}", dest.display())))?;
    let root = Path::new("/sys/fs/cgroup");
    if host
        .iter()
        .any(|m| m.mount_point == root && m.fstype == "cgroup2")
    {
        let r = sys.mount(
            Some(Path::new("cgroup2")),
            dest,
            Some("cgroup2"),
            flags,
            None,
        );
        if r.is_err() {
            bind(root, dest, flags, sys)?;
        }
        return Ok(());
    }
    let rw = flags & !MsFlags::MS_RDONLY;
    sys.mount(
        Some(Path::new("tmpfs")),
        dest,
        Some("tmpfs"),
        rw,
        Some("mode=755"),
    )
    .map_err(err(format!("mount tmpfs on {}", dest.display())))?;
    for m in host.iter().filter(|m| m.mount_point != root) {
        let Ok(name) = m.mount_point.strip_prefix(root) else {
            continue;
        };
        let target = dest.join(name);
        sys.mkdir_all(&target, 0o755)
            .map_err(err(format!("mkdir {}", target.display())))?;
        let data = (!m.options.is_empty()).then_some(m.options.as_str());
        let source = Path::new(m.fstype.as_str());
        if sys
            .mount(Some(source), &target, Some(&m.fstype), flags, data)
            .is_err()
        {
            bind(&m.mount_point, &target, flags, sys)?;
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        sys.mount(
            None,
            dest,
            None,
            MsFlags::MS_REMOUNT | flags,
            Some("mode=755"),
        )
        .map_err(err(format!("remount {} read-only", dest.display())))?;
    }
    Ok(())
}

fn bind(source: &Path, target: &Path, flags: MsFlags, sys: &dyn Syscall) -> Result<()> {
    sys.mount(
        Some(source),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(|e| {
        Error::sys(
            format!("bind {} on {}", source.display(), target.display()),
            e,
        )
    })?;
    if flags.contains(MsFlags::MS_RDONLY) {
        remount_readonly(target, sys)
            .map_err(|e| Error::sys(format!("remount {} read-only", target.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{Call, RecordingSyscall};

    const HYBRID: &str = "\
25 1 0:23 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
26 25 0:24 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:25 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
28 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
29 1 0:27 / /proc rw - proc proc rw";

    #[test]
    fn parses_hybrid_layout() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].options, "cpu");
        assert_eq!(m[1].options, "name=systemd");
        assert_eq!(m[2].fstype, "cgroup2");
        assert_eq!(m[2].options, "");
    }

    #[test]
    fn v1_gets_tmpfs_and_hierarchies() {
        let sys = RecordingSyscall::new();
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_RDONLY;
        mount(
            Path::new("/r/sys/fs/cgroup"),
            flags,
            &parse_mountinfo(HYBRID),
            &sys,
        )
        .unwrap();
        let mounts = sys.mounts();
        assert_eq!(mounts.len(), 5);
        assert!(
            matches!(&mounts[0], Call::Mount { fstype: Some(t), flags, .. }
            if t == "tmpfs" && !flags.contains(MsFlags::MS_RDONLY))
        );
        assert!(
            matches!(&mounts[1], Call::Mount { target, data: Some(d), .. }
            if target == Path::new("/r/sys/fs/cgroup/cpu") && d == "cpu")
        );
        assert!(matches!(&mounts[4], Call::Mount { flags, .. }
            if flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY)));
    }

    #[test]
    fn v2_gets_one_mount() {
        let sys = RecordingSyscall::new();
        let host = parse_mountinfo("30 1 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate");
        mount(
            Path::new("/r/sys/fs/cgroup"),
            MsFlags::MS_RDONLY,
            &host,
            &sys,
        )
        .unwrap();
        let mounts = sys.mounts();
        assert_eq!(mounts.len(), 1);
        assert!(matches!(&mounts[0], Call::Mount { fstype: Some(t), .. } if t == "cgroup2"));
    }
}
