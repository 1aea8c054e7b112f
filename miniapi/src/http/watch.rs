//! Streaming a [`WatchStream`] as newline-delimited `WatchEvent` JSON over a chunked
//! (HTTP/1.1) or streamed (HTTP/2) body, with BOOKMARKs and the server timeout.

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::negotiate::Output;
use crate::registry::WatchStream;
use crate::table::{partial_metadata, to_table};

struct Encoder {
    output: Output,
    first_table: bool,
}

impl Encoder {
    fn line(&mut self, ws: &WatchStream, ty: &str, obj: Value) -> Bytes {
        let object = match (ty, self.output) {
            ("BOOKMARK" | "ERROR", _) => obj,
            (_, Output::Table(include)) => {
                let t = to_table(ws.resource, &obj, include, self.first_table);
                self.first_table = false;
                t
            }
            (_, Output::PartialMetadata) => partial_metadata(&obj),
            _ => obj,
        };
        let mut s = json!({"type": ty, "object": object}).to_string();
        s.push('\n');
        Bytes::from(s)
    }
}

async fn run(mut ws: WatchStream, output: Output, tx: mpsc::Sender<Result<Bytes, Infallible>>) {
    let mut enc = Encoder {
        output,
        first_table: true,
    };
    let send = |b: Bytes| {
        let tx = tx.clone();
        async move { tx.send(Ok(b)).await.is_ok() }
    };
    let mut seen = ws.revision;
    for obj in std::mem::take(&mut ws.initial) {
        if !send(enc.line(&ws, "ADDED", obj)).await {
            return;
        }
    }
    if ws.initial_end_bookmark {
        let b = ws.bookmark(seen, true);
        if !send(enc.line(&ws, "BOOKMARK", b)).await {
            return;
        }
    }
    if let Some(err) = ws.error.take() {
        let _ = send(enc.line(&ws, "ERROR", err.to_status())).await;
        return;
    }
    // Everything at or below the start revision is in the initial state or the
    // replay; a live event there (an etcd watch catching up) would be a duplicate.
    let mut last_sent = ws.revision;
    for ev in std::mem::take(&mut ws.replay) {
        seen = seen.max(ev.revision);
        last_sent = last_sent.max(ev.revision);
        if let Some((ty, obj)) = ws.transform(&ev) {
            if !send(enc.line(&ws, ty, obj)).await {
                return;
            }
        }
    }
    let Some(mut live) = ws.live.take() else {
        return;
    };
    let deadline = tokio::time::sleep(ws.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(ws.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            r = live.recv() => match r {
                Ok(ev) => {
                    if ev.revision <= last_sent {
                        continue;
                    }
                    seen = seen.max(ev.revision);
                    last_sent = ev.revision;
                    if let Some((ty, obj)) = ws.transform(&ev) {
                        if !send(enc.line(&ws, ty, obj)).await {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "watcher lagged; closing");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick(), if ws.bookmarks => {
                let b = ws.bookmark(seen, false);
                if !send(enc.line(&ws, "BOOKMARK", b)).await {
                    return;
                }
            }
            _ = &mut deadline => return,
            _ = tx.closed() => return,
        }
    }
}

/// The response body of a watch.
pub fn body(ws: WatchStream, output: Output) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(run(ws, output, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}
