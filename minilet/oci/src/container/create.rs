//! `create`: validate the bundle, make the state directory and exec fifo, fork the
//! init, put it in its cgroup, run the runtime-side hooks, and return once the init
//! reports it is set up and waiting for `start` (status `created`).

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::{write_state, Container, OciState, Runtime, StateFile, Status};
use crate::error::{Error, Result};
use crate::hooks::{self, Kind};
use crate::process::channel::{Channel, ToInit, ToRuntime};
use crate::process::init::{stage1, InitArgs};
use crate::process::{fork, tty};
use crate::{cgroups, config, namespaces, procfs, seccomp};

/// Options of `create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// The unix socket to send the pty master to (`process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// Extra fds (3..3+N) to pass to the container.
    pub preserve_fds: u32,
    /// fds to use as the container's stdin, stdout, stderr instead of the caller's.
    pub stdio: Option<[RawFd; 3]>,
}

/// Writes a file atomically (pid files are read by others while being written).
pub(crate) fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("minik-tmp");
    std::fs::write(&tmp, contents).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename to", path, e))
}

impl Runtime {
    /// Creates container `id` from the bundle; returns it in `created` status.
    ///
    /// The init process outlives this call (it waits for [`Runtime::start`]); it is
    /// reparented to the caller only if the caller is a child subreaper.
    pub fn create(&self, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<Container> {
        super::validate_id(id)?;
        let bundle = std::fs::canonicalize(bundle).map_err(|e| Error::io("bundle", bundle, e))?;
        let spec = config::load(&bundle)?;
        let program = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(profile) => Some(seccomp::compile(profile)?),
            None => None,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .map_err(|e| Error::io("create the state root", &self.root, e))?;
        let dir = self.root.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.into()))
            }
            Err(e) => return Err(Error::io("create", &dir, e)),
        }
        let mut cleanup = Cleanup {
            dir: dir.clone(),
            pid: None,
            cgroup: None,
        };
        let c = self.create_in(
            id,
            &bundle,
            &spec,
            program.as_ref(),
            opts,
            &dir,
            &mut cleanup,
        )?;
        cleanup.dir = PathBuf::new();
        cleanup.pid = None;
        cleanup.cgroup = None;
        Ok(c)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_in(
        &self,
        id: &str,
        bundle: &Path,
        spec: &Spec,
        program: Option<&seccomp::Program>,
        opts: &CreateOptions,
        dir: &Path,
        cleanup: &mut Cleanup,
    ) -> Result<Container> {
        let fifo = dir.join("exec.fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
            .map_err(|e| Error::sys(format!("mkfifo {}", fifo.display()), e))?;
        std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o622))
            .map_err(|e| Error::io("chmod", &fifo, e))?;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::config("process is missing"))?;
        let console = match (&opts.console_socket, process.terminal().unwrap_or(false)) {
            (Some(path), true) => Some(tty::connect(path)?),
            (None, true) => {
                return Err(Error::config(
                    "process.terminal is true but no --console-socket was given",
                ))
            }
            _ => None,
        };
        let cgroup_path = cgroups::path_for(spec, id);
        let args = InitArgs {
            id,
            spec,
            bundle,
            rootfs: config::rootfs(spec, bundle),
            plan: namespaces::plan(spec),
            fifo: Some(fifo),
            console: console.as_ref().map(|s| s.as_raw_fd()),
            stdio: opts.stdio,
            seccomp: program,
            preserve_fds: opts.preserve_fds,
            process: None,
        };
        let (mut parent, mut child) = Channel::pair()?;
        let stage1_pid = fork::run_in_child(move || stage1(&args, &mut child))?;
        let pid = recv_pid(&mut parent, stage1_pid)?;
        cleanup.pid = Some(pid);
        if let Some(path) = &cgroup_path {
            cleanup.cgroup = Some(cgroups::setup(path, spec, pid)?);
        }
        parent.send(&ToInit::Go { pid })?;
        let creating = {
            let mut s = OciState::new(id, Status::Creating, pid, bundle.to_path_buf());
            s.annotations = spec.annotations().clone().unwrap_or_default();
            s.rootfs = config::rootfs(spec, bundle);
            s
        };
        loop {
            match parent.recv::<ToRuntime>()? {
                Some(ToRuntime::Ready) => break,
                Some(ToRuntime::RunHooks) => {
                    hooks::run(spec, Kind::Prestart, &creating)?;
                    hooks::run(spec, Kind::CreateRuntime, &creating)?;
                    parent.send(&ToInit::HooksDone)?;
                }
                Some(ToRuntime::Error(e)) => return Err(Error::Init(e)),
                Some(other) => return Err(Error::Init(format!("unexpected message {other:?}"))),
                None => return Err(Error::Init("the init process exited during setup".into())),
            }
        }
        drop(console);
        let start = procfs::stat(pid)
            .map(|s| s.start_time)
            .ok_or_else(|| Error::Init("the init process is gone".into()))?;
        let mut oci = creating;
        oci.status = Status::Created;
        oci.created = procfs::now_rfc3339();
        let state = StateFile {
            oci,
            pid_start_time: start,
            cgroups_path: cgroup_path,
            config: spec.clone(),
        };
        write_state(dir, &state)?;
        if let Some(pf) = &opts.pid_file {
            write_atomic(pf, &pid.to_string())?;
        }
        tracing::debug!(id, pid, "created");
        Ok(Container {
            dir: dir.to_path_buf(),
            state,
        })
    }
}

/// Receives the init's pid from stage 1 and reaps stage 1 when it is a separate process.
fn recv_pid(chan: &mut Channel, stage1: Pid) -> Result<i32> {
    let msg = chan.recv::<ToRuntime>();
    let pid = match msg {
        Ok(Some(ToRuntime::Pid(p))) => p,
        Ok(Some(ToRuntime::Error(e))) => {
            let _ = waitpid(stage1, None);
            return Err(Error::Init(e));
        }
        Ok(other) => {
            let _ = waitpid(stage1, None);
            return Err(Error::Init(format!(
                "the init process did not report its pid ({other:?})"
            )));
        }
        Err(e) => return Err(e),
    };
    if pid != stage1.as_raw() {
        let _ = waitpid(stage1, None);
    }
    Ok(pid)
}

/// Undoes a failed create: kills the init, removes the cgroup and the directory.
struct Cleanup {
    dir: PathBuf,
    pid: Option<i32>,
    cgroup: Option<Box<dyn minik_cgroups::CgroupManager>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            // Reaps it when it is our child; harmless otherwise.
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            super::ops::destroy_cgroup(cg.as_ref());
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
