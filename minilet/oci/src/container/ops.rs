//! `start`, `kill`, `delete`, `ps` and waiting for a container's init to exit.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::{Container, Runtime, Status};
use crate::error::{Error, Result};
use crate::hooks::{self, Kind};
use crate::{cgroups, procfs};

/// How long `start` waits for an init that has not reached the fifo yet, and `delete`
/// for a killed init to go.
const PATIENCE: Duration = Duration::from_secs(10);

/// Sleeps in growing steps until `done` or the deadline; returns whether `done`.
fn wait_until(mut done: impl FnMut() -> bool, limit: Duration) -> bool {
    let start = Instant::now();
    let mut nap = Duration::from_micros(50);
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Destroys a cgroup, retrying while its last tasks are still exiting.
pub(crate) fn destroy_cgroup(cg: &dyn minik_cgroups::CgroupManager) {
    let mut last = None;
    let ok = wait_until(
        || match cg.destroy() {
            Ok(()) => true,
            Err(e) => {
                last = Some(e);
                false
            }
        },
        Duration::from_secs(2),
    );
    if !ok {
        if let Some(e) = last {
            tracing::warn!("cannot remove cgroup {:?}: {e}", cg.paths());
        }
    }
}

impl Runtime {
    /// Starts a created container: unblocks its init, which then execs the user
    /// program; runs the poststart hooks.
    pub fn start(&self, id: &str) -> Result<()> {
        let mut c = self.load(id)?;
        c.status().check_start()?;
        let fifo = c.fifo();
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(|e| Error::io("open the exec fifo", &fifo, e))?;
        // Blocking reads from here: the init writes one byte once it sees a reader.
        // SAFETY: F_SETFL on our own open fd.
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_SETFL, 0) };
        let mut byte = [0u8; 1];
        let mut failure = None;
        let got = wait_until(
            || match f.read(&mut byte) {
                Ok(1) => true,
                Ok(_) => {
                    // No writer yet (or any more): fine while the init lives.
                    if !procfs::is_alive(c.state.oci.pid, c.state.pid_start_time) {
                        failure = Some("the container's init exited before start".to_string());
                        return true;
                    }
                    false
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
                Err(e) => {
                    failure = Some(format!("read the exec fifo: {e}"));
                    true
                }
            },
            PATIENCE,
        );
        if let Some(f) = failure {
            return Err(Error::Init(f));
        }
        if !got {
            return Err(Error::Init(
                "the container's init did not reach the exec fifo".into(),
            ));
        }
        let _ = std::fs::remove_file(&fifo);
        c.state.oci.status = Status::Running;
        c.save()?;
        let mut st = c.oci_state();
        st.status = Status::Running;
        hooks::run_logged(&c.state.config, Kind::Poststart, &st);
        Ok(())
    }

    /// Sends `signal` to the container's init (`all`: to every process in it).
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let c = self.load(id)?;
        c.status().check_kill(id)?;
        if all {
            if let Some(path) = &c.state.cgroups_path {
                let cg = cgroups::open(path)?;
                return cg.kill_all(signal).map_err(|source| Error::Cgroup {
                    path: path.clone(),
                    source,
                });
            }
            for pid in self.ps_of(&c)? {
                send(pid, signal)?;
            }
            return Ok(());
        }
        send(c.state.oci.pid, signal)
    }

    /// Deletes a container: `stopped` and `created` ones always, `running` ones with
    /// `force` (killed first). Removes its cgroup and state, then runs poststop hooks.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let c = match self.load(id) {
            Ok(c) => c,
            Err(Error::NotFound(_)) => {
                // A create that died before writing state.json leaves a bare directory.
                let dir = self.root.join(id);
                if super::validate_id(id).is_ok() && dir.join("state.json").metadata().is_err() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                return if force {
                    Ok(())
                } else {
                    Err(Error::NotFound(id.into()))
                };
            }
            Err(e) => return Err(e),
        };
        let status = c.status();
        status.check_delete(id, force)?;
        if status != Status::Stopped {
            if let Some(path) = &c.state.cgroups_path {
                if let Ok(cg) = cgroups::open(path) {
                    let _ = cg.kill_all(libc::SIGKILL);
                }
            }
            let _ = send(c.state.oci.pid, libc::SIGKILL);
            if !self.wait_stopped(&c, PATIENCE) {
                return Err(Error::Other(format!(
                    "container \"{id}\" did not die after SIGKILL"
                )));
            }
        }
        if let Some(path) = &c.state.cgroups_path {
            match cgroups::open(path) {
                Ok(cg) => destroy_cgroup(cg.as_ref()),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        std::fs::remove_dir_all(&c.dir).map_err(|e| Error::io("remove", &c.dir, e))?;
        let mut st = c.oci_state();
        st.status = Status::Stopped;
        hooks::run_logged(&c.state.config, Kind::Poststop, &st);
        Ok(())
    }

    /// Waits (polling /proc) until the container's init is gone; false on timeout.
    pub fn wait_stopped(&self, c: &Container, limit: Duration) -> bool {
        wait_until(|| c.status() == Status::Stopped, limit)
    }

    /// The pids of the container's processes (host pids).
    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let c = self.load(id)?;
        if c.status() == Status::Stopped {
            return Ok(Vec::new());
        }
        self.ps_of(&c)
    }

    fn ps_of(&self, c: &Container) -> Result<Vec<i32>> {
        if let Some(path) = &c.state.cgroups_path {
            let cg = cgroups::open(path)?;
            let mut pids = cg.pids().map_err(|source| Error::Cgroup {
                path: path.clone(),
                source,
            })?;
            pids.sort_unstable();
            return Ok(pids);
        }
        let pid = c.state.oci.pid;
        let own_ns = !crate::namespaces::same(
            std::path::Path::new(&format!("/proc/{pid}/ns/pid")),
            std::path::Path::new("/proc/self/ns/pid"),
        );
        Ok(if own_ns {
            procfs::pids_in_pidns_of(pid)
        } else {
            vec![pid]
        })
    }
}

fn send(pid: i32, signal: i32) -> Result<()> {
    // SAFETY: kill(2) with a raw signal number (RT signals are not in nix's enum).
    let rc = unsafe { libc::kill(Pid::from_raw(pid).as_raw(), signal) };
    match nix::Error::result(rc) {
        Ok(_) | Err(nix::Error::ESRCH) => Ok(()),
        Err(e) => Err(Error::sys(format!("kill {pid} with signal {signal}"), e)),
    }
}
