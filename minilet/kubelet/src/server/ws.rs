//! WebSocket plumbing shared by exec and attach: answer the upgrade with the negotiated
//! channel protocol, then run a session as two tasks — a reader that turns client
//! messages into [`Input`]s (stdin data, the v5 stdin close signal, resizes, the client
//! leaving) and a writer that sends [`Output`]s in order (data, the final status, then a
//! normal close).

use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use minik_shared::streams::channel::{self, Message as ChannelMessage, Protocol};
use minik_shared::streams::TerminalSize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{full, Body, HttpError};

/// What the client sent.
#[derive(Debug)]
pub enum Input {
    /// Bytes for stdin.
    Stdin(Vec<u8>),
    /// The client closed stdin (v5).
    StdinClosed,
    /// A new terminal size.
    Resize(TerminalSize),
}

/// What to send, in order.
#[derive(Debug)]
pub enum Output {
    /// Data on a channel.
    Data(u8, Vec<u8>),
    /// The final status on the error channel; the connection closes after it.
    Status(Vec<u8>),
}

/// Whether the request asks for a WebSocket upgrade.
pub fn is_websocket(req: &Request<Incoming>) -> bool {
    req.headers().get(UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Checks the upgrade and builds the 101 answer; the caller spawns [`run`] on the upgrade.
pub fn accept(req: &Request<Incoming>) -> Result<(Response<Body>, Protocol), HttpError> {
    let key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .ok_or_else(|| HttpError::bad_request("missing Sec-WebSocket-Key"))?;
    let offered: Vec<String> = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    let protocol = Protocol::negotiate(offered.iter().map(String::as_str)).ok_or_else(|| {
        HttpError::bad_request(format!(
            "none of the offered subprotocols {offered:?} is served; minilet speaks v5.channel.k8s.io and v4.channel.k8s.io"
        ))
    })?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(full(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).map_err(|e| HttpError::internal(e.to_string()))?);
    h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol.name()));
    Ok((r, protocol))
}

/// A running session: receive inputs, send outputs. Dropping `out` without a status
/// closes the connection too.
pub struct Session {
    /// Client input; `None` once the client is gone.
    pub input: mpsc::Receiver<Input>,
    /// Output to the client.
    pub out: mpsc::Sender<Output>,
}

/// Waits for the upgrade and starts the reader and writer; returns the session.
pub async fn run(req: Request<Incoming>, protocol: Protocol) -> Option<Session> {
    let upgraded = match hyper::upgrade::on(req).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "websocket upgrade failed");
            return None;
        }
    };
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel::<Input>(64);
    let (out_tx, mut out_rx) = mpsc::channel::<Output>(64);
    tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let data = match msg {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let input = match channel::decode(&data, protocol) {
                ChannelMessage::Data { channel: channel::STDIN, data } => Input::Stdin(data.to_vec()),
                ChannelMessage::Close { channel: channel::STDIN } => Input::StdinClosed,
                ChannelMessage::Data { channel: channel::RESIZE, data } => match TerminalSize::parse(data) {
                    Some(s) => Input::Resize(s),
                    None => continue,
                },
                _ => continue,
            };
            if in_tx.send(input).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            let (ch, data, last) = match o {
                Output::Data(ch, d) => (ch, d, false),
                Output::Status(s) => (channel::ERROR, s, true),
            };
            if sink.send(Message::Binary(channel::encode(ch, &data).into())).await.is_err() {
                return;
            }
            if last {
                break;
            }
        }
        let _ = sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
        let _ = sink.close().await;
    });
    Some(Session { input: in_rx, out: out_tx })
}
