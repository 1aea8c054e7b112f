//! `/exec` and `/attach` over WebSocket (or SPDY, [`super::spdyexec`]). Exec runs `RUNTIME exec ID -- CMD…` with pipes
//! for stdin/stdout/stderr (or, with `tty`, `--tty --console-socket` and the pty master it
//! hands back, see [`super::pty`]); the process's exit code becomes the final status
//! (kubectl exits with it). The query is the kubelet's (`command`, `input`, `output`,
//! `error`, `tty`; kubectl's `stdin`/`stdout`/`stderr` are accepted too).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use minik_shared::streams::{channel, status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::ws::{self, Input, Output, Session};
use super::{flag, pods, query, Body, Ctx, HttpError};

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct Streams {
    /// Attach stdin.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
    /// A terminal.
    pub tty: bool,
}

/// Handles `/exec/…` (`attach` false) and `/attach/…`.
pub fn serve(
    ctx: Arc<Ctx>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    attach: bool,
) -> Response<Body> {
    match prepare(&ctx, req, ns, pod, uid, container, attach) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn prepare(
    ctx: &Arc<Ctx>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    attach: bool,
) -> Result<Response<Body>, HttpError> {
    let q = query(&req);
    let streams = Streams {
        stdin: flag(&q, &["input", "stdin"]),
        stdout: flag(&q, &["output", "stdout"]),
        stderr: flag(&q, &["error", "stderr"]),
        tty: flag(&q, &["tty"]),
    };
    let command: Vec<String> = q.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    if !attach && command.is_empty() {
        return Err(HttpError::bad_request("you must specify at least 1 command"));
    }
    if !streams.stdin && !streams.stdout && !streams.stderr {
        return Err(HttpError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
    }
    let found = pods::find(&ctx.cfg, ns, pod, uid)?;
    let id = found.running_id(container)?;
    let (resp, protocol) = if ws::is_websocket(&req) {
        let (r, p) = ws::accept(&req)?;
        (r, Some(p))
    } else if super::spdyexec::is_spdy(&req) {
        (super::spdyexec::accept(&req)?, None)
    } else {
        return Err(HttpError::bad_request(
            "exec and attach need an upgrade: WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) or SPDY/3.1 (v4.channel.k8s.io)",
        ));
    };
    let (ctx, ns, pod, container) = (ctx.clone(), ns.to_string(), pod.to_string(), container.to_string());
    let restart = found.status(&container).map(|s| s.restart_count).unwrap_or(0);
    let log = found.log_path(&ctx.cfg, &container, restart);
    let spec_tty = found.spec(&container).is_some_and(|c| c.tty.unwrap_or(false));
    tokio::spawn(async move {
        let session = match protocol {
            Some(p) => ws::run(req, p).await,
            None => super::spdyexec::run(req, streams.clone()).await,
        };
        let Some(session) = session else { return };
        if attach {
            let follow = super::attach::Target { ns, pod, container, restart, log, tty: streams.tty || spec_tty };
            super::attach::run(&ctx, follow, streams, session).await;
        } else if streams.tty {
            super::pty::run(&ctx, &id, &command, streams, session).await;
        } else {
            run_piped(&ctx, &id, &command, streams, session).await;
        }
    });
    Ok(resp)
}

/// Copies a pipe to a channel until EOF.
pub fn pump<R: AsyncRead + Unpin + Send + 'static>(mut r: R, ch: u8, out: mpsc::Sender<Output>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.send(Output::Data(ch, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Waits for output pumps, but not forever once the process is gone (a background
/// child may hold the pipes open).
pub async fn drain(pumps: Vec<tokio::task::JoinHandle<()>>) {
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
}

async fn run_piped(ctx: &Ctx, id: &str, command: &[String], streams: Streams, mut s: Session) {
    let mut cmd = tokio::process::Command::new(&ctx.runtime.bin);
    cmd.arg("--root").arg(&ctx.runtime.root).arg("exec").arg(id).arg("--").args(command);
    cmd.stdin(if streams.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(if streams.stdout { Stdio::piped() } else { Stdio::null() })
        .stderr(if streams.stderr { Stdio::piped() } else { Stdio::null() })
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot run the OCI runtime {}: {e}", ctx.runtime.bin.display());
            let _ = s.out.send(Output::Status(status::failure(&msg))).await;
            return;
        }
    };
    tracing::info!(container = id, ?command, "exec");
    let mut pumps = Vec::new();
    if let Some(o) = child.stdout.take() {
        pumps.push(pump(o, channel::STDOUT, s.out.clone()));
    }
    if let Some(e) = child.stderr.take() {
        pumps.push(pump(e, channel::STDERR, s.out.clone()));
    }
    let mut stdin = child.stdin.take();
    let mut client = true;
    let code = loop {
        tokio::select! {
            input = s.input.recv(), if client => match input {
                Some(Input::Stdin(d)) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&d).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some(Input::StdinClosed) => stdin = None,
                Some(Input::Resize(_)) => {}
                None => {
                    // The client left: end the command as the kubelet's streams would.
                    let _ = child.start_kill();
                    stdin = None;
                    client = false;
                }
            },
            st = child.wait() => break st.ok().and_then(|s| s.code()).unwrap_or(137),
        }
    };
    drop(stdin);
    drain(pumps).await;
    let _ = s.out.send(Output::Status(status::for_exit(code))).await;
}
