//! minilet joined to the API server: it registers its Node and keeps it Ready (status
//! and a Lease in `kube-node-lease`), takes the pods bound to it from a watch, reports
//! their status back, and finishes pods the API server marked for deletion.
//!
//! minilet knows the API server only through the Kubernetes API, with the `kube` crate
//! (kube-rs: the maintained Rust client, whose watcher relists on `410 Gone` and whose
//! reflector keeps a cache the pod source reads without blocking).

pub mod node;
pub mod source;
pub mod status;

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A client from a kubeconfig file.
pub async fn connect(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", kubeconfig.display()))?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", kubeconfig.display()))?;
    Client::try_from(cfg).map_err(|e| anyhow::anyhow!("cannot build an API client: {e}"))
}
