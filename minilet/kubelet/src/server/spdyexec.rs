//! Exec and attach over SPDY/3.1 (`v4.channel.k8s.io`), what kubectl before 1.30 uses
//! and newer ones fall back to when a server refuses WebSocket: the client opens one
//! SPDY stream per channel (`streamType` error, stdin, stdout, stderr, resize), and the
//! streams are adapted to the same [`Session`] the WebSocket path gives exec and attach.
//! The final status goes on the error stream, then every stream is finished.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use minik_shared::streams::{channel, stream_type, TerminalSize, SPDY_UPGRADE, STREAM_PROTOCOL_HEADER, STREAM_TYPE_HEADER};
use tokio::sync::mpsc;

use super::exec::Streams;
use super::spdyconn::{self, Stream, StreamWriter};
use super::ws::{Input, Output, Session};
use super::{full, Body, HttpError};

const PROTOCOL: &str = "v4.channel.k8s.io";

/// Whether the request asks for a SPDY upgrade.
pub fn is_spdy(req: &Request<Incoming>) -> bool {
    req.headers().get(UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case(SPDY_UPGRADE))
}

/// Checks the offered protocols and builds the 101 answer.
pub fn accept(req: &Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let offered: Vec<&str> = req
        .headers()
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .collect();
    if !offered.contains(&PROTOCOL) {
        return Err(HttpError::bad_request(format!(
            "unable to upgrade: none of the offered stream protocols {offered:?} is served; minilet speaks {PROTOCOL} over SPDY"
        )));
    }
    let mut r = Response::new(full(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    r.headers_mut().insert(UPGRADE, HeaderValue::from_static(SPDY_UPGRADE));
    r.headers_mut().insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(PROTOCOL));
    Ok(r)
}

fn expected(s: &Streams) -> usize {
    1 + usize::from(s.stdin) + usize::from(s.stdout) + usize::from(s.stderr && !s.tty) + usize::from(s.tty)
}

/// Waits for the upgrade and the client's streams; returns the session over them.
pub async fn run(req: Request<Incoming>, want: Streams) -> Option<Session> {
    let upgraded = match hyper::upgrade::on(req).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "SPDY upgrade failed");
            return None;
        }
    };
    let (st_tx, mut st_rx) = mpsc::unbounded_channel::<Stream>();
    let (in_tx, in_rx) = mpsc::channel::<Input>(64);
    let conn_in = in_tx.clone();
    tokio::spawn(async move {
        spdyconn::serve(TokioIo::new(upgraded), move |s| {
            let _ = st_tx.send(s);
        })
        .await;
        drop(conn_in);
    });
    let mut writers: Vec<(String, StreamWriter)> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while writers.len() < expected(&want) {
        let s = match tokio::time::timeout_at(deadline, st_rx.recv()).await {
            Ok(Some(s)) => s,
            _ => {
                tracing::warn!(got = writers.len(), "SPDY exec: the client did not open its streams");
                return None;
            }
        };
        let kind = s.header(STREAM_TYPE_HEADER).unwrap_or("").to_string();
        writers.push((kind.clone(), s.writer()));
        let tx = in_tx.clone();
        let mut data = s.data;
        match kind.as_str() {
            stream_type::STDIN => {
                tokio::spawn(async move {
                    while let Some(d) = data.recv().await {
                        if tx.send(Input::Stdin(d)).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(Input::StdinClosed).await;
                });
            }
            stream_type::RESIZE => {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(d) = data.recv().await {
                        buf.extend_from_slice(&d);
                        // JSON objects one after another (Go's json.Encoder, newline-separated).
                        while let Some(end) = buf.iter().position(|b| *b == b'}') {
                            let obj: Vec<u8> = buf.drain(..=end).collect();
                            if let Some(size) = TerminalSize::parse(obj.trim_ascii()) {
                                if tx.send(Input::Resize(size)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            _ => {}
        }
    }
    drop(in_tx);
    let (out_tx, mut out_rx) = mpsc::channel::<Output>(64);
    tokio::spawn(async move {
        let find = |k: &str| writers.iter().find(|(kind, _)| kind == k).map(|(_, w)| w.clone());
        let (stdout, stderr, error) = (find(stream_type::STDOUT), find(stream_type::STDERR), find(stream_type::ERROR));
        while let Some(o) = out_rx.recv().await {
            match o {
                Output::Data(channel::STDOUT, d) => {
                    if let Some(w) = &stdout {
                        w.send(&d).await;
                    }
                }
                Output::Data(channel::STDERR, d) => {
                    if let Some(w) = stderr.as_ref().or(stdout.as_ref()) {
                        w.send(&d).await;
                    }
                }
                Output::Data(..) => {}
                Output::Status(s) => {
                    if let Some(w) = &error {
                        w.send(&s).await;
                    }
                    break;
                }
            }
        }
        for (_, w) in &writers {
            w.fin().await;
        }
    });
    Some(Session { input: in_rx, out: out_tx })
}
