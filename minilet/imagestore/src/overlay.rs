//! overlayfs mounts for container rootfs: building the options, mounting (with relative
//! lowerdirs from a helper thread when absolute ones would not fit in the kernel's one
//! page of mount data), checking for and undoing mounts.

use crate::error::ImageError;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// The longest mount data `mount(2)` takes (one page, with its NUL).
const MAX_MOUNT_DATA: usize = 4095;
/// overlayfs's limit on lower layers.
const MAX_LOWERS: usize = 500;

/// Checks that a path can stand in an overlayfs option string.
fn check_path(p: &Path) -> Result<&str, String> {
    let s = p
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))?;
    if s.contains([',', ':', '\\']) {
        return Err(format!(
            "{s} contains ',', ':' or '\\', which overlayfs mount options cannot hold; use another directory"
        ));
    }
    Ok(s)
}

/// The options for `lowers` (top first, each given relative to `base` or absolute).
fn options(lowers: &[String], upper: &str, work: &str, index_off: bool) -> String {
    let mut data = format!(
        "lowerdir={},upperdir={upper},workdir={work}",
        lowers.join(":")
    );
    if index_off {
        // As Docker does: no inode index tying an upper dir to its lower layers.
        data.push_str(",index=off");
    }
    data
}

fn mount_error(target: &Path, errno: Errno, data_len: usize) -> ImageError {
    let hint = match errno {
        Errno::EPERM => "mounting needs root (CAP_SYS_ADMIN)".to_string(),
        Errno::ENODEV => "the kernel has no overlay file system: run `modprobe overlay`".to_string(),
        Errno::ENOENT => "a layer, upper, work or target directory is missing".to_string(),
        _ => format!(
            "see `dmesg` for overlayfs's reason: the upper and work directories must be on one file system that is not overlayfs and supports trusted xattrs ({data_len} bytes of options)"
        ),
    };
    ImageError::Mount {
        action: "mount",
        target: target.to_path_buf(),
        errno,
        hint,
    }
}

fn overlay_mount(data: &str, target: &Path) -> nix::Result<()> {
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data),
    )
}

/// Mounts overlayfs at `target` with `lowers` (top first, absolute), `upper` and
/// `work` (absolute). `short` names each lower (same order) by a short symlink inside
/// `base`, used when the absolute paths do not fit in one page of options.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    base: &Path,
    short: &[String],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), ImageError> {
    let bad = |reason: String| ImageError::Mount {
        action: "mount",
        target: target.to_path_buf(),
        errno: Errno::EINVAL,
        hint: reason,
    };
    if lowers.is_empty() || lowers.len() > MAX_LOWERS {
        return Err(bad(format!(
            "an overlay needs 1 to {MAX_LOWERS} lower layers, this image has {}",
            lowers.len()
        )));
    }
    let upper_s = check_path(upper).map_err(bad)?;
    let work_s = check_path(work).map_err(bad)?;
    check_path(target).map_err(bad)?;
    let index_off = Path::new("/sys/module/overlay/parameters/index").exists();

    let absolute = lowers
        .iter()
        .map(|l| check_path(l).map(str::to_string))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let data = options(&absolute, upper_s, work_s, index_off);
    if data.len() <= MAX_MOUNT_DATA {
        return overlay_mount(&data, target).map_err(|e| mount_error(target, e, data.len()));
    }

    // Too long: name the lowers by their short links, relative to `base`, and mount
    // from a thread whose working directory is `base` (CLONE_FS unshared, so no other
    // thread sees it), as Docker's overlay2 driver does with its `l/` links.
    if short.len() != lowers.len() {
        return Err(bad(
            "internal: short layer names do not match the layers".to_string()
        ));
    }
    let relative = short
        .iter()
        .map(|l| check_path(Path::new(l)).map(str::to_string))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let data = options(&relative, upper_s, work_s, index_off);
    if data.len() > MAX_MOUNT_DATA {
        return Err(bad(format!(
            "{} lower layers need {} bytes of mount options, more than the kernel's {MAX_MOUNT_DATA}",
            lowers.len(),
            data.len()
        )));
    }
    let base = base.to_path_buf();
    let target_owned = target.to_path_buf();
    let len = data.len();
    let joined = std::thread::Builder::new()
        .name("overlay-mount".to_string())
        .spawn(move || -> nix::Result<()> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
            nix::unistd::chdir(&base)?;
            overlay_mount(&data, &target_owned)
        })
        .map_err(|e| bad(format!("cannot start the mount thread: {e}")))?
        .join()
        .map_err(|_| bad("the mount thread panicked".to_string()))?;
    joined.map_err(|e| mount_error(target, e, len))
}

/// Unescapes a mountinfo field (`\040` for a space, etc.).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether something is mounted at `path` in this mount namespace.
pub(crate) fn is_mounted(path: &Path) -> Result<bool, ImageError> {
    let Ok(canon) = std::fs::canonicalize(path) else {
        return Ok(false);
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(crate::error::io_err("read", "/proc/self/mountinfo"))?;
    Ok(info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| Path::new(&unescape_mountinfo(mp)) == canon)
    }))
}

/// Lazily unmounts everything mounted at `target`; a missing or unmounted target is
/// fine. Returns how many mounts were undone.
pub(crate) fn unmount_all(target: &Path) -> Result<usize, ImageError> {
    let mut n = 0;
    loop {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => n += 1,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(n),
            Err(errno) => return Err(ImageError::Mount {
                action: "unmount",
                target: target.to_path_buf(),
                errno,
                hint:
                    "unmounting needs root (CAP_SYS_ADMIN) in the mount namespace that mounted it"
                        .to_string(),
            }),
        }
        if n > 16 {
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_strings() {
        let o = options(&["/l/b".into(), "/l/a".into()], "/c/upper", "/c/work", true);
        assert_eq!(
            o,
            "lowerdir=/l/b:/l/a,upperdir=/c/upper,workdir=/c/work,index=off"
        );
        assert!(check_path(Path::new("/a:b")).is_err());
        assert!(check_path(Path::new("/a,b")).is_err());
        assert!(check_path(Path::new("/a/b")).is_ok());
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\04"), "/end\\04");
    }
}
