//! Server configuration (what the `miniapi` flags set).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// Which storage backend to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded redb file under the data dir.
    Redb,
    /// An etcd cluster (keys under `/registry/`, as kube-apiserver stores them).
    Etcd {
        /// Client endpoints.
        endpoints: Vec<String>,
    },
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory for the database, certificates, tokens and kubeconfig.
    pub data_dir: PathBuf,
    /// Address to listen on (loopback in tests).
    pub listen: SocketAddr,
    /// Extra addresses for the serving certificate's SANs and the kubeconfig.
    pub advertise_addresses: Vec<IpAddr>,
    /// Service ClusterIP range.
    pub service_cluster_ip_range: Ipv4Net,
    /// NodePort range (inclusive).
    pub node_port_range: (u16, u16),
    /// Storage backend.
    pub store: StoreBackend,
    /// Where to write the admin kubeconfig (default `<data-dir>/admin.kubeconfig`).
    pub kubeconfig_out: Option<PathBuf>,
    /// Interval between watch BOOKMARK events.
    pub bookmark_interval_secs: u64,
}

impl ServerConfig {
    /// Defaults for a data dir and listen address.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServerConfig {
            data_dir,
            listen,
            advertise_addresses: Vec::new(),
            service_cluster_ip_range: Ipv4Net::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12)
                .unwrap_or_default(),
            node_port_range: (30000, 32767),
            store: StoreBackend::Redb,
            kubeconfig_out: None,
            bookmark_interval_secs: 15,
        }
    }

    /// The kubeconfig path actually used.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.kubeconfig_out
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.kubeconfig"))
    }
}
