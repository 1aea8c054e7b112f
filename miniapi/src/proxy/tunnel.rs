//! Port-forward over WebSocket (kubectl ≥ 1.31 tries it first): kubectl offers the
//! subprotocol `SPDY/3.1+portforward.k8s.io` and then speaks SPDY inside binary
//! WebSocket messages. As kube-apiserver's tunneling handler, miniapi opens an ordinary
//! SPDY upgrade (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`)
//! to the kubelet and moves the bytes: each binary message's payload to the kubelet, and
//! whatever the kubelet writes back as binary messages.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use minik_shared::streams::{PORT_FORWARD_PROTOCOL_V1, SPDY_TUNNELING_PREFIX, SPDY_UPGRADE, STREAM_PROTOCOL_HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::location::Location;
use super::{kubelet_error, status_response};
use crate::http::AppState;
use crate::status::ApiError;

fn tunnel_protocol() -> String {
    format!("{SPDY_TUNNELING_PREFIX}{PORT_FORWARD_PROTOCOL_V1}")
}

/// Whether the request is a WebSocket offering the SPDY tunnel subprotocol.
pub fn wants_tunnel(h: &HeaderMap) -> bool {
    let ws = h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let proto = tunnel_protocol();
    ws && h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == proto))
}

/// Upgrades to the kubelet with SPDY, then answers the client's WebSocket upgrade.
pub async fn serve(st: &AppState, loc: &Location, headers: &HeaderMap, client: hyper::upgrade::OnUpgrade) -> Response {
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes().to_vec()) else {
        return status_response(&ApiError::bad_request("missing Sec-WebSocket-Key"));
    };
    let req = hyper::Request::post(loc.path_and_query.as_str())
        .header(header::HOST, loc.addr.to_string())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, SPDY_UPGRADE)
        .header(STREAM_PROTOCOL_HEADER, PORT_FORWARD_PROTOCOL_V1)
        .body(Empty::<Bytes>::new());
    let req = match req {
        Ok(r) => r,
        Err(e) => return status_response(&ApiError::internal(e.to_string())),
    };
    let resp = match st.kubelet.send(loc.addr, req).await {
        Ok(r) => r,
        Err(e) => return status_response(&ApiError::internal(e.to_string())),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return kubelet_error(resp).await;
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = out.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Ok(v) = HeaderValue::from_str(&tunnel_protocol()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    tokio::spawn(async move {
        let (client, kubelet) = match tokio::join!(client, hyper::upgrade::on(resp)) {
            (Ok(c), Ok(k)) => (c, k),
            (c, k) => return tracing::warn!(client = ?c.err(), kubelet = ?k.err(), "port-forward tunnel upgrade failed"),
        };
        bridge(TokioIo::new(client), TokioIo::new(kubelet)).await;
    });
    out
}

async fn bridge(client: TokioIo<hyper::upgrade::Upgraded>, kubelet: TokioIo<hyper::upgrade::Upgraded>) {
    let ws = WebSocketStream::from_raw_socket(client, Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (mut krd, mut kwr) = tokio::io::split(kubelet);
    let up = async {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if kwr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = kwr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match krd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    // Either side ending ends the tunnel.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    tracing::debug!("port-forward tunnel closed");
}
