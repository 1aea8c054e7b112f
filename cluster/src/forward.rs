//! The API on the host's loopback. `minik up` binds `127.0.0.1:<api-port>` in the host's
//! network namespace — one listening socket, nothing else on the host — and hands it to
//! the keeper (as fd 3) before the keeper moves into its sandbox; a socket stays in the
//! namespace it was created in, so it keeps accepting host connections from inside the
//! sandbox. For each connection the keeper creates the upstream socket on a thread that
//! has entered node1's namespace, connects it to miniapi there, and copies bytes both
//! ways. kubectl on the host (including `port-forward`, which rides the same connection)
//! then talks to the cluster as to any other.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use minik_shared::netns::NetNs;

/// The fd the listening socket is passed on.
pub const LISTEN_FD: RawFd = 3;

/// Takes the listening socket inherited on `fd`.
///
/// # Safety
/// `fd` must be an open listening TCP socket owned by nothing else in this process.
pub unsafe fn inherited(fd: RawFd) -> std::net::TcpListener {
    // SAFETY: the caller guarantees `fd` is an inherited listening socket no one else owns.
    unsafe { std::net::TcpListener::from_raw_fd(fd) }
}

/// Serves the forwarder on `rt` until the process ends: accepts on `listener`, connects
/// to `target` from inside `netns`.
pub fn serve(rt: &tokio::runtime::Runtime, listener: std::net::TcpListener, netns: NetNs, target: SocketAddr) -> anyhow::Result<()> {
    listener.set_nonblocking(true).context("listening socket")?;
    let netns = Arc::new(netns);
    let _guard = rt.enter();
    let listener = tokio::net::TcpListener::from_std(listener).context("listening socket")?;
    rt.spawn(async move {
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "forwarder: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let netns = netns.clone();
            tokio::spawn(async move {
                if let Err(e) = forward(client, &netns, target).await {
                    tracing::debug!(%peer, error = %e, "forwarder: connection ended");
                }
            });
        }
    });
    Ok(())
}

async fn forward(mut client: tokio::net::TcpStream, netns: &Arc<NetNs>, target: SocketAddr) -> anyhow::Result<()> {
    let ns = netns.clone();
    let upstream = tokio::task::spawn_blocking(move || {
        ns.run(|| std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5)))
            .map_err(anyhow::Error::from)?
            .with_context(|| format!("cannot connect to {target} in node1"))
    })
    .await
    .context("connect task")??;
    upstream.set_nonblocking(true)?;
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let mut upstream = tokio::net::TcpStream::from_std(upstream)?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
