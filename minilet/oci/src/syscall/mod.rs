//! The side effects of container setup behind a small trait, so the mount, device and
//! namespace logic can be unit-tested without root: [`LinuxSyscall`] does the real
//! thing, [`RecordingSyscall`] records what would have been done.

mod fake;
mod linux;

use std::path::Path;

pub use fake::{Call, RecordingSyscall};
pub use linux::LinuxSyscall;
pub use nix::mount::{MntFlags, MsFlags};
pub use nix::sched::CloneFlags;
pub use nix::sys::stat::SFlag;

/// The system calls (and small compositions of them) that container setup makes.
pub trait Syscall {
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// `umount2(2)`.
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    /// Makes `rootfs` the root: `pivot_root(".", ".")` from inside it, then detaches the
    /// old root (runc's way, needing no directory for the old root).
    fn pivot_root(&self, rootfs: &Path) -> nix::Result<()>;
    /// `mkdir -p` with `mode` for the directories created.
    fn mkdir_all(&self, path: &Path, mode: u32) -> nix::Result<()>;
    /// Creates an empty file (a bind-mount target) if it does not exist.
    fn create_file(&self, path: &Path) -> nix::Result<()>;
    /// `symlink(2)`: `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()>;
    /// `mknod(2)` of a device node.
    fn mknod(&self, path: &Path, kind: SFlag, perm: u32, major: u64, minor: u64)
        -> nix::Result<()>;
    /// `chown(2)`.
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> nix::Result<()>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    /// `setdomainname(2)`.
    fn setdomainname(&self, name: &str) -> nix::Result<()>;
    /// `unshare(2)`.
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    /// Opens the namespace file `path` and `setns(2)`s into it.
    fn setns(&self, path: &Path, flags: CloneFlags) -> nix::Result<()>;
    /// Writes a whole file (sysctls under /proc/sys).
    fn write_file(&self, path: &Path, contents: &str) -> nix::Result<()>;
}

/// Maps an `io::Error` to its errno (EIO when it has none).
pub(crate) fn errno_of(e: &std::io::Error) -> nix::Error {
    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
