//! The real [`Syscall`]: nix calls on this process.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};

use super::{errno_of, Syscall};

/// Performs the calls for real.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }

    fn pivot_root(&self, rootfs: &Path) -> nix::Result<()> {
        let old = File::open("/").map_err(|e| errno_of(&e))?;
        let new = File::open(rootfs).map_err(|e| errno_of(&e))?;
        nix::unistd::fchdir(&new)?;
        nix::unistd::pivot_root(".", ".")?;
        nix::unistd::fchdir(&old)?;
        // The old root is stacked under "."; keep its unmount from reaching the host.
        nix::mount::mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )?;
        nix::mount::umount2(".", MntFlags::MNT_DETACH)?;
        nix::unistd::chdir("/")
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> nix::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|e| errno_of(&e))
    }

    fn create_file(&self, path: &Path) -> nix::Result<()> {
        if path.exists() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            self.mkdir_all(parent, 0o755)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(|e| errno_of(&e))
    }

    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        match std::os::unix::fs::symlink(target, link) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            r => r.map_err(|e| errno_of(&e)),
        }
    }

    fn mknod(
        &self,
        path: &Path,
        kind: SFlag,
        perm: u32,
        major: u64,
        minor: u64,
    ) -> nix::Result<()> {
        let dev = nix::sys::stat::makedev(major, minor);
        match nix::sys::stat::mknod(path, kind, Mode::from_bits_truncate(perm), dev) {
            Err(nix::Error::EEXIST) => Ok(()),
            r => r,
        }?;
        // mknod's mode is filtered by the umask; set it exactly.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            path,
            Mode::from_bits_truncate(perm),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> nix::Result<()> {
        nix::unistd::chown(path, Some(uid.into()), Some(gid.into()))
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn setdomainname(&self, name: &str) -> nix::Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes, valid for the call.
        let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        nix::Error::result(rc).map(drop)
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }

    fn setns(&self, path: &Path, flags: CloneFlags) -> nix::Result<()> {
        let f = File::open(path).map_err(|e| errno_of(&e))?;
        nix::sched::setns(&f, flags)
    }

    fn write_file(&self, path: &Path, contents: &str) -> nix::Result<()> {
        std::fs::write(path, contents).map_err(|e| errno_of(&e))
    }
}
