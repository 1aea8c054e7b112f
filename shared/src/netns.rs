//! Network namespaces: open one by path, run code inside it, and create or remove named
//! ones the way `ip netns add` / `ip netns del` do (a bind mount under a netns directory).
//!
//! `setns(2)` changes the namespace of the calling *thread* only. [`NetNs::enter`] returns a
//! guard that switches the thread back when dropped, so a panic or an early `?` never
//! leaves a thread in the wrong namespace. Processes spawned while a thread is inside a
//! namespace inherit it, which is how a runtime runs a CNI plugin "on a node".

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// What can go wrong with namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace path could not be opened.
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// The path that was tried.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A namespace syscall failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// An open handle on a network namespace.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
    path: PathBuf,
}

impl NetNs {
    /// Opens the namespace at `path` (e.g. `/run/netns/pod1` or `/proc/PID/ns/net`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetnsError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| NetnsError::Open { path: path.clone(), source })?;
        Ok(NetNs { fd: file.into(), path })
    }

    /// The namespace the calling thread is in now.
    pub fn current() -> Result<Self, NetnsError> {
        Self::open("/proc/thread-self/ns/net")
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the calling thread into this namespace until the guard is dropped.
    pub fn enter(&self) -> Result<NsGuard, NetnsError> {
        let back = NetNs::current()?;
        setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Sys {
            what: format!("cannot enter network namespace {}", self.path.display()),
            source,
        })?;
        Ok(NsGuard { back })
    }

    /// Runs `f` with the calling thread inside this namespace.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> Result<R, NetnsError> {
        let _guard = self.enter()?;
        Ok(f())
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Returns the calling thread to the namespace it was in before [`NetNs::enter`].
#[derive(Debug)]
pub struct NsGuard {
    back: NetNs,
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.back.fd.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Staying in the wrong namespace would silently misroute every later call.
            tracing::error!(error = %e, "cannot return to the original network namespace; aborting");
            std::process::abort();
        }
    }
}

/// The directory `ip netns` uses.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Creates a new, empty network namespace pinned at `dir/name` (like `ip netns add`),
/// with its loopback left down as the kernel creates it. Returns the pinned path.
pub fn create_named(dir: impl AsRef<Path>, name: &str) -> Result<PathBuf, NetnsError> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir)
        .map_err(|source| NetnsError::Io { what: format!("cannot create {}", dir.display()), source })?;
    let target = dir.join(name);
    File::options()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(|source| NetnsError::Io { what: format!("cannot create {}", target.display()), source })?;
    // A fresh thread unshares so the caller's thread keeps its namespace.
    let t = target.clone();
    let res = std::thread::spawn(move || -> Result<(), NetnsError> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|source| NetnsError::Sys { what: "cannot unshare a network namespace".into(), source })?;
        mount(Some("/proc/thread-self/ns/net"), &t, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(
            |source| NetnsError::Sys { what: format!("cannot bind-mount the new namespace on {}", t.display()), source },
        )
    })
    .join()
    .unwrap_or_else(|_| Err(NetnsError::Io { what: "netns thread panicked".into(), source: std::io::Error::other("panic") }));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&target);
        return Err(e);
    }
    Ok(target)
}

/// Removes a namespace pinned at `dir/name` (like `ip netns del`); a missing one is fine.
pub fn delete_named(dir: impl AsRef<Path>, name: &str) -> Result<(), NetnsError> {
    let target = dir.as_ref().join(name);
    if !target.exists() {
        return Ok(());
    }
    match umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) => {}
        Err(source) => return Err(NetnsError::Sys { what: format!("cannot unmount {}", target.display()), source }),
    }
    std::fs::remove_file(&target)
        .map_err(|source| NetnsError::Io { what: format!("cannot remove {}", target.display()), source })
}
