//! The API server as a pod source: a watch on the pods bound to this node
//! (`fieldSelector=spec.nodeName=<node>`) feeding a reflector cache. Pods marked for
//! deletion are not desired any more; once their worker stopped them, [`finish`]
//! deletes them for good (grace period 0, UID precondition), as the kubelet does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;

use crate::manifest::{DesiredPod, PodSource};

/// Pods from the API server.
pub struct ApiSource {
    store: Store<Pod>,
    _task: tokio::task::JoinHandle<()>,
}

impl ApiSource {
    /// Starts the watch for `node`.
    pub fn start(client: Client, node: &str) -> Self {
        let (store, writer) = reflector::store::<Pod>();
        let pods: Api<Pod> = Api::all(client);
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let stream = reflector::reflector(writer, watcher(pods, cfg)).default_backoff();
        let task = tokio::spawn(async move {
            stream
                .for_each(|ev| async move {
                    if let Err(e) = ev {
                        tracing::warn!(error = %e, "pod watch error; it resumes by itself");
                    }
                })
                .await;
        });
        ApiSource { store, _task: task }
    }
}

impl ApiSource {
    /// Waits (bounded) until the first list is in the cache, so that a restarted minilet
    /// does not take "not listed yet" for "no longer wanted".
    pub async fn wait_synced(&self, limit: std::time::Duration) -> bool {
        tokio::time::timeout(limit, self.store.wait_until_ready()).await.map(|r| r.is_ok()).unwrap_or(false)
    }
}

impl PodSource for ApiSource {
    fn desired(&mut self) -> (BTreeMap<String, DesiredPod>, Vec<(PathBuf, String)>) {
        let out = self
            .store
            .state()
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| {
                let uid = p.metadata.uid.clone()?;
                Some((uid.clone(), DesiredPod { uid, pod: (**p).clone() }))
            })
            .collect();
        (out, Vec::new())
    }
}

/// Deletes a pod this node finished stopping (no-op for pods that are gone already).
pub async fn finish(client: &Client, pod: &Pod) {
    let (Some(ns), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone()) else { return };
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "pod finished and removed from the API"),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "cannot remove the finished pod"),
    }
}
