//! minilet joined to the API server: it registers its Node and keeps it Ready (status
//! and a Lease in `kube-node-lease`), takes the pods bound to it from a watch, reports
//! their status back, and finishes pods the API server marked for deletion.
//!
//! minilet knows the API server only through the Kubernetes API, with the `kube` crate
//! (kube-rs: the maintained Rust client, whose watcher relists on `410 Gone` and whose
//! reflector keeps a cache the pod source reads without blocking).

pub mod network;
pub mod node;
pub mod source;
pub mod status;

use std::path::Path;

use kube::Client;

/// A client from a kubeconfig file (the shared crate builds it).
pub async fn connect(kubeconfig: &Path) -> anyhow::Result<Client> {
    minik_shared::apiclient::connect(Some(kubeconfig)).await
}
