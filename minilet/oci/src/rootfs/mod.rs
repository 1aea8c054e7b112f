//! The container's filesystem, set up by the init process in its new mount namespace:
//!
//! 1. [`prepare`]: root propagation (runc's rslave by default), the rootfs bound onto
//!    itself, every mount from config.json in order, then `/dev` (devices, symlinks);
//! 2. [`pivot`]: `pivot_root` into it;
//! 3. [`finish`]: masked paths, read-only paths and a read-only root.
//!
//! Sysctls and hooks run between the steps (see `process::init`).

pub mod cgroupfs;
pub mod devices;
pub mod options;
pub mod paths;

use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::{Mount, Spec};

use crate::error::{Error, Result};
use crate::syscall::Syscall;
use paths::secure_join;

/// Steps 1: everything before `pivot_root`.
pub fn prepare(spec: &Spec, rootfs: &Path, bundle: &Path, sys: &dyn Syscall) -> Result<()> {
    let linux = spec.linux().as_ref();
    let propagation =
        options::root_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))
            .map_err(Error::config)?;
    sys.mount(None, Path::new("/"), None, propagation, None)
        .map_err(|e| Error::sys("set the propagation of /", e))?;
    sys.mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(|e| Error::sys(format!("bind the rootfs {}", rootfs.display()), e))?;
    let needs_cgroups = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.typ().as_deref() == Some("cgroup"));
    let host_cgroups = if needs_cgroups {
        cgroupfs::host_mounts()
    } else {
        Vec::new()
    };
    for m in spec.mounts().iter().flatten() {
        mount_one(m, rootfs, bundle, &host_cgroups, sys)?;
    }
    devices::setup(spec, rootfs, sys)
}

/// Mounts one config.json entry under `rootfs`.
pub fn mount_one(
    m: &Mount,
    rootfs: &Path,
    bundle: &Path,
    host_cgroups: &[cgroupfs::CgroupMount],
    sys: &dyn Syscall,
) -> Result<()> {
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = secure_join(rootfs, m.destination());
    let name = m.destination().display().to_string();
    let fail = |what: &str| {
        let what = format!("{what} {name}");
        move |e| Error::sys(what, e)
    };
    if typ == "cgroup" {
        return cgroupfs::mount(&dest, opts.flags, host_cgroups, sys);
    }
    if opts.is_bind() || typ == "bind" {
        let source = m.source().as_deref().ok_or_else(|| {
            Error::config(format!("mounts: the bind mount on {name} has no source"))
        })?;
        let source = if source.is_absolute() {
            source.to_path_buf()
        } else {
            bundle.join(source)
        };
        let meta =
            std::fs::metadata(&source).map_err(|e| Error::io("bind mount source", &source, e))?;
        if meta.is_dir() {
            sys.mkdir_all(&dest, 0o755).map_err(fail("mkdir"))?;
        } else {
            sys.create_file(&dest).map_err(fail("create"))?;
        }
        let rec = opts.flags & MsFlags::MS_REC;
        sys.mount(Some(&source), &dest, None, MsFlags::MS_BIND | rec, None)
            .map_err(fail("bind"))?;
        let rest = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !rest.is_empty() {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | rest | paths::locked_flags(&dest);
            sys.mount(None, &dest, None, flags, None)
                .map_err(fail("remount"))?;
        }
    } else {
        sys.mkdir_all(&dest, 0o755).map_err(fail("mkdir"))?;
        let source = m.source().clone().unwrap_or_else(|| typ.into());
        let fstype = (!typ.is_empty()).then_some(typ);
        let data = opts.data_string();
        let r = sys.mount(Some(&source), &dest, fstype, opts.flags, data.as_deref());
        match r {
            Err(nix::Error::EPERM) | Err(nix::Error::EBUSY) if typ == "sysfs" => {
                // Without a new network namespace the kernel refuses a fresh sysfs.
                let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
                sys.mount(Some(Path::new("/sys")), &dest, None, flags, None)
                    .map_err(fail("bind /sys on"))?;
                if opts.flags.contains(MsFlags::MS_RDONLY) {
                    paths::remount_readonly(&dest, sys).map_err(fail("remount"))?;
                }
            }
            r => r.map_err(fail(&format!("mount {typ} on")))?,
        }
    }
    for p in &opts.propagation {
        sys.mount(None, &dest, None, *p, None)
            .map_err(fail("set propagation of"))?;
    }
    Ok(())
}

/// Step 2: `pivot_root` into the rootfs.
pub fn pivot(rootfs: &Path, sys: &dyn Syscall) -> Result<()> {
    sys.pivot_root(rootfs)
        .map_err(|e| Error::sys(format!("pivot_root {}", rootfs.display()), e))
}

/// Step 3, inside the new root: masked paths, read-only paths, read-only root.
pub fn finish(spec: &Spec, sys: &dyn Syscall) -> Result<()> {
    if let Some(linux) = spec.linux() {
        paths::mask(linux.masked_paths().as_deref().unwrap_or_default(), sys)?;
        paths::make_readonly(linux.readonly_paths().as_deref().unwrap_or_default(), sys)?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        paths::remount_readonly(Path::new("/"), sys)
            .map_err(|e| Error::sys("remount / read-only", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{Call, RecordingSyscall};

    /// The mounts of `runc spec` (trimmed to the interesting ones).
    const SPEC: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},
      "mounts":[
        {"destination":"/proc","type":"proc","source":"proc"},
        {"destination":"/dev","type":"tmpfs","source":"tmpfs",
         "options":["nosuid","strictatime","mode=755","size=65536k"]},
        {"destination":"/dev/pts","type":"devpts","source":"devpts",
         "options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
        {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
        {"destination":"/data","type":"bind","source":"BUNDLE","options":["rbind","ro","rprivate"]}
      ]}"#;

    fn plan(bundle: &Path, rootfs: &Path) -> Vec<Call> {
        let text = SPEC.replace("BUNDLE", &bundle.display().to_string());
        let spec: Spec = serde_json::from_str(&text).unwrap();
        let sys = RecordingSyscall::new();
        prepare(&spec, rootfs, bundle, &sys).unwrap();
        sys.mounts()
    }

    #[test]
    fn mount_plan_in_order() {
        let bundle = tempfile::tempdir().unwrap();
        let root = bundle.path().join("rootfs");
        let m = plan(bundle.path(), &root);
        let targets: Vec<_> = m
            .iter()
            .map(|c| match c {
                Call::Mount { target, .. } => target.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(targets[0], Path::new("/"));
        assert_eq!(targets[1], root);
        assert_eq!(targets[2], root.join("proc"));
        assert_eq!(targets[3], root.join("dev"));
        assert_eq!(targets[4], root.join("dev/pts"));
        assert_eq!(targets[5], root.join("sys"));
        // rbind, ro remount, rprivate
        assert_eq!(
            &targets[6..],
            &[root.join("data"), root.join("data"), root.join("data")]
        );
        assert!(
            matches!(&m[0], Call::Mount { flags, .. } if *flags == MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert!(
            matches!(&m[3], Call::Mount { fstype: Some(t), data: Some(d), flags, .. }
            if t == "tmpfs" && d == "mode=755,size=65536k"
            && *flags == MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME)
        );
        assert!(matches!(&m[5], Call::Mount { flags, .. } if flags.contains(MsFlags::MS_RDONLY)));
        assert!(
            matches!(&m[6], Call::Mount { flags, .. } if *flags == MsFlags::MS_BIND | MsFlags::MS_REC)
        );
        assert!(matches!(&m[7], Call::Mount { flags, .. }
            if flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_BIND)));
        assert!(
            matches!(&m[8], Call::Mount { flags, .. } if *flags == MsFlags::MS_PRIVATE | MsFlags::MS_REC)
        );
    }

    #[test]
    fn finish_masks_and_remounts_root() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","root":{"path":"r","readonly":true},
            "linux":{"maskedPaths":["/nonexistent/x"],"readonlyPaths":["/nonexistent/y"]}}"#,
        )
        .unwrap();
        let sys = RecordingSyscall::new();
        finish(&spec, &sys).unwrap();
        let m = sys.mounts();
        assert_eq!(m.len(), 1);
        assert!(matches!(&m[0], Call::Mount { target, flags, .. }
            if target == Path::new("/") && flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT)));
    }

    #[test]
    fn bind_without_source_is_named() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/x","options":["bind"]}]}"#,
        )
        .unwrap();
        let sys = RecordingSyscall::new();
        let e = prepare(&spec, Path::new("/r"), Path::new("/b"), &sys).unwrap_err();
        assert!(e.to_string().contains("/x has no source"), "{e}");
    }
}
