//! Paths inside the rootfs: joining a container path onto the rootfs without letting
//! symlinks escape it, and the masked and read-only paths applied after `pivot_root`.

use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

use crate::error::{Error, Result};
use crate::syscall::Syscall;

/// Joins `path` (absolute, as seen in the container) onto `root`, resolving symlinks
/// inside `root` as if `root` were `/`, so `..` and absolute links stay inside.
pub fn secure_join(root: &Path, path: &Path) -> PathBuf {
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> =
        path.components().rev().filter_map(component_name).collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(resolved.iter().collect::<PathBuf>()).join(&part);
        match std::fs::read_link(&candidate) {
            Ok(target) if links < 255 => {
                links += 1;
                if target.is_absolute() {
                    resolved.clear();
                }
                pending.extend(target.components().rev().filter_map(component_name));
            }
            _ => resolved.push(part),
        }
    }
    root.join(resolved.iter().collect::<PathBuf>())
}

fn component_name(c: Component<'_>) -> Option<std::ffi::OsString> {
    match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

/// Masks each path: `/dev/null` bound over files, an empty read-only tmpfs over
/// directories; paths that do not exist are skipped.
pub fn mask(paths: &[String], sys: &dyn Syscall) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let r = if meta.is_dir() {
            sys.mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )
        } else {
            sys.mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )
        };
        match r {
            Ok(()) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("mask {p}"), e)),
        }
    }
    Ok(())
}

/// Makes each path read-only with a bind mount onto itself and a read-only remount
/// (keeping the mount's nosuid/nodev/noexec); paths that do not exist are skipped.
pub fn make_readonly(paths: &[String], sys: &dyn Syscall) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        match sys.mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        ) {
            Ok(()) => {}
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(Error::sys(format!("bind {p} read-only"), e)),
        }
        remount_readonly(path, sys).map_err(|e| Error::sys(format!("remount {p} read-only"), e))?;
    }
    Ok(())
}

/// Remounts an existing bind mount read-only, keeping its other per-mount flags.
pub fn remount_readonly(path: &Path, sys: &dyn Syscall) -> nix::Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(path);
    sys.mount(None, path, None, flags, None)
}

/// The nosuid/nodev/noexec/atime flags the mount at `path` has now.
pub fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{Call, RecordingSyscall};

    #[test]
    fn join_stays_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/dir")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("real/up")).unwrap();
        assert_eq!(
            secure_join(root, Path::new("/abs/dir")),
            root.join("real/dir")
        );
        assert_eq!(
            secure_join(root, Path::new("/real/up/passwd")),
            root.join("etc/passwd")
        );
        assert_eq!(secure_join(root, Path::new("/../../x")), root.join("x"));
        assert_eq!(secure_join(root, Path::new("/new/a")), root.join("new/a"));
    }

    #[test]
    fn symlink_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/loop", dir.path().join("loop")).unwrap();
        let p = secure_join(dir.path(), Path::new("/loop/x"));
        assert!(p.starts_with(dir.path()));
    }

    #[test]
    fn mask_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let sys = RecordingSyscall::new();
        let paths = vec![
            file.display().to_string(),
            dir.path().display().to_string(),
            "/does/not/exist".to_string(),
        ];
        mask(&paths, &sys).unwrap();
        let calls = sys.calls();
        assert_eq!(calls.len(), 2);
        assert!(
            matches!(&calls[0], Call::Mount { source: Some(s), flags, .. }
            if s == Path::new("/dev/null") && *flags == MsFlags::MS_BIND)
        );
        assert!(
            matches!(&calls[1], Call::Mount { fstype: Some(t), flags, .. }
            if t == "tmpfs" && flags.contains(MsFlags::MS_RDONLY))
        );
    }

    #[test]
    fn readonly_binds_then_remounts() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSyscall::new();
        make_readonly(&[dir.path().display().to_string()], &sys).unwrap();
        let calls = sys.calls();
        assert_eq!(calls.len(), 2);
        assert!(matches!(&calls[1], Call::Mount { flags, .. }
            if flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_BIND)));
    }
}
