//! The pod streaming subresources — `pods/log`, `pods/exec`, `pods/attach`,
//! `pods/portforward` — proxied to the kubelet of the pod's node, as kube-apiserver does:
//!
//! * `log`: an HTTPS GET to `/containerLogs/…`, its body streamed back (follow included);
//!   a kubelet error becomes a `Status` with the kubelet's message.
//! * `exec`, `attach` and SPDY `portforward`: the client's upgrade (WebSocket
//!   `v5.channel.k8s.io` or SPDY/3.1) is repeated to the kubelet; once the kubelet answers
//!   101 the client gets the same answer and the two connections are spliced byte for byte.
//! * WebSocket `portforward` (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31): the client's
//!   WebSocket carries SPDY in binary messages; the kubelet gets a plain SPDY upgrade and
//!   [`tunnel`] moves the bytes between the two.
//!
//! Pod → node → address resolution is in [`location`], the kubelet client (and the client
//! certificate kubelets authenticate the API server by) in [`kubelet`].

pub mod kubelet;
pub mod location;
mod tunnel;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

pub use kubelet::KubeletClient;

use crate::http::router::ResourcePath;
use crate::http::AppState;
use crate::status::ApiError;

/// The subresources this module serves.
pub const SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward"];

/// Whether the path is one of the streaming subresources of a pod.
pub fn is_streaming(rp: &ResourcePath) -> bool {
    rp.resource.plural == "pods"
        && rp.resource.group.is_empty()
        && rp.name.is_some()
        && rp.subresource.as_deref().is_some_and(|s| SUBRESOURCES.contains(&s))
}

fn status_response(e: &ApiError) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(&e.to_status()).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// A kubelet's error answer as a Status carrying its message.
async fn kubelet_error(resp: hyper::Response<hyper::body::Incoming>) -> Response {
    let code = resp.status().as_u16();
    let body = tokio::time::timeout(std::time::Duration::from_secs(5), resp.into_body().collect()).await;
    let text = match body {
        Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        _ => String::new(),
    };
    let message = if text.is_empty() { format!("the kubelet answered {code}") } else { text };
    status_response(&ApiError { code, reason: reason(code), message, details: None })
}

fn is_upgrade(h: &HeaderMap) -> bool {
    h.get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
        && h.contains_key(header::UPGRADE)
}

/// Serves a streaming subresource request (already authenticated).
pub async fn handle(st: &AppState, mut parts: Parts, rp: ResourcePath) -> Response {
    let sub = rp.subresource.clone().unwrap_or_default();
    let (ns, name) = (rp.namespace.clone().unwrap_or_else(|| "default".into()), rp.name.clone().unwrap_or_default());
    let q = location::parse_query(parts.uri.query());
    let registry = st.registry.clone();
    let (ns2, name2, sub2) = (ns.clone(), name.clone(), sub.clone());
    let loc = match tokio::task::spawn_blocking(move || location::resolve(&registry, &ns2, &name2, &sub2, &q)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return status_response(&e),
        Err(e) => return status_response(&ApiError::internal(e.to_string())),
    };
    tracing::info!(pod = %format!("{ns}/{name}"), sub = %sub, kubelet = %loc.addr, "proxying to the kubelet");
    if sub == "log" {
        if parts.method != Method::GET {
            return status_response(&ApiError::method_not_allowed());
        }
        return logs(st, &loc).await;
    }
    if !is_upgrade(&parts.headers) {
        return status_response(&ApiError::bad_request(format!(
            "pods/{sub} needs an upgraded connection (Upgrade: websocket or SPDY/3.1 over HTTP/1.1)"
        )));
    }
    let Some(client_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return status_response(&ApiError::bad_request("this connection cannot be upgraded (HTTP/2?); use HTTP/1.1"));
    };
    if sub == "portforward" && tunnel::wants_tunnel(&parts.headers) {
        return tunnel::serve(st, &loc, &parts.headers, client_upgrade).await;
    }
    splice(st, &loc, &parts, client_upgrade).await
}

async fn logs(st: &AppState, loc: &location::Location) -> Response {
    let req = match hyper::Request::get(loc.path_and_query.as_str()).header(header::HOST, loc.addr.to_string()).body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return status_response(&ApiError::internal(e.to_string())),
    };
    let resp = match st.kubelet.send(loc.addr, req).await {
        Ok(r) => r,
        Err(e) => return status_response(&ApiError::internal(e.to_string())),
    };
    if !resp.status().is_success() {
        return kubelet_error(resp).await;
    }
    let mut r = Response::new(Body::new(resp.into_body()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    r
}

/// Headers of an upgrade that travel to the kubelet and back.
const UPGRADE_HEADERS: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "x-stream-protocol-version",
];

fn copy_upgrade_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in UPGRADE_HEADERS {
        let n = HeaderName::from_static(name);
        for v in from.get_all(&n) {
            to.append(n.clone(), v.clone());
        }
    }
}

async fn splice(st: &AppState, loc: &location::Location, parts: &Parts, client_upgrade: hyper::upgrade::OnUpgrade) -> Response {
    let mut req = hyper::Request::new(Empty::<Bytes>::new());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = match loc.path_and_query.parse() {
        Ok(u) => u,
        Err(e) => return status_response(&ApiError::internal(format!("bad kubelet path: {e}"))),
    };
    copy_upgrade_headers(&parts.headers, req.headers_mut());
    if let Ok(h) = HeaderValue::from_str(&loc.addr.to_string()) {
        req.headers_mut().insert(header::HOST, h);
    }
    let resp = match st.kubelet.send(loc.addr, req).await {
        Ok(r) => r,
        Err(e) => return status_response(&ApiError::internal(e.to_string())),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return kubelet_error(resp).await;
    }
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    copy_upgrade_headers(resp.headers(), out.headers_mut());
    tokio::spawn(async move {
        let (client, kubelet) = match tokio::join!(client_upgrade, hyper::upgrade::on(resp)) {
            (Ok(c), Ok(k)) => (c, k),
            (c, k) => return tracing::warn!(client = ?c.err(), kubelet = ?k.err(), "upgrade failed"),
        };
        let (mut c, mut k) = (hyper_util::rt::TokioIo::new(client), hyper_util::rt::TokioIo::new(kubelet));
        match tokio::io::copy_bidirectional(&mut c, &mut k).await {
            Ok((up, down)) => tracing::debug!(up, down, "stream finished"),
            Err(e) => tracing::debug!(error = %e, "stream ended"),
        }
    });
    out
}
