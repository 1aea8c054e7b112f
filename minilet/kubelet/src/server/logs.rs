//! `/containerLogs/{ns}/{pod}/{container}`: the container's CRI log as plain text, as the
//! kubelet serves it: `previous` reads the attempt before the current one, `tailLines`,
//! `limitBytes`, `sinceSeconds`/`sinceTime` and `timestamps` filter and format, and
//! `follow` keeps the response open, sending lines as the shim writes them, until that
//! attempt stops. [`Follower`] reads a log file incrementally (rotation included).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;

use super::{full, param, pods, query, Body, Ctx, HttpError};
use crate::logs::{parse_line, LogLine};
use crate::timefmt::rfc3339_nano;

/// Reads a CRI log file as it grows, joining partial lines; follows a rotation.
pub struct Follower {
    path: PathBuf,
    file: File,
    ino: u64,
    buf: Vec<u8>,
    pending: Option<LogLine>,
}

impl Follower {
    /// From the start of the file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let ino = file.metadata()?.ino();
        Ok(Follower { path: path.to_path_buf(), file, ino, buf: Vec::new(), pending: None })
    }

    /// From the end of the file (only what is written from now on).
    pub fn open_at_end(path: &Path) -> std::io::Result<Self> {
        let mut f = Self::open(path)?;
        f.file.seek(SeekFrom::End(0))?;
        Ok(f)
    }

    fn read_lines(&mut self, out: &mut Vec<LogLine>) -> std::io::Result<()> {
        self.file.read_to_end(&mut self.buf)?;
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=nl).collect();
            let Some(l) = parse_line(String::from_utf8_lossy(&raw[..raw.len() - 1]).as_ref()) else { continue };
            match self.pending.take() {
                Some(mut p) => {
                    p.message.push_str(&l.message);
                    p.partial = l.partial;
                    if p.partial { self.pending = Some(p) } else { out.push(p) }
                }
                None if l.partial => self.pending = Some(l),
                None => out.push(l),
            }
        }
        Ok(())
    }

    /// The complete lines written since the last call.
    pub fn poll(&mut self) -> std::io::Result<Vec<LogLine>> {
        let mut out = Vec::new();
        self.read_lines(&mut out)?;
        // Rotated: the old file is drained; go on with the new one from its start.
        if let Ok(m) = std::fs::metadata(&self.path) {
            if m.ino() != self.ino {
                if let Ok(f) = File::open(&self.path) {
                    self.ino = m.ino();
                    self.file = f;
                    self.read_lines(&mut out)?;
                }
            }
        }
        Ok(out)
    }
}

struct Options {
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail: Option<usize>,
    limit: Option<usize>,
    since: Option<String>,
}

fn options(q: &[(String, String)]) -> Result<Options, HttpError> {
    let num = |k: &str| -> Result<Option<i64>, HttpError> {
        param(q, k).map(|v| v.parse::<i64>().map_err(|_| HttpError::bad_request(format!("invalid {k}: {v:?}")))).transpose()
    };
    let since = match (num("sinceSeconds")?, param(q, "sinceTime")) {
        (Some(s), _) => Some(rfc3339_nano(SystemTime::now() - Duration::from_secs(s.max(0) as u64))),
        (None, Some(t)) if !t.contains('.') => Some(t.replace('Z', ".000000000Z")),
        (None, Some(t)) => Some(t.to_string()),
        _ => None,
    };
    Ok(Options {
        follow: super::flag(q, &["follow"]),
        previous: super::flag(q, &["previous"]),
        timestamps: super::flag(q, &["timestamps"]),
        tail: num("tailLines")?.map(|n| n.max(0) as usize),
        limit: num("limitBytes")?.map(|n| n.max(0) as usize),
        since,
    })
}

fn format(lines: &[LogLine], timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        if timestamps {
            out.extend_from_slice(l.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.message.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Handles the request.
pub async fn serve(ctx: Arc<Ctx>, req: &Request<Incoming>, ns: &str, pod: &str, container: &str) -> Response<Body> {
    let q = query(req);
    let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
    let prepared = tokio::task::spawn_blocking({
        let ctx = ctx.clone();
        move || prepare(&ctx, &q, &ns, &pod, &container).map(|p| (p, ns, pod, container))
    })
    .await
    .unwrap_or_else(|e| Err(HttpError::internal(e.to_string())));
    let (p, ns, pod, container) = match prepared {
        Ok(p) => p,
        Err(e) => return e.response(),
    };
    let mut resp = match p.follower {
        None => Response::new(full(Bytes::from(p.initial))),
        Some(follower) => {
            let (tx, rx) = mpsc::channel::<Bytes>(16);
            tokio::spawn(follow(ctx, follower, p.opts, p.restart, (ns, pod, container), p.initial, tx));
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
            });
            Response::new(StreamBody::new(stream).boxed())
        }
    };
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    resp
}

struct Prepared {
    initial: Vec<u8>,
    follower: Option<Follower>,
    opts: Options,
    restart: i32,
}

fn prepare(ctx: &Ctx, q: &[(String, String)], ns: &str, pod: &str, container: &str) -> Result<Prepared, HttpError> {
    let opts = options(q)?;
    let found = pods::find(&ctx.cfg, ns, pod, None)?;
    let st = found.status(container)?;
    let restart = if opts.previous {
        if st.restart_count == 0 {
            return Err(HttpError::bad_request(format!("previous terminated container {container:?} in pod {pod:?} not found")));
        }
        st.restart_count - 1
    } else {
        st.restart_count
    };
    let path = found.log_path(&ctx.cfg, container, restart);
    if !path.exists() {
        let why = pods::waiting_reason(&st).unwrap_or("ContainerCreating");
        return Err(HttpError::bad_request(format!("container {container:?} in pod {pod:?} is waiting to start: {why}")));
    }
    let mut lines = Vec::new();
    for i in (1..=ctx.cfg.container_log_max_files).rev() {
        let rotated = PathBuf::from(format!("{}.{i}", path.display()));
        if let Ok(mut f) = Follower::open(&rotated) {
            lines.extend(f.poll().map_err(|e| HttpError::internal(e.to_string()))?);
        }
    }
    let mut f = Follower::open(&path).map_err(|e| HttpError::internal(format!("{}: {e}", path.display())))?;
    lines.extend(f.poll().map_err(|e| HttpError::internal(e.to_string()))?);
    if let Some(since) = &opts.since {
        lines.retain(|l| l.time.as_str() >= since.as_str());
    }
    if let Some(n) = opts.tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut initial = format(&lines, opts.timestamps);
    if let Some(limit) = opts.limit {
        initial.truncate(limit);
    }
    let running = st.state.as_ref().is_some_and(|s| s.running.is_some());
    let follower = (opts.follow && !opts.previous && running).then_some(f);
    Ok(Prepared { initial, follower, opts, restart })
}

async fn follow(
    ctx: Arc<Ctx>,
    mut f: Follower,
    opts: Options,
    restart: i32,
    (ns, pod, container): (String, String, String),
    initial: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut sent = initial.len();
    if !initial.is_empty() && tx.send(Bytes::from(initial)).await.is_err() {
        return;
    }
    let mut rounds = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rounds += 1;
        let alive = if rounds.is_multiple_of(5) {
            let (cfg, ns, pod, c) = (ctx.cfg.clone(), ns.clone(), pod.clone(), container.clone());
            tokio::task::spawn_blocking(move || pods::still_running(&cfg, &ns, &pod, &c, restart)).await.unwrap_or(false)
        } else {
            true
        };
        let mut chunk = format(&f.poll().unwrap_or_default(), opts.timestamps);
        if let Some(limit) = opts.limit {
            chunk.truncate(limit.saturating_sub(sent));
        }
        sent += chunk.len();
        if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
            return;
        }
        if !alive || opts.limit.is_some_and(|l| sent >= l) || tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::CriLogWriter;

    #[test]
    fn follower_reads_growth_joins_partials_and_follows_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("0.log");
        let mut w = CriLogWriter::open(&p, 200, 2).expect("open");
        w.write_line("stdout", b"one", false).expect("write");
        let mut f = Follower::open(&p).expect("follow");
        assert_eq!(f.poll().expect("poll").iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["one"]);
        w.write_line("stderr", b"par", true).expect("write");
        assert!(f.poll().expect("poll").is_empty(), "a partial line waits for its end");
        w.write_line("stderr", b"tial", false).expect("write");
        let got = f.poll().expect("poll");
        assert_eq!((got[0].message.as_str(), got[0].stream.as_str()), ("partial", "stderr"));
        // Past 200 bytes the writer rotates; the follower drains the old file, then the new.
        for i in 0..3 {
            w.write_line("stdout", format!("line-{i}").as_bytes(), false).expect("write");
        }
        assert!(dir.path().join("0.log.1").exists(), "rotated");
        let msgs: Vec<String> = f.poll().expect("poll").into_iter().map(|l| l.message).collect();
        assert_eq!(msgs, ["line-0", "line-1", "line-2"]);
        let at_end = Follower::open_at_end(&p).expect("open").poll().expect("poll");
        assert!(at_end.is_empty());
    }

    #[test]
    fn formats_with_timestamps() {
        let l = parse_line("2026-01-01T00:00:00.000000001Z stdout F hi").expect("line");
        assert_eq!(format(std::slice::from_ref(&l), true), b"2026-01-01T00:00:00.000000001Z hi\n");
        assert_eq!(format(&[l], false), b"hi\n");
    }
}
