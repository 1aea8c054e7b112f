//! `/health` and `/ready`, as CoreDNS's `health` and `ready` plugins: `/health` answers
//! `200 OK` while the process serves, `/ready` once the initial list of Services and
//! EndpointSlices is in the zone (`503` before). A few lines of HTTP/1.1 over a tokio
//! listener: two fixed answers do not need an HTTP framework.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Binds `addr` and serves the two endpoints until the process ends.
pub async fn serve(addr: SocketAddr, ready: Arc<AtomicBool>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let ready = ready.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &ready).await {
                            tracing::debug!(error = %e, "health request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "health listener cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

/// The status line and body for a request path.
fn route(path: &str, ready: bool) -> (&'static str, &'static str) {
    match path {
        "/health" => ("200 OK", "OK"),
        "/ready" if ready => ("200 OK", "OK"),
        "/ready" => ("503 Service Unavailable", "not ready: the initial list of Services and EndpointSlices is not in yet"),
        _ => ("404 Not Found", "not found: try /health or /ready"),
    }
}

async fn answer(mut stream: TcpStream, ready: &AtomicBool) -> std::io::Result<()> {
    let mut buf = vec![0u8; 2048];
    let mut len = 0;
    let read = async {
        while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request not sent in time"))??;
    let head = String::from_utf8_lossy(&buf[..len]);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let (status, body) = route(path, ready.load(Ordering::Relaxed));
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn routes() {
        assert_eq!(route("/health", false), ("200 OK", "OK"));
        assert_eq!(route("/ready", true).0, "200 OK");
        assert!(route("/ready", false).0.starts_with("503"));
        assert!(route("/metrics", true).0.starts_with("404"));
    }
}
