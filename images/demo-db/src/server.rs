//! Starting and stopping the listeners: the HTTP interface and the native port on every
//! `--bind_ip` address, over one [`Store`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::args::Options;
use crate::store::Store;

/// Counters shown on the status page.
#[derive(Debug, Default)]
pub struct Stats {
    /// HTTP requests served.
    pub requests: AtomicU64,
    /// Documents stored.
    pub inserts: AtomicU64,
    /// REST queries answered.
    pub queries: AtomicU64,
    /// Connections accepted on the native port.
    pub native_connections: AtomicU64,
}

/// What the handlers share.
pub struct Shared {
    /// The data.
    pub store: Mutex<Store>,
    /// The counters.
    pub stats: Stats,
    /// When the server started.
    pub started: Instant,
    /// The command line.
    pub opts: Options,
    /// The host name (the pod's, in a container).
    pub hostname: String,
    /// Where the native port listens.
    pub native_addrs: Vec<SocketAddr>,
    /// Where the HTTP interface listens.
    pub http_addrs: Vec<SocketAddr>,
}

/// A running server.
pub struct Running {
    /// Where the native port listens.
    pub native_addrs: Vec<SocketAddr>,
    /// Where the HTTP interface listens (empty with `--nohttpinterface`).
    pub http_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<Result<()>>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Completes once `rx` says stop (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await (it is not Send).
    let _ = rx.wait_for(|stop| *stop).await.map(|_| ());
}

/// Loads the store and binds every listener; the server then runs until
/// [`Running::shutdown`] or [`Running::run_until`].
pub async fn start(opts: Options) -> Result<Running> {
    let dbpath = opts.dbpath.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&dbpath))
        .await
        .context("loading the data")?
        .with_context(|| format!("opening the data directory {}", opts.dbpath.display()))?;
    let http_port = opts.http_port()?;

    let mut native = Vec::new();
    let mut http = Vec::new();
    for ip in &opts.bind_ip {
        let addr = SocketAddr::new(*ip, opts.port);
        let l = TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
        native.push(l);
        if !opts.no_http {
            let addr = SocketAddr::new(*ip, http_port);
            let l = TcpListener::bind(addr).await.with_context(|| format!("listening on {addr} (HTTP interface)"))?;
            http.push(l);
        }
    }
    let native_addrs = native.iter().map(TcpListener::local_addr).collect::<Result<Vec<_>, _>>()?;
    let http_addrs = http.iter().map(TcpListener::local_addr).collect::<Result<Vec<_>, _>>()?;

    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        stats: Stats::default(),
        started: Instant::now(),
        opts,
        hostname: hostname(),
        native_addrs: native_addrs.clone(),
        http_addrs: http_addrs.clone(),
    });
    let (tx, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for l in native {
        let port = l.local_addr()?.port();
        tracing::info!("[initandlisten] waiting for connections on port {port}");
        tasks.spawn(crate::native::serve(l, shared.clone(), rx.clone()));
    }
    for l in http {
        let port = l.local_addr()?.port();
        tracing::info!("[websvr] admin web console waiting for connections on port {port}");
        let mut rx = rx.clone();
        let app = crate::http::router(shared.clone());
        tasks.spawn(async move {
            crate::serve::serve(l, app, async move { stopped(&mut rx).await })
                .await
                .context("serving the HTTP interface")
        });
    }
    Ok(Running { native_addrs, http_addrs, shutdown: tx, tasks })
}

impl Running {
    /// Stops accepting, lets requests in flight finish, and waits for every listener.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let mut first_err = None;
        while let Some(res) = self.tasks.join_next().await {
            if let Err(e) = res.context("a listener task failed").and_then(|r| r) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Runs until `signal` completes (then shuts down cleanly) or a listener fails.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<()> {
        tokio::select! {
            () = signal => self.shutdown().await,
            Some(res) = self.tasks.join_next() => {
                let err = match res {
                    Ok(Ok(())) => anyhow::anyhow!("a listener stopped unexpectedly"),
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::Error::new(e).context("a listener task failed"),
                };
                let _ = self.shutdown().await;
                Err(err)
            }
        }
    }
}
