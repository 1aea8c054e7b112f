//! The kubelet's HTTPS server (port 10250 by default), which the API server proxies
//! `kubectl logs`, `exec`, `attach` and `port-forward` to, with the kubelet's paths:
//!
//! | path | what |
//! | --- | --- |
//! | `GET /containerLogs/{ns}/{pod}/{container}` | the CRI log ([`logs`]): `follow`, `previous`, `tailLines`, `limitBytes`, `timestamps`, `sinceSeconds`, `sinceTime` |
//! | `/exec/{ns}/{pod}[/{uid}]/{container}` | a command through the OCI runtime, over WebSocket `v5.channel.k8s.io`/`v4` ([`exec`]) or SPDY `v4.channel.k8s.io` ([`spdyexec`]) |
//! | `/attach/{ns}/{pod}[/{uid}]/{container}` | the container's output, followed from its log ([`attach`]) |
//! | `/portForward/{ns}/{pod}[/{uid}]` | SPDY/3.1 `portforward.k8s.io` streams to `127.0.0.1:PORT` in the pod's netns ([`portforward`]) |
//! | `/healthz` | `ok` |
//!
//! Authentication is TLS client certificates from the client CA ([`tls`]): the API
//! server's kubelet-client certificate. Without a client CA the server does not start.

mod attach;
mod exec;
mod logs;
mod pods;
mod portforward;
mod pty;
mod spdyconn;
mod spdyexec;
mod tls;
mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsAcceptor;

use crate::config::KubeletConfig;
use crate::runtime::OciRuntime;

/// A response body.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// An error answered as plain text (the kubelet's style; the API server wraps it in a Status).
#[derive(Debug, Clone)]
pub struct HttpError {
    /// HTTP status.
    pub code: StatusCode,
    /// The message.
    pub message: String,
}

impl HttpError {
    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        HttpError { code: StatusCode::BAD_REQUEST, message: m.into() }
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        HttpError { code: StatusCode::NOT_FOUND, message: m.into() }
    }
    /// 500.
    pub fn internal(m: impl Into<String>) -> Self {
        HttpError { code: StatusCode::INTERNAL_SERVER_ERROR, message: m.into() }
    }
    /// The response.
    pub fn response(&self) -> Response<Body> {
        text(self.code, &self.message)
    }
}

/// A plain-text response.
pub fn text(code: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(format!("{s}\n"))));
    *r.status_mut() = code;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// A body of known bytes.
pub fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// What handlers share.
pub struct Ctx {
    /// The node's config.
    pub cfg: KubeletConfig,
    /// The OCI runtime.
    pub runtime: OciRuntime,
}

/// Starts the kubelet server on `kubeletAddress:kubeletPort` in the background (the
/// daemon calls this once). Problems are logged; pods run without the server.
pub fn spawn(cfg: &KubeletConfig) {
    if cfg.kubelet_port == 0 {
        return;
    }
    let tls = match tls::server_config(cfg) {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::info!("kubelet server off: no clientCAFile and no kubeconfig CA to authenticate the API server with");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "kubelet server off: TLS setup failed");
            return;
        }
    };
    let addr = format!("{}:{}", cfg.kubelet_address, cfg.kubelet_port);
    let listener = match std::net::TcpListener::bind(&addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "kubelet server off: cannot listen");
            return;
        }
    };
    let ctx = Arc::new(Ctx {
        cfg: cfg.clone(),
        runtime: OciRuntime { bin: cfg.runtime.clone(), root: cfg.runtime_root() },
    });
    tokio::spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!(error = %e, "kubelet server off"),
        };
        tracing::info!(%addr, "kubelet server listening");
        serve(listener, TlsAcceptor::from(tls), ctx).await;
    });
}

async fn serve(listener: tokio::net::TcpListener, acceptor: TlsAcceptor, ctx: Arc<Ctx>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet server accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => return tracing::debug!(%peer, error = %e, "kubelet server TLS handshake failed"),
            };
            let svc = hyper::service::service_fn(move |req| route(ctx.clone(), peer, req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .with_upgrades()
                .await
            {
                tracing::debug!(%peer, error = %e, "kubelet server connection ended");
            }
        });
    }
}

/// The query parameters of a request (repeated keys kept, in order).
/// (`form_urlencoded`: the WHATWG decoder the `url` crate uses, so `+` and `%XX` are
/// read exactly as browsers and Go's net/url write them.)
pub fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    let q = req.uri().query().unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// The first value of `key`.
pub fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Whether `key` is `1` or `true`.
pub fn flag(q: &[(String, String)], keys: &[&str]) -> bool {
    keys.iter().any(|k| matches!(param(q, k), Some("1" | "true" | "True")))
}

/// A percent-encoded path segment, decoded (invalid escapes are kept as they are).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

async fn route(ctx: Arc<Ctx>, peer: SocketAddr, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    tracing::debug!(%peer, method = %req.method(), %path, "kubelet request");
    let resp = match s.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["containerLogs", ns, pod, c] => logs::serve(ctx, &req, ns, pod, c).await,
        ["exec", ns, pod, c] => exec::serve(ctx, req, ns, pod, None, c, false),
        ["exec", ns, pod, uid, c] => exec::serve(ctx, req, ns, pod, Some(uid), c, false),
        ["attach", ns, pod, c] => exec::serve(ctx, req, ns, pod, None, c, true),
        ["attach", ns, pod, uid, c] => exec::serve(ctx, req, ns, pod, Some(uid), c, true),
        ["portForward", ns, pod] => portforward::serve(ctx, req, ns, pod, None),
        ["portForward", ns, pod, uid] => portforward::serve(ctx, req, ns, pod, Some(uid)),
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent() {
        assert_eq!(percent_decode("echo%20hi%3B"), "echo hi;");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
