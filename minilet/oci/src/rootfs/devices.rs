//! `/dev` inside the container: runc's default device nodes, the devices config.json
//! lists, and the usual symlinks (`/dev/fd`, `/dev/stdin`…, `/dev/ptmx`).

use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::paths::secure_join;
use crate::error::{Error, Result};
use crate::syscall::Syscall;

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path in the container.
    pub path: PathBuf,
    /// Character, block or FIFO.
    pub kind: SFlag,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// runc's default devices: null, zero, full, random, urandom, tty.
pub fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

fn from_spec(d: &LinuxDevice) -> Result<Device> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::config(format!(
                "linux.devices: {} has type \"a\", which is not a device type",
                d.path().display()
            )))
        }
    };
    let to_u64 = |n: i64, what: &str| {
        u64::try_from(n).map_err(|_| {
            Error::config(format!(
                "linux.devices: {} has a negative {what}",
                d.path().display()
            ))
        })
    };
    Ok(Device {
        path: d.path().clone(),
        kind,
        major: to_u64(d.major(), "major")?,
        minor: to_u64(d.minor(), "minor")?,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Whether the config bind-mounts a host `/dev` (then no device is created).
pub fn dev_is_bound(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

/// The devices to create: the defaults (unless /dev is a bind mount) then
/// `linux.devices`, later entries replacing earlier ones with the same path.
pub fn plan(spec: &Spec) -> Result<Vec<Device>> {
    let mut out = if dev_is_bound(spec) {
        Vec::new()
    } else {
        defaults()
    };
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let dev = from_spec(d)?;
        out.retain(|o| o.path != dev.path);
        out.push(dev);
    }
    Ok(out)
}

/// Creates the devices and, unless /dev is a bind mount, the standard symlinks.
pub fn setup(spec: &Spec, rootfs: &Path, sys: &dyn Syscall) -> Result<()> {
    for dev in plan(spec)? {
        let dest = secure_join(rootfs, &dev.path);
        if let Some(parent) = dest.parent() {
            sys.mkdir_all(parent, 0o755)
                .map_err(|e| Error::sys(format!("mkdir {}", parent.display()), e))?;
        }
        sys.mknod(&dest, dev.kind, dev.mode, dev.major, dev.minor)
            .map_err(|e| Error::sys(format!("mknod {}", dev.path.display()), e))?;
        if dev.uid != 0 || dev.gid != 0 {
            sys.chown(&dest, dev.uid, dev.gid)
                .map_err(|e| Error::sys(format!("chown {}", dev.path.display()), e))?;
        }
    }
    if dev_is_bound(spec) {
        return Ok(());
    }
    let dev = secure_join(rootfs, Path::new("/dev"));
    for dir in ["pts", "shm"] {
        sys.mkdir_all(&dev.join(dir), 0o755)
            .map_err(|e| Error::sys(format!("mkdir /dev/{dir}"), e))?;
    }
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        let link_path = dev.join(link);
        if link == "ptmx" && std::fs::symlink_metadata(&link_path).is_ok_and(|m| !m.is_symlink()) {
            // An image's own /dev/ptmx node would bypass the container's devpts.
            let _ = std::fs::remove_file(&link_path);
        }
        sys.symlink(Path::new(target), &link_path)
            .map_err(|e| Error::sys(format!("symlink /dev/{link}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{Call, RecordingSyscall};

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_plus_config_devices() {
        let s = spec(
            r#"{"ociVersion":"1.0.0","linux":{"devices":[
            {"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438},
            {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":432}]}}"#,
        );
        let p = plan(&s).unwrap();
        assert_eq!(p.len(), 7);
        assert!(p
            .iter()
            .any(|d| d.path == Path::new("/dev/fuse") && d.minor == 229));
        let null = p.iter().find(|d| d.path == Path::new("/dev/null")).unwrap();
        assert_eq!(null.mode, 0o660);
    }

    #[test]
    fn bound_dev_gets_no_defaults() {
        let s = spec(
            r#"{"ociVersion":"1.0.0","mounts":[
            {"destination":"/dev","source":"/dev","options":["rbind"]}]}"#,
        );
        assert!(plan(&s).unwrap().is_empty());
        let sys = RecordingSyscall::new();
        setup(&s, Path::new("/nonexistent-root"), &sys).unwrap();
        assert!(sys.calls().is_empty());
    }

    #[test]
    fn setup_records_nodes_and_links() {
        let s = spec(r#"{"ociVersion":"1.0.0"}"#);
        let sys = RecordingSyscall::new();
        let root = Path::new("/nonexistent-root");
        setup(&s, root, &sys).unwrap();
        let calls = sys.calls();
        assert!(calls.contains(&Call::Mknod {
            path: root.join("dev/null"),
            kind: SFlag::S_IFCHR,
            perm: 0o666,
            major: 1,
            minor: 3
        }));
        assert!(calls.contains(&Call::Symlink {
            target: "pts/ptmx".into(),
            link: root.join("dev/ptmx")
        }));
        assert!(calls.contains(&Call::Symlink {
            target: "/proc/self/fd".into(),
            link: root.join("dev/fd")
        }));
    }

    #[test]
    fn type_a_is_refused() {
        let s = spec(
            r#"{"ociVersion":"1.0.0","linux":{"devices":[
            {"path":"/dev/x","type":"a","major":1,"minor":1}]}}"#,
        );
        assert!(plan(&s).unwrap_err().to_string().contains("/dev/x"));
    }
}
