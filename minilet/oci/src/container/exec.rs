//! `exec`: a new process in a running container — its namespaces (through
//! `/proc/PID/ns/*`), its cgroup, its seccomp profile, and the capabilities,
//! `no_new_privs`, user, env and cwd of the process given.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::create::write_atomic;
use super::Runtime;
use crate::error::{Error, Result};
use crate::process::channel::{Channel, ToInit, ToRuntime};
use crate::process::init::{stage1, InitArgs};
use crate::process::{fork, tty};
use crate::{cgroups, config, namespaces, seccomp};

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Return once the process runs instead of waiting for it.
    pub detach: bool,
    /// Where to write the process's pid.
    pub pid_file: Option<PathBuf>,
    /// The unix socket for the pty master (`process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// Extra fds (3..3+N) to pass.
    pub preserve_fds: u32,
    /// fds for the process's stdin, stdout, stderr instead of the caller's.
    pub stdio: Option<[RawFd; 3]>,
}

/// What `exec` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecResult {
    /// The process's host pid.
    pub pid: i32,
    /// Its exit code (128 + signal when killed), unless detached.
    pub exit_code: Option<i32>,
}

/// The exit code a shell would report for a wait status.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Waits for a child to exit and returns its exit code.
pub fn wait_exit(pid: i32) -> Result<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(s) => {
                if let Some(code) = exit_code(s) {
                    return Ok(code);
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(Error::sys(format!("wait for {pid}"), e)),
        }
    }
}

impl Runtime {
    /// Builds the process for `exec ID -- ARGS`: the container's own process with
    /// other args (and optionally env additions, cwd, terminal).
    pub fn exec_process(&self, id: &str, args: Vec<String>) -> Result<Process> {
        let c = self.load(id)?;
        let mut p = c.state.config.process().clone().unwrap_or_default();
        p.set_args(Some(args));
        p.set_terminal(Some(false));
        config::validate_process(&p, "exec", "")?;
        Ok(p)
    }

    /// Runs `process` in container `id`. Unless detached the caller must be a child
    /// subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`) when the container has a PID
    /// namespace, since the process is a grandchild; `exec` sets it for itself then.
    pub fn exec(&self, id: &str, process: &Process, opts: &ExecOptions) -> Result<ExecResult> {
        let c = self.load(id)?;
        c.status().check_exec(id)?;
        let spec = &c.state.config;
        let program = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(profile) => Some(seccomp::compile(profile)?),
            None => None,
        };
        let console = match (&opts.console_socket, process.terminal().unwrap_or(false)) {
            (Some(path), true) => Some(tty::connect(path)?),
            (None, true) => return Err(Error::Other("a terminal needs --console-socket".into())),
            _ => None,
        };
        if !opts.detach {
            nix::sys::prctl::set_child_subreaper(true)
                .map_err(|e| Error::sys("become a child subreaper", e))?;
        }
        let args = InitArgs {
            id,
            spec,
            bundle: &c.state.oci.bundle,
            rootfs: c.state.oci.rootfs.clone(),
            plan: namespaces::exec_plan(spec, c.state.oci.pid),
            fifo: None,
            console: console.as_ref().map(|s| s.as_raw_fd()),
            stdio: opts.stdio,
            seccomp: program.as_ref(),
            preserve_fds: opts.preserve_fds,
            process: Some(process),
        };
        let (mut parent, mut child) = Channel::pair()?;
        let stage1_pid = fork::run_in_child(move || stage1(&args, &mut child))?;
        let pid = match parent.recv::<ToRuntime>()? {
            Some(ToRuntime::Pid(p)) => p,
            Some(ToRuntime::Error(e)) => {
                let _ = waitpid(stage1_pid, None);
                return Err(Error::Init(e));
            }
            other => {
                let _ = waitpid(stage1_pid, None);
                return Err(Error::Init(format!(
                    "the exec process did not report its pid ({other:?})"
                )));
            }
        };
        if pid != stage1_pid.as_raw() {
            let _ = waitpid(stage1_pid, None);
        }
        let fail = |e: Error| {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            e
        };
        if let Some(path) = &c.state.cgroups_path {
            let cg = cgroups::open(path).map_err(fail)?;
            cg.add_task(pid).map_err(|source| {
                fail(Error::Cgroup {
                    path: path.clone(),
                    source,
                })
            })?;
        }
        parent.send(&ToInit::Go { pid }).map_err(fail)?;
        match parent.recv::<ToRuntime>() {
            Ok(Some(ToRuntime::Ready)) => {}
            Ok(Some(ToRuntime::Error(e))) => return Err(fail(Error::Init(e))),
            Ok(other) => {
                return Err(fail(Error::Init(format!(
                    "exec setup ended unexpectedly ({other:?})"
                ))))
            }
            Err(e) => return Err(fail(e)),
        }
        drop(console);
        if let Some(pf) = &opts.pid_file {
            write_atomic(pf, &pid.to_string())?;
        }
        if opts.detach {
            return Ok(ExecResult {
                pid,
                exit_code: None,
            });
        }
        Ok(ExecResult {
            pid,
            exit_code: Some(wait_exit(pid)?),
        })
    }
}
