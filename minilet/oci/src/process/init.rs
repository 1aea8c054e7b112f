//! The container's side of `create` and `exec`, run in forked children.
//!
//! Stage 1 joins and creates namespaces; a PID namespace only applies to children, so
//! stage 1 then forks stage 2 (the container's pid 1), reports its host pid and exits.
//! Stage 2 waits for the runtime to put it in its cgroup, builds the container (rootfs,
//! pivot_root, masks, console…), drops privileges, says `Ready`, and then — for
//! `create` — blocks opening the exec fifo for writing until `start` opens it for
//! reading, and `execve`s the user program.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use super::channel::{Channel, ToInit, ToRuntime};
use super::{finalize, fork, tty};
use crate::container::{OciState, Status};
use crate::error::{Error, Result, SysContext};
use crate::hooks::{self, Kind};
use crate::namespaces::{self, Plan};
use crate::rootfs;
use crate::seccomp::Program;
use crate::syscall::{LinuxSyscall, Syscall};

/// Everything the container's processes need, prepared by the runtime before forking.
#[derive(Debug)]
pub struct InitArgs<'a> {
    /// The container id.
    pub id: &'a str,
    /// The config.
    pub spec: &'a Spec,
    /// The bundle directory.
    pub bundle: &'a Path,
    /// The rootfs directory.
    pub rootfs: PathBuf,
    /// Namespaces to join and create.
    pub plan: Plan,
    /// The exec fifo (`None` for exec: no wait for start).
    pub fifo: Option<PathBuf>,
    /// Connected console socket, if `process.terminal`.
    pub console: Option<RawFd>,
    /// fds to make the process's stdin, stdout, stderr.
    pub stdio: Option<[RawFd; 3]>,
    /// The compiled seccomp profile.
    pub seccomp: Option<&'a Program>,
    /// Extra fds to pass.
    pub preserve_fds: u32,
    /// For exec: the process to run instead of `spec.process`.
    pub process: Option<&'a oci_spec::runtime::Process>,
}

/// Stage 1: namespaces, then stage 2 (in a new child when there is a PID namespace).
/// Returns the exit code of this process.
pub fn stage1(args: &InitArgs<'_>, chan: &mut Channel) -> i32 {
    if let Err(e) = namespaces::enter(&args.plan, &LinuxSyscall) {
        let _ = chan.send(&ToRuntime::Error(e.to_string()));
        return 1;
    }
    if args.plan.has_pid() {
        let forked = fork::run_in_child(|| stage2(args, chan));
        match forked {
            Ok(pid) => match chan.send(&ToRuntime::Pid(pid.as_raw())) {
                Ok(()) => 0,
                Err(_) => 1,
            },
            Err(e) => {
                let _ = chan.send(&ToRuntime::Error(e.to_string()));
                1
            }
        }
    } else {
        match chan.send(&ToRuntime::Pid(nix::unistd::getpid().as_raw())) {
            Ok(()) => stage2(args, chan),
            Err(_) => 1,
        }
    }
}

fn stage2(args: &InitArgs<'_>, chan: &mut Channel) -> i32 {
    let result = if args.process.is_some() {
        exec_process(args, chan)
    } else {
        init(args, chan)
    };
    let Err(e) = result;
    if chan.send(&ToRuntime::Error(e.to_string())).is_err() {
        eprintln!("minik-oci: container {}: {e}", args.id);
    }
    1
}

fn wait_go(chan: &mut Channel) -> Result<i32> {
    match chan.recv::<ToInit>()? {
        Some(ToInit::Go { pid }) => Ok(pid),
        other => Err(Error::Init(format!(
            "expected the go-ahead from the runtime, got {other:?}"
        ))),
    }
}

fn dup_stdio(stdio: Option<[RawFd; 3]>) -> Result<()> {
    for (target, fd) in stdio.into_iter().flatten().enumerate() {
        if fd != target as RawFd {
            // SAFETY: dup2 onto 0..2 of fds the caller keeps open across the fork.
            let rc = unsafe { libc::dup2(fd, target as RawFd) };
            nix::Error::result(rc).sys(|| format!("dup the stdio fd {fd} onto {target}"))?;
        }
    }
    Ok(())
}

fn console_size(p: &oci_spec::runtime::Process) -> Option<tty::Size> {
    p.console_size().as_ref().map(|b| tty::Size {
        height: u16::try_from(b.height()).unwrap_or(u16::MAX),
        width: u16::try_from(b.width()).unwrap_or(u16::MAX),
    })
}

fn init(args: &InitArgs<'_>, chan: &mut Channel) -> Result<Infallible> {
    let spec = args.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process is missing"))?;
    let pid = wait_go(chan)?;
    let state = |status| {
        let mut s = OciState::new(args.id, status, pid, args.bundle.to_path_buf());
        s.annotations = spec.annotations().clone().unwrap_or_default();
        s
    };
    dup_stdio(args.stdio)?;
    nix::unistd::setsid().sys(|| "setsid".into())?;
    let sys = LinuxSyscall;
    if args.plan.new_cgroup {
        sys.unshare(CloneFlags::CLONE_NEWCGROUP)
            .sys(|| "create the cgroup namespace".into())?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys.sethostname(h).sys(|| format!("sethostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys.setdomainname(d)
            .sys(|| format!("setdomainname {d:?}"))?;
    }
    rootfs::prepare(spec, &args.rootfs, args.bundle, &sys)?;
    let fifo: Option<OwnedFd> = match &args.fifo {
        Some(f) => Some(
            open(f, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .sys(|| format!("open {}", f.display()))?,
        ),
        None => None,
    };
    if !hooks::of(spec, Kind::Prestart).is_empty()
        || !hooks::of(spec, Kind::CreateRuntime).is_empty()
    {
        chan.send(&ToRuntime::RunHooks)?;
        match chan.recv::<ToInit>()? {
            Some(ToInit::HooksDone) => {}
            other => {
                return Err(Error::Init(format!(
                    "expected the hooks to be done, got {other:?}"
                )))
            }
        }
    }
    hooks::run(spec, Kind::CreateContainer, &state(Status::Creating))?;
    rootfs::pivot(&args.rootfs, &sys)?;
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (key, value) in sysctl {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            sys.write_file(&path, value)
                .sys(|| format!("sysctl {key}={value}"))?;
        }
    }
    rootfs::finish(spec, &sys)?;
    if process.terminal().unwrap_or(false) {
        let socket = args.console.ok_or_else(|| {
            Error::Other("process.terminal is set but there is no --console-socket".into())
        })?;
        tty::setup_console(socket, console_size(process))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        sys.write_file(Path::new("/proc/self/oom_score_adj"), &adj.to_string())
            .sys(|| "set oom_score_adj".into())?;
    }
    let exec = finalize::prepare(&finalize::Options {
        process,
        seccomp: args.seccomp,
        preserve_fds: args.preserve_fds,
    })?;
    chan.send(&ToRuntime::Ready)?;
    if let Some(fifo) = fifo {
        let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
        // Blocks until `start` opens the fifo for reading.
        let w: OwnedFd = open(
            path.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .sys(|| "open the exec fifo (is /proc mounted in the container?)".into())?;
        nix::unistd::write(&w, b"0").sys(|| "write the exec fifo".into())?;
    }
    hooks::run(spec, Kind::StartContainer, &state(Status::Running))?;
    let late = process
        .no_new_privileges()
        .unwrap_or(false)
        .then_some(args.seccomp)
        .flatten();
    finalize::exec(exec, late)
}

fn exec_process(args: &InitArgs<'_>, chan: &mut Channel) -> Result<Infallible> {
    let process = args
        .process
        .ok_or_else(|| Error::Other("no process to exec".into()))?;
    wait_go(chan)?;
    dup_stdio(args.stdio)?;
    if process.terminal().unwrap_or(false) {
        let socket = args
            .console
            .ok_or_else(|| Error::Other("--tty needs a --console-socket".into()))?;
        nix::unistd::setsid().sys(|| "setsid".into())?;
        tty::setup_console(socket, console_size(process))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        LinuxSyscall
            .write_file(Path::new("/proc/self/oom_score_adj"), &adj.to_string())
            .sys(|| "set oom_score_adj".into())?;
    }
    let exec = finalize::prepare(&finalize::Options {
        process,
        seccomp: args.seccomp,
        preserve_fds: args.preserve_fds,
    })?;
    chan.send(&ToRuntime::Ready)?;
    let late = process
        .no_new_privileges()
        .unwrap_or(false)
        .then_some(args.seccomp)
        .flatten();
    finalize::exec(exec, late)
}
