//! `/portForward/{ns}/{pod}`: kubectl's port-forward protocol (`portforward.k8s.io`) over
//! SPDY/3.1, as the kubelet serves it. For every local connection kubectl opens two
//! streams with the same `requestID` and `port`: an error stream (kubectl only reads it)
//! and a data stream. minilet connects to `127.0.0.1:PORT` from a thread inside the
//! pod's network namespace (the socket stays in that namespace, usable from any
//! thread), copies both ways with half-closes, and reports failures on the error stream.
//! A connection ends when the pod's side is done (the client gets one more second).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use minik_shared::netns::NetNs;
use minik_shared::streams::{stream_type, PORT_FORWARD_PROTOCOL_V1, PORT_HEADER, REQUEST_ID_HEADER, SPDY_UPGRADE, STREAM_PROTOCOL_HEADER, STREAM_TYPE_HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::spdyconn::{self, Stream};
use super::{full, pods, Body, Ctx, HttpError};

/// Handles the upgrade.
pub fn serve(ctx: Arc<Ctx>, req: Request<Incoming>, ns: &str, pod: &str, uid: Option<&str>) -> Response<Body> {
    match prepare(&ctx, req, ns, pod, uid) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn prepare(ctx: &Ctx, req: Request<Incoming>, ns: &str, pod: &str, uid: Option<&str>) -> Result<Response<Body>, HttpError> {
    let found = pods::find(&ctx.cfg, ns, pod, uid)?;
    let netns = found.netns().ok_or_else(|| HttpError::bad_request(format!("pod {pod} has no network yet")))?;
    let upgrade = req.headers().get(UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !upgrade.eq_ignore_ascii_case(SPDY_UPGRADE) {
        return Err(HttpError::bad_request(format!(
            "port-forward needs an Upgrade: {SPDY_UPGRADE} request with {STREAM_PROTOCOL_HEADER}: {PORT_FORWARD_PROTOCOL_V1} (got Upgrade: {upgrade:?})"
        )));
    }
    let offered = req
        .headers()
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .any(|p| p == PORT_FORWARD_PROTOCOL_V1);
    if !offered {
        let mut r = super::text(StatusCode::FORBIDDEN, &format!("unable to upgrade: unable to negotiate protocol: client supports none of the server's protocols ({PORT_FORWARD_PROTOCOL_V1})"));
        r.headers_mut().insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(PORT_FORWARD_PROTOCOL_V1));
        return Ok(r);
    }
    let mut r = Response::new(full(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    r.headers_mut().insert(UPGRADE, HeaderValue::from_static(SPDY_UPGRADE));
    r.headers_mut().insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(PORT_FORWARD_PROTOCOL_V1));
    let target = Arc::new(Target { netns, pod: found.name(), uid: found.record.uid.clone() });
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => return tracing::warn!(error = %e, "port-forward upgrade failed"),
        };
        tracing::info!(pod = %target.pod, "port-forward connection");
        let mut pairs: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
        spdyconn::serve(TokioIo::new(upgraded), move |s| {
            let kind = s.header(STREAM_TYPE_HEADER).unwrap_or("").to_string();
            // Without a requestID header (old clients) pair by stream ID, as the kubelet does.
            let id = match s.header(REQUEST_ID_HEADER) {
                Some(r) => r.to_string(),
                None if kind == stream_type::DATA => s.id.saturating_sub(2).to_string(),
                None => s.id.to_string(),
            };
            let slot = pairs.entry(id.clone()).or_default();
            match kind.as_str() {
                stream_type::ERROR => slot.0 = Some(s),
                stream_type::DATA => slot.1 = Some(s),
                other => return tracing::warn!(stream = other, "unknown port-forward stream type"),
            }
            if matches!(pairs.get(&id), Some((Some(_), Some(_)))) {
                if let Some((Some(err), Some(data))) = pairs.remove(&id) {
                    tokio::spawn(forward(target.clone(), err, data));
                }
            }
        })
        .await;
    });
    Ok(r)
}

struct Target {
    netns: PathBuf,
    pod: String,
    uid: String,
}

/// Connects to 127.0.0.1:`port` inside the namespace at `netns`.
fn connect_in(netns: &PathBuf, port: u16) -> std::io::Result<StdTcpStream> {
    let ns = NetNs::open(netns).map_err(std::io::Error::other)?;
    let _in = ns.enter().map_err(std::io::Error::other)?;
    let s = StdTcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(5))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

async fn forward(t: Arc<Target>, err: Stream, mut data: Stream) {
    let (ew, dw) = (err.writer(), data.writer());
    let port_text = data.header(PORT_HEADER).unwrap_or("").to_string();
    let port: u16 = match port_text.parse() {
        Ok(p) if p > 0 => p,
        _ => {
            ew.send(format!("invalid port {port_text:?}").as_bytes()).await;
            ew.fin().await;
            dw.fin().await;
            return;
        }
    };
    let netns = t.netns.clone();
    let conn = tokio::task::spawn_blocking(move || connect_in(&netns, port))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .and_then(tokio::net::TcpStream::from_std);
    let tcp = match conn {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {}, uid {}: failed to connect to localhost:{port} inside the pod's network namespace: {e}", t.pod, t.uid);
            tracing::info!(%msg, "port-forward");
            ew.send(msg.as_bytes()).await;
            ew.fin().await;
            dw.fin().await;
            return;
        }
    };
    tracing::debug!(port, "port-forward connected");
    let (mut rd, mut wr) = tcp.into_split();
    let up = async {
        while let Some(chunk) = data.data.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !dw.send(&buf[..n]).await {
                        break;
                    }
                }
            }
        }
        dw.fin().await;
    };
    // As containerd's port-forward: once the pod's side is done, give the client a
    // second to finish its side, then end both streams (kubectl waits for the error
    // stream to end before it closes its local connection). A client that half-closes
    // first still gets the pod's whole answer.
    tokio::pin!(up, down);
    tokio::select! {
        _ = &mut down => {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut up).await;
        }
        _ = &mut up => down.await,
    }
    ew.fin().await;
    drop(err);
}
