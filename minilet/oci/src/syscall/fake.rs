//! A [`Syscall`] that records calls instead of making them, for unit tests.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::SFlag;

use super::Syscall;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount2 {
        target: PathBuf,
        flags: MntFlags,
    },
    PivotRoot(PathBuf),
    MkdirAll(PathBuf, u32),
    CreateFile(PathBuf),
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    Mknod {
        path: PathBuf,
        kind: SFlag,
        perm: u32,
        major: u64,
        minor: u64,
    },
    Chown(PathBuf, u32, u32),
    Sethostname(String),
    Setdomainname(String),
    Unshare(CloneFlags),
    Setns(PathBuf, CloneFlags),
    WriteFile(PathBuf, String),
}

/// Records every call and succeeds.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    calls: Mutex<Vec<Call>>,
}

impl RecordingSyscall {
    /// A fake with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The mount calls so far, in order.
    pub fn mounts(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Mount { .. }))
            .collect()
    }

    fn push(&self, call: Call) -> nix::Result<()> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        Ok(())
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        self.push(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        self.push(Call::Umount2 {
            target: target.to_path_buf(),
            flags,
        })
    }

    fn pivot_root(&self, rootfs: &Path) -> nix::Result<()> {
        self.push(Call::PivotRoot(rootfs.to_path_buf()))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> nix::Result<()> {
        self.push(Call::MkdirAll(path.to_path_buf(), mode))
    }

    fn create_file(&self, path: &Path) -> nix::Result<()> {
        self.push(Call::CreateFile(path.to_path_buf()))
    }

    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        self.push(Call::Symlink {
            target: target.to_path_buf(),
            link: link.to_path_buf(),
        })
    }

    fn mknod(
        &self,
        path: &Path,
        kind: SFlag,
        perm: u32,
        major: u64,
        minor: u64,
    ) -> nix::Result<()> {
        self.push(Call::Mknod {
            path: path.to_path_buf(),
            kind,
            perm,
            major,
            minor,
        })
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> nix::Result<()> {
        self.push(Call::Chown(path.to_path_buf(), uid, gid))
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.push(Call::Sethostname(name.to_string()))
    }

    fn setdomainname(&self, name: &str) -> nix::Result<()> {
        self.push(Call::Setdomainname(name.to_string()))
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        self.push(Call::Unshare(flags))
    }

    fn setns(&self, path: &Path, flags: CloneFlags) -> nix::Result<()> {
        self.push(Call::Setns(path.to_path_buf(), flags))
    }

    fn write_file(&self, path: &Path, contents: &str) -> nix::Result<()> {
        self.push(Call::WriteFile(path.to_path_buf(), contents.to_string()))
    }
}
