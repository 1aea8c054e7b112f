//! The last steps before a container process runs its program, shared by `create`'s
//! init and `exec`: rlimits, umask, `no_new_privs`, seccomp, the bounding set, the
//! uid/gid switch, capabilities, cwd, finding the executable, fds, signals, `execve`.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::Process;

use crate::capabilities;
use crate::error::{Error, Result, SysContext};
use crate::rlimits;
use crate::seccomp::Program;

/// The default PATH when `process.env` has none (runc's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A resolved program, ready for `execve`.
#[derive(Debug)]
pub struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::config(format!("{what} {s:?} contains a NUL byte")))
}

/// Finds `arg0` like `execvp`, but with the container's own PATH.
pub fn lookup(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let executable = |p: &Path| {
        p.metadata().is_ok_and(|m| m.is_file())
            && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(Error::Other(format!(
                "exec: {arg0:?}: no such executable file"
            )))
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|p| executable(p))
        .ok_or_else(|| {
            Error::Other(format!(
                "exec: {arg0:?}: executable file not found in $PATH"
            ))
        })
}

/// What to do before the program runs.
#[derive(Debug)]
pub struct Options<'a> {
    /// The process (user, caps, rlimits, cwd, args, env).
    pub process: &'a Process,
    /// The compiled seccomp profile, if any.
    pub seccomp: Option<&'a Program>,
    /// Extra fds (3..3+N) to keep open.
    pub preserve_fds: u32,
}

/// Runs every step up to (not including) the wait for `start` and `execve`. With
/// `no_new_privs` seccomp is left for [`exec`] (as late as possible, as runc does);
/// without it the filter must go in while the process still has CAP_SYS_ADMIN.
pub fn prepare(opts: &Options<'_>) -> Result<Exec> {
    let p = opts.process;
    rlimits::apply(p.rlimits().as_deref().unwrap_or_default())?;
    let umask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    let nnp = p.no_new_privileges().unwrap_or(false);
    if nnp {
        nix::sys::prctl::set_no_new_privs().sys(|| "set no_new_privs".into())?;
    } else if let Some(s) = opts.seccomp {
        s.install()?;
    }
    let sets = capabilities::sets(p.capabilities().as_ref());
    nix::sys::prctl::set_keepcaps(true).sys(|| "keep capabilities across setuid".into())?;
    capabilities::drop_bounding(&sets.bounding)?;
    let user = p.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).sys(|| "setgroups".into())?;
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).sys(|| format!("setgid {gid}"))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).sys(|| format!("setuid {uid}"))?;
    nix::sys::prctl::set_keepcaps(false).sys(|| "reset keepcaps".into())?;
    capabilities::apply(&sets)?;
    nix::unistd::chdir(p.cwd()).sys(|| format!("chdir to process.cwd {}", p.cwd().display()))?;
    let args = p.args().as_deref().unwrap_or_default();
    let env = p.env().as_deref().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::config("process.args is empty"))?;
    let path = lookup(arg0, env)?;
    keep_only_fds(opts.preserve_fds);
    Ok(Exec {
        path: CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::config(format!("process.args[0] {arg0:?} contains a NUL byte")))?,
        argv: args
            .iter()
            .map(|a| cstring(a, "process.args entry"))
            .collect::<Result<_>>()?,
        envp: env
            .iter()
            .map(|e| cstring(e, "process.env entry"))
            .collect::<Result<_>>()?,
    })
}

/// Marks every fd from 3 + `preserve` up close-on-exec, and clears it on 3..3+preserve.
fn keep_only_fds(preserve: u32) {
    for fd in 3..3 + preserve as i32 {
        // SAFETY: F_SETFD on an fd number only changes its flags (EBADF if not open).
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    let first = 3 + preserve;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on open fds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            for fd in fds.into_iter().filter(|fd| *fd >= first as i32) {
                // SAFETY: as above, per fd.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
}

/// Resets signal dispositions and the mask (an ignored SIGPIPE would survive execve).
fn reset_signals() {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound; no handler code is involved.
        let _ = unsafe { sigaction(sig, &dfl) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Installs a late seccomp filter (if given), then `execve`s the program.
pub fn exec(exec: Exec, late_seccomp: Option<&Program>) -> Result<Infallible> {
    if let Some(s) = late_seccomp {
        s.install()?;
    }
    reset_signals();
    match nix::unistd::execve(&exec.path, &exec.argv, &exec.envp) {
        Err(e) => Err(Error::sys(format!("exec {:?}", exec.path), e)),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_uses_the_containers_path() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert_eq!(lookup("sh", &env).unwrap(), Path::new("/bin/sh"));
        assert_eq!(lookup("/bin/sh", &[]).unwrap(), Path::new("/bin/sh"));
        let e = lookup("no-such-program", &env).unwrap_err().to_string();
        assert!(e.contains("executable file not found in $PATH"), "{e}");
        assert!(lookup("/nonexistent/x", &env).is_err());
        assert!(lookup("sh", &["PATH=/nonexistent".into()]).is_err());
    }
}
