//! `process.terminal`: a pty opened inside the container (its own devpts), the master
//! sent over `--console-socket` with SCM_RIGHTS (runc's protocol: the payload is the
//! pty's name), the slave made the process's stdio and controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::{open, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;

use crate::error::{Error, Result, SysContext};

/// Window size from `process.consoleSize`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Size {
    /// Rows.
    pub height: u16,
    /// Columns.
    pub width: u16,
}

/// Opens a pty, sends its master on `socket`, and makes the slave fds 0, 1, 2 and the
/// controlling terminal of this (session-leader) process.
pub fn setup_console(socket: RawFd, size: Option<Size>) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .sys(|| "open /dev/ptmx".into())?;
    grantpt(&master).sys(|| "grantpt".into())?;
    unlockpt(&master).sys(|| "unlockpt".into())?;
    let name = ptsname_r(&master).sys(|| "ptsname".into())?;
    let slave: OwnedFd = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .sys(|| format!("open {name}"))?;
    if let Some(s) = size {
        let ws = libc::winsize {
            ws_row: s.height,
            ws_col: s.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, valid for the call.
        let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        nix::Error::result(rc).sys(|| "set the console size".into())?;
    }
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .sys(|| "send the pty master over the console socket".into())?;
    drop(master);
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard fds; the slave stays open until it is dropped.
        let rc = unsafe { libc::dup2(slave.as_raw_fd(), fd) };
        nix::Error::result(rc).sys(|| format!("dup the pty onto fd {fd}"))?;
    }
    // SAFETY: TIOCSCTTY takes an int argument; fd 0 is the pty slave.
    let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    nix::Error::result(rc).sys(|| "make the pty the controlling terminal".into())?;
    Ok(())
}

/// Connects to the console socket (before the fork, while host paths are visible).
pub fn connect(path: &std::path::Path) -> Result<std::os::unix::net::UnixStream> {
    std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Error::io("connect to the console socket", path, e))
}
