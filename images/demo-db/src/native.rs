//! The native port (27017). The wire protocol is not spoken: a connection is accepted
//! (so TCP probes and port checks work) and, if it starts with an HTTP request, answered
//! the way mongod answers one; anything else is read and discarded until the peer closes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::server::Shared;

/// mongod's answer to HTTP on the native port.
pub const HTTP_ON_NATIVE_PORT: &str =
    "It looks like you are trying to access MongoDB over HTTP on the native driver port.\n";

/// How long an idle native connection is kept.
const IDLE: Duration = Duration::from_secs(300);

/// Accepts connections until `stop` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Result<()> {
    let conn_stop = stop.clone();
    loop {
        tokio::select! {
            () = crate::server::stopped(&mut stop) => return Ok(()),
            accepted = listener.accept() => {
                let (conn, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept on the native port failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                shared.stats.native_connections.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "native connection");
                let stop = conn_stop.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(conn, stop).await {
                        tracing::debug!(%peer, error = %e, "native connection ended");
                    }
                });
            }
        }
    }
}

fn looks_like_http(head: &[u8]) -> bool {
    const METHODS: [&[u8]; 7] = [b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH "];
    METHODS.iter().any(|m| head.starts_with(m))
}

async fn connection(mut conn: TcpStream, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut first = true;
    loop {
        let n = tokio::select! {
            () = crate::server::stopped(&mut stop) => return Ok(()),
            r = tokio::time::timeout(IDLE, conn.read(&mut buf)) => match r {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            },
        };
        if n == 0 {
            return Ok(());
        }
        if first && looks_like_http(&buf[..n]) {
            let reply = format!(
                "HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
                HTTP_ON_NATIVE_PORT.len(),
                HTTP_ON_NATIVE_PORT
            );
            conn.write_all(reply.as_bytes()).await?;
            conn.shutdown().await?;
            return Ok(());
        }
        first = false;
    }
}
