//! A Kubernetes API client from a kubeconfig, as every minik part that talks to miniapi
//! builds it (minilet, the controllers and scheduler, minikproxy, minik-dns).
//!
//! Built on the `kube` crate (kube-rs): the maintained Rust client, whose watcher relists
//! on `410 Gone` and whose reflector keeps a cache readers use without blocking, so no
//! part writes its own List+Watch loop.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A client from a kubeconfig file, or (with `None`) the usual inference: `$KUBECONFIG`,
/// `~/.kube/config`, in-cluster.
pub async fn connect(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    install_crypto_provider();
    let config = match kubeconfig {
        Some(p) => {
            let kc = Kubeconfig::read_from(p)
                .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", p.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", p.display()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| anyhow::anyhow!("no kubeconfig given and none found ($KUBECONFIG, ~/.kube/config): {e}"))?,
    };
    Client::try_from(config).map_err(|e| anyhow::anyhow!("cannot build an API client: {e}"))
}

/// Installs rustls's ring provider as the process default (idempotent; rustls needs one
/// chosen when more than one is compiled in).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
