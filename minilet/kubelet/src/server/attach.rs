//! `/attach`: the container's output as it happens. The shim writes the container's
//! stdout and stderr into the CRI log, so attaching follows the current attempt's log
//! from its end and sends each new line on the channel of its stream (everything on
//! stdout with a terminal). It ends with a success status when that attempt stops.
//! The shim does not keep the container's stdin open, so stdin is refused.

use std::path::PathBuf;
use std::time::Duration;

use minik_shared::streams::{channel, status};

use super::exec::Streams;
use super::logs::Follower;
use super::pods;
use super::ws::{Output, Session};
use super::Ctx;

/// The attempt to attach to.
pub struct Target {
    /// Namespace.
    pub ns: String,
    /// Pod.
    pub pod: String,
    /// Container.
    pub container: String,
    /// Its restart count (the attempt).
    pub restart: i32,
    /// Its CRI log.
    pub log: PathBuf,
    /// Everything goes to stdout.
    pub tty: bool,
}

/// Streams the target's output until it stops or the client leaves.
pub async fn run(ctx: &Ctx, t: Target, streams: Streams, mut s: Session) {
    if streams.stdin {
        let msg = format!(
            "minilet cannot attach to the stdin of container {:?}: its shim does not keep the container's stdin open; \
             attach without -i to follow its output, or use kubectl exec -i",
            t.container
        );
        let _ = s.out.send(Output::Status(status::failure(&msg))).await;
        return;
    }
    let mut f = match Follower::open_at_end(&t.log) {
        Ok(f) => f,
        Err(e) => {
            let _ = s.out.send(Output::Status(status::failure(&format!("cannot read {}: {e}", t.log.display())))).await;
            return;
        }
    };
    tracing::info!(pod = %t.pod, container = %t.container, "attach");
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut checks = 0u32;
    loop {
        tokio::select! {
            input = s.input.recv() => if input.is_none() { return },
            _ = tick.tick() => {}
        }
        let lines = match f.poll() {
            Ok(l) => l,
            Err(e) => {
                let _ = s.out.send(Output::Status(status::failure(&format!("reading the log: {e}")))).await;
                return;
            }
        };
        for l in lines {
            let ch = if l.stream == "stderr" && !t.tty { channel::STDERR } else { channel::STDOUT };
            let wanted = if ch == channel::STDERR { streams.stderr } else { streams.stdout };
            if wanted && s.out.send(Output::Data(ch, format!("{}\n", l.message).into_bytes())).await.is_err() {
                return;
            }
        }
        checks += 1;
        if checks.is_multiple_of(5) {
            let (cfg, ns, pod, c, r) = (ctx.cfg.clone(), t.ns.clone(), t.pod.clone(), t.container.clone(), t.restart);
            let alive = tokio::task::spawn_blocking(move || pods::still_running(&cfg, &ns, &pod, &c, r)).await.unwrap_or(false);
            if !alive {
                for l in f.poll().unwrap_or_default() {
                    let ch = if l.stream == "stderr" && !t.tty { channel::STDERR } else { channel::STDOUT };
                    let _ = s.out.send(Output::Data(ch, format!("{}\n", l.message).into_bytes())).await;
                }
                let _ = s.out.send(Output::Status(status::success())).await;
                return;
            }
        }
    }
}
