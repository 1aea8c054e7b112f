//! Exec with a terminal: the runtime's `exec --tty --console-socket SOCK` opens a pty in
//! the container and sends its master over the unix socket (SCM_RIGHTS, runc's console
//! protocol, which minik-oci, crun and runc share). minilet copies the master to the
//! stdout channel, client stdin to the master, and applies resizes with `TIOCSWINSZ`.

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use minik_shared::streams::{channel, status, TerminalSize};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use tokio::io::AsyncReadExt;

use super::exec::Streams;
use super::ws::{Input, Output, Session};
use super::Ctx;

static SEQ: AtomicU32 = AtomicU32::new(0);

fn socket_path() -> std::path::PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("minilet-console-{}-{n}.sock", std::process::id()))
}

/// Receives one fd sent with SCM_RIGHTS.
fn recv_fd(sock: RawFd) -> std::io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::empty()).map_err(std::io::Error::from)?;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(std::io::Error::other("no file descriptor in the console socket message"))
}

fn resize(master: RawFd, s: TerminalSize) {
    let ws = libc::winsize { ws_row: s.height, ws_col: s.width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, valid for the call.
    unsafe {
        libc::ioctl(master, libc::TIOCSWINSZ, &ws);
    }
}

/// Runs `command` in container `id` with a terminal.
pub async fn run(ctx: &Ctx, id: &str, command: &[String], streams: Streams, mut s: Session) {
    let path = socket_path();
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            let _ = s.out.send(Output::Status(status::failure(&format!("console socket {}: {e}", path.display())))).await;
            return;
        }
    };
    let mut cmd = tokio::process::Command::new(&ctx.runtime.bin);
    cmd.arg("--root").arg(&ctx.runtime.root).arg("exec").arg("--tty").arg("--console-socket").arg(&path);
    cmd.arg(id).arg("--").args(command);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let spawned = cmd.spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            let msg = format!("cannot run the OCI runtime {}: {e}", ctx.runtime.bin.display());
            let _ = s.out.send(Output::Status(status::failure(&msg))).await;
            return;
        }
    };
    tracing::info!(container = id, ?command, "exec with a tty");
    let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
    let _ = std::fs::remove_file(&path);
    let master = match accepted {
        Ok(Ok((conn, _))) => {
            let std_conn = conn.into_std().and_then(|c| c.set_nonblocking(false).map(|()| c));
            match std_conn {
                Ok(c) => tokio::task::spawn_blocking(move || recv_fd(c.as_raw_fd())).await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
                Err(e) => Err(e),
            }
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("the runtime sent no terminal within 10s")),
    };
    let master = match master {
        Ok(m) => Arc::new(m),
        Err(e) => {
            let mut err = String::new();
            if let Some(mut se) = child.stderr.take() {
                let _ = tokio::time::timeout(Duration::from_secs(2), se.read_to_string(&mut err)).await;
            }
            let _ = child.start_kill();
            let msg = format!("cannot start a terminal in the container: {e} {}", err.trim());
            let _ = s.out.send(Output::Status(status::failure(msg.trim()))).await;
            return;
        }
    };
    // Reader: master → stdout channel (EIO once the terminal's last user is gone).
    let reader = {
        let (m, out) = (master.clone(), s.out.clone());
        let send = streams.stdout;
        tokio::task::spawn_blocking(move || {
            let Ok(dup) = m.try_clone() else { return };
            let mut f = std::fs::File::from(dup);
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) if send => {
                        if out.blocking_send(Output::Data(channel::STDOUT, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
        })
    };
    // Writer: stdin channel → master, on its own thread (writes may block).
    let (wtx, wrx) = std::sync::mpsc::channel::<Vec<u8>>();
    if let Ok(dup) = master.try_clone() {
        std::thread::spawn(move || {
            let mut f = std::fs::File::from(dup);
            while let Ok(d) = wrx.recv() {
                if f.write_all(&d).is_err() {
                    break;
                }
            }
        });
    }
    let mut client = true;
    let code = loop {
        tokio::select! {
            input = s.input.recv(), if client => match input {
                Some(Input::Stdin(d)) if streams.stdin => { let _ = wtx.send(d); }
                Some(Input::Resize(size)) => resize(master.as_raw_fd(), size),
                Some(_) => {}
                None => { client = false; let _ = child.start_kill(); }
            },
            st = child.wait() => break st.ok().and_then(|s| s.code()).unwrap_or(137),
        }
    };
    drop(wtx);
    drop(master);
    super::exec::drain(vec![reader]).await;
    let _ = s.out.send(Output::Status(status::for_exit(code))).await;
}
