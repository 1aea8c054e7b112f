//! Server assembly: open the store, prepare TLS, tokens and the kubeconfig,
//! bootstrap the system objects, then serve HTTPS (h2 and HTTP/1.1) until stopped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::allocators::Allocators;
use crate::config::{ServerConfig, StoreBackend};
use crate::http::auth::TokenAuth;
use crate::http::{tls, AppState};
use crate::registry::{bootstrap, Registry};
use crate::store::{EtcdStore, RedbStore, SharedStore, StoreError};

/// Startup failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Filesystem.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Store.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// TLS.
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    /// A configured feature that does not exist yet.
    #[error("{0}")]
    NotImplemented(String),
}

/// A prepared server: store open, objects bootstrapped, listener bound.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    /// Where the admin kubeconfig was written.
    pub kubeconfig_path: PathBuf,
    /// The bound address.
    pub local_addr: SocketAddr,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let w = what.into();
    move |e| ServerError::Io(w, e)
}

fn open_store(cfg: &ServerConfig) -> Result<SharedStore, ServerError> {
    match &cfg.store {
        StoreBackend::Redb => Ok(Arc::new(RedbStore::open(&cfg.data_dir.join("state.redb"))?)),
        StoreBackend::Etcd { endpoints } => Ok(Arc::new(EtcdStore::connect(endpoints, "")?)),
    }
}

impl Server {
    /// Prepare everything and bind the listener.
    pub async fn prepare(cfg: ServerConfig) -> Result<Self, ServerError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(io_err(cfg.data_dir.display().to_string()))?;
        let store = open_store(&cfg)?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(io_err(format!("bind {}", cfg.listen)))?;
        let local_addr = listener.local_addr().map_err(io_err("local_addr"))?;
        let alloc = Allocators::new(cfg.service_cluster_ip_range, cfg.node_port_range);
        let host_ip: IpAddr = if local_addr.ip().is_unspecified() {
            cfg.advertise_addresses
                .first()
                .copied()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        } else {
            local_addr.ip()
        };
        let mut sans: Vec<String> = vec![
            "127.0.0.1".into(),
            "localhost".into(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            "kubernetes.default.svc.cluster.local".into(),
            alloc.kubernetes_ip().to_string(),
        ];
        for ip in cfg
            .advertise_addresses
            .iter()
            .chain(std::iter::once(&host_ip))
        {
            if !sans.contains(&ip.to_string()) {
                sans.push(ip.to_string());
            }
        }
        let material = tls::load_or_create(&cfg.data_dir.join("pki"), &sans)?;
        let acceptor = TlsAcceptor::from(tls::server_config(&material)?);
        let auth = TokenAuth::load_or_init(&cfg.data_dir.join("tokens.csv"))
            .map_err(io_err("tokens.csv"))?;
        let (registry, ns_queue) = Registry::new(
            store,
            alloc,
            Duration::from_secs(cfg.bookmark_interval_secs.max(1)),
        );
        let registry = Arc::new(registry);
        registry.set_ca_pem(material.ca_pem.clone());
        let endpoint_ip = cfg.advertise_addresses.first().copied().unwrap_or(host_ip);
        {
            let r = registry.clone();
            let port = local_addr.port();
            tokio::task::spawn_blocking(move || r.bootstrap(endpoint_ip, port))
                .await
                .map_err(|e| ServerError::NotImplemented(format!("bootstrap: {e}")))?;
        }
        {
            let r = registry.clone();
            std::thread::Builder::new()
                .name("namespace-finalizer".into())
                .spawn(move || bootstrap::run_namespace_finalizer(r, ns_queue))
                .map_err(io_err("spawn namespace finalizer"))?;
        }
        let server_url = format!("https://{}", SocketAddr::new(host_ip, local_addr.port()));
        let kubeconfig_path = cfg.kubeconfig_path();
        let tmp = kubeconfig_path.with_extension("tmp");
        crate::kubeconfig::write(&tmp, &server_url, &material.ca_pem, &auth.admin_token())
            .map_err(io_err(tmp.display().to_string()))?;
        std::fs::rename(&tmp, &kubeconfig_path)
            .map_err(io_err(kubeconfig_path.display().to_string()))?;
        let kubelet = crate::proxy::KubeletClient::new(&material, &cfg.data_dir.join("pki"))?;
        let state = Arc::new(AppState {
            registry,
            auth,
            server_address: SocketAddr::new(host_ip, local_addr.port()).to_string(),
            ready: AtomicBool::new(false),
            kubelet,
        });
        Ok(Server {
            listener,
            acceptor,
            state,
            kubeconfig_path,
            local_addr,
        })
    }

    /// Serve until the task is dropped.
    pub async fn serve(self) -> Result<(), ServerError> {
        let app = crate::http::router(self.state.clone());
        self.state.ready.store(true, Ordering::SeqCst);
        tracing::info!(addr = %self.local_addr, "serving");
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = self.acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, "tls handshake failed: {e}");
                        return;
                    }
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await
                {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
    }
}

/// Prepare and serve.
pub async fn run(cfg: ServerConfig) -> Result<(), ServerError> {
    Server::prepare(cfg).await?.serve().await
}
