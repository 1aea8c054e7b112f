//! `minilet run`: the node agent's main loop.
//!
//! At start it adopts the pods recorded on disk (a restarted minilet neither recreates nor
//! re-addresses running pods), stops recorded pods its source no longer wants, and runs
//! the CNI GC with the attachments still in use. Then, every second, it asks the pod
//! source what it wants and starts or stops pod workers; each worker ticks on its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use minik_shared::cni::Attachment;
use tokio::sync::oneshot;

use crate::config::KubeletConfig;
use crate::manifest::{PodSource, StaticDir};
use crate::node::Node;
use crate::podworker::PodWorker;
use crate::state::PodRecord;
use crate::timefmt::unix;

struct Running {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
    pod: k8s_openapi::api::core::v1::Pod,
}

/// Every source's pods, merged (a UID belongs to one source).
struct Sources(Vec<Box<dyn PodSource + Send>>);

impl Sources {
    fn desired(&mut self) -> (BTreeMap<String, crate::manifest::DesiredPod>, Vec<(std::path::PathBuf, String)>) {
        let mut all = BTreeMap::new();
        let mut errors = Vec::new();
        for s in &mut self.0 {
            let (d, e) = s.desired();
            all.extend(d);
            errors.extend(e);
        }
        (all, errors)
    }
}

fn spawn_worker(node: Arc<Node>, rec: PodRecord) -> Running {
    let (stop, mut stop_rx) = oneshot::channel();
    let done = tokio::spawn(async move {
        let mut w = PodWorker::new(node, rec);
        loop {
            w.tick().await;
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        w.stop().await;
    });
    Running { stop, done, pod: k8s_openapi::api::core::v1::Pod::default() }
}

/// Runs until SIGINT/SIGTERM. Pods keep running when minilet exits (they are adopted at
/// the next start), as with a kubelet.
pub async fn run(cfg: KubeletConfig) -> anyhow::Result<()> {
    if cfg.cni_config_from_node && cfg.kubeconfig.is_none() {
        anyhow::bail!("cniConfigFromNode needs kubeconfig: the pod CIDR comes from this node's Node object");
    }
    let node = Arc::new(Node::new(cfg)?);
    // The kubelet HTTPS server: logs, exec, attach, port-forward (minilet::server).
    crate::server::spawn(&node.cfg);
    let mut sources = Sources(Vec::new());
    if let Some(dir) = &node.cfg.static_pod_path {
        sources.0.push(Box::new(StaticDir::new(dir.clone(), node.cfg.node_name.clone())));
    }
    let client = match &node.cfg.kubeconfig {
        Some(kc) => Some(crate::apiclient::connect(kc).await?),
        None => None,
    };
    if let Some(client) = &client {
        let info = crate::apiclient::node::NodeInfo {
            name: node.cfg.node_name.clone(),
            internal_ip: node.cfg.node_ip.clone(),
            kubelet_port: node.cfg.kubelet_port,
        };
        tokio::spawn(crate::apiclient::node::heartbeat(client.clone(), info, Duration::from_secs(10)));
        if node.cfg.cni_config_from_node {
            crate::apiclient::network::start(client, &node.cfg).await?;
        }
        tokio::spawn(crate::apiclient::status::sync_loop(client.clone(), node.cfg.pods_dir(), node.cfg.node_ip.clone()));
        let api = crate::apiclient::source::ApiSource::start(client.clone(), &node.cfg.node_name, node.cfg.pods_dir());
        if !api.wait_synced(Duration::from_secs(30)).await {
            anyhow::bail!("the API server did not answer the pod list within 30 s; check kubeconfig {:?}", node.cfg.kubeconfig);
        }
        sources.0.push(Box::new(api));
    }
    if sources.0.is_empty() {
        anyhow::bail!("no pod source: set staticPodPath and/or kubeconfig in the config");
    }
    let (desired, _) = sources.desired();
    let mut workers: BTreeMap<String, Running> = BTreeMap::new();

    // Adopt or retire what the last run left.
    let recorded = PodRecord::load_all(&node.cfg.pods_dir());
    let mut valid = Vec::new();
    for rec in recorded {
        if desired.contains_key(&rec.uid) {
            tracing::info!(pod = ?rec.pod.metadata.name, "adopting a running pod");
            valid.push(Attachment { container_id: rec.uid.clone(), ifname: "eth0".into() });
            let pod = rec.pod.clone();
            let mut r = spawn_worker(node.clone(), rec);
            r.pod = pod;
            workers.insert(r.pod.metadata.uid.clone().unwrap_or_default(), r);
        } else {
            tracing::info!(pod = ?rec.pod.metadata.name, "stopping a pod no longer wanted");
            PodWorker::new(node.clone(), rec).stop().await;
        }
    }
    if let Ok(net) = crate::sandbox::network(&node.cfg, &node.cni) {
        let cni = node.cni.clone();
        let res = tokio::task::spawn_blocking(move || cni.gc(&net, &valid)).await;
        if let Ok(Err(e)) = res {
            tracing::warn!(error = %e, "CNI GC at start failed");
        }
    }

    let mut reported: BTreeMap<std::path::PathBuf, String> = BTreeMap::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (desired, errors) = sources.desired();
        for (file, err) in errors {
            if reported.get(&file) != Some(&err) {
                tracing::warn!(file = %file.display(), error = %err, "ignoring a bad static pod manifest");
                reported.insert(file, err);
            }
        }
        for (uid, d) in &desired {
            if !workers.contains_key(uid) {
                tracing::info!(pod = ?d.pod.metadata.name, uid, "new pod");
                let rec = PodRecord { uid: uid.clone(), pod: d.pod.clone(), sandbox: None, created_at: unix(SystemTime::now()), containers: Vec::new() };
                if let Err(e) = rec.save(&node.cfg.pods_dir()) {
                    tracing::error!(error = %e, "cannot save the pod state");
                }
                let mut r = spawn_worker(node.clone(), rec);
                r.pod = d.pod.clone();
                workers.insert(uid.clone(), r);
            }
        }
        let gone: Vec<String> = workers.keys().filter(|u| !desired.contains_key(*u)).cloned().collect();
        for uid in gone {
            if let Some(r) = workers.remove(&uid) {
                let _ = r.stop.send(());
                let client = client.clone();
                tokio::spawn(async move {
                    let _ = r.done.await;
                    // A pod from the API is finished there once its containers are gone.
                    if let (Some(c), true) = (client, r.pod.metadata.resource_version.is_some()) {
                        crate::apiclient::source::finish(&c, &r.pod).await;
                    }
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("minilet exits; pods keep running and are adopted at the next start");
    Ok(())
}
