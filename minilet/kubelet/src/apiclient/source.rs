//! The API server as a pod source: a watch on the pods bound to this node
//! (`fieldSelector=spec.nodeName=<node>`) feeding a reflector cache. Pods marked for
//! deletion are not desired any more; once their worker stopped them, [`finish`]
//! deletes them for good (grace period 0, UID precondition), as the kubelet does. Pods
//! marked for deletion that this node has no record of (it lost its state: a VM node
//! booted again, its disk a tmpfs) have nothing to stop, and are finished at once by
//! [`reap_unknown`] — otherwise they would stay Terminating for ever.

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
    /// Starts the watch for `node`; pods marked for deletion with no record in
    /// `pods_dir` are finished.
    pub fn start(client: Client, node: &str, pods_dir: PathBuf) -> Self {
        let (store, writer) = reflector::store::<Pod>();
        let pods: Api<Pod> = Api::all(client.clone());
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let stream = reflector::reflector(writer, watcher(pods, cfg)).default_backoff();
        tokio::spawn(reap_unknown(client.clone(), store.clone(), pods_dir));
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

/// Every 2 s: finishes the pods marked for deletion that have no record on this node.
async fn reap_unknown(client: Client, store: Store<Pod>, pods_dir: PathBuf) {
    let mut done = std::collections::BTreeSet::new();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        for p in store.state() {
            let Some(uid) = p.metadata.uid.clone() else { continue };
            if p.metadata.deletion_timestamp.is_none() || done.contains(&uid) || pods_dir.join(&uid).exists() {
                continue;
            }
            tracing::info!(pod = ?p.metadata.name, uid, "a pod marked for deletion that this node does not run");
            finish(&client, &p).await;
            done.insert(uid);
        }
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
