//! Forwarding names outside the cluster domain to the upstream servers (`--upstream`),
//! as CoreDNS's `forward` plugin: the client's query bytes go unchanged to the first
//! upstream, over the client's own transport (UDP, or TCP when the client retried over
//! TCP after a truncated answer), and the next upstream is tried when one fails or is
//! silent for [`UPSTREAM_TIMEOUT`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long one upstream has to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a query could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No `--upstream` was given.
    #[error("no upstream server configured (--upstream IP:PORT)")]
    NoUpstream,
    /// Every upstream failed; the last failure.
    #[error("upstream {upstream}: {reason}")]
    Upstream {
        /// The last upstream tried.
        upstream: SocketAddr,
        /// What went wrong with it.
        reason: String,
    },
}

/// The upstream servers, tried in order.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

impl Forwarder {
    /// Forwards to `upstreams` (may be empty: then every forward fails at once).
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Forwarder { upstreams, timeout: UPSTREAM_TIMEOUT }
    }

    /// Whether any upstream is configured.
    pub fn is_configured(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// Sends `query` (a whole DNS message) upstream and returns the reply's bytes.
    pub async fn forward(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
        let mut last = Err(ForwardError::NoUpstream);
        for &upstream in &self.upstreams {
            let attempt = if tcp { self.over_tcp(upstream, query).await } else { self.over_udp(upstream, query).await };
            match attempt {
                Ok(reply) => return Ok(reply),
                Err(reason) => {
                    tracing::debug!(%upstream, %reason, "upstream failed");
                    last = Err(ForwardError::Upstream { upstream, reason });
                }
            }
        }
        last
    }

    async fn over_udp(&self, upstream: SocketAddr, query: &[u8]) -> Result<Vec<u8>, String> {
        let local: SocketAddr = if upstream.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let sock = UdpSocket::bind(local).await.map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
        sock.connect(upstream).await.map_err(|e| format!("cannot connect: {e}"))?;
        sock.send(query).await.map_err(|e| format!("cannot send: {e}"))?;
        let mut buf = vec![0u8; 65535];
        let read = async {
            loop {
                let n = sock.recv(&mut buf).await.map_err(|e| format!("cannot receive: {e}"))?;
                // A reply to this query: same ID. Anything else on the socket is ignored.
                if n >= 12 && buf[..2] == query[..2] {
                    return Ok::<usize, String>(n);
                }
            }
        };
        let n = timeout(self.timeout, read).await.map_err(|_| "no reply in time".to_string())??;
        buf.truncate(n);
        Ok(buf)
    }

    async fn over_tcp(&self, upstream: SocketAddr, query: &[u8]) -> Result<Vec<u8>, String> {
        let exchange = async {
            let mut s = TcpStream::connect(upstream).await.map_err(|e| format!("cannot connect: {e}"))?;
            let len = u16::try_from(query.len()).map_err(|_| "query too long".to_string())?;
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(query);
            s.write_all(&framed).await.map_err(|e| format!("cannot send: {e}"))?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.map_err(|e| format!("cannot receive: {e}"))?;
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut reply).await.map_err(|e| format!("cannot receive: {e}"))?;
            Ok::<Vec<u8>, String>(reply)
        };
        timeout(self.timeout, exchange).await.map_err(|_| "no reply in time".to_string())?
    }
}
