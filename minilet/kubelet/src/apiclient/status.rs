//! Reports pod status to the API server: every half second it reads the status each pod
//! worker wrote (`<pod dir>/status.json`) and PATCHes `pods/<name>/status` when it
//! changed, for pods that came from the API (static pods have no API object).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;

use crate::state::PodRecord;

/// The pod-status sync loop.
pub async fn sync_loop(client: Client, pods_dir: PathBuf, host_ip: Option<String>) {
    let mut sent: HashMap<String, serde_json::Value> = HashMap::new();
    loop {
        for rec in PodRecord::load_all(&pods_dir) {
            if rec.pod.metadata.resource_version.is_none() {
                continue; // a static pod
            }
            let Ok(bytes) = std::fs::read(pods_dir.join(&rec.uid).join("status.json")) else { continue };
            let Ok(pod) = serde_json::from_slice::<Pod>(&bytes) else { continue };
            let Some(status) = pod.status else { continue };
            let mut value = serde_json::to_value(&status).unwrap_or_default();
            // Transition times change on every write; compare without them.
            let mut cmp = value.clone();
            if let Some(cs) = cmp.get_mut("conditions").and_then(|c| c.as_array_mut()) {
                for c in cs.iter_mut().filter_map(|c| c.as_object_mut()) {
                    c.remove("lastTransitionTime");
                }
            }
            if sent.get(&rec.uid) == Some(&cmp) {
                continue;
            }
            if let Some(hip) = &host_ip {
                value["hostIP"] = serde_json::json!(hip);
                value["hostIPs"] = serde_json::json!([{"ip": hip}]);
            }
            let (Some(ns), Some(name)) = (rec.pod.metadata.namespace.clone(), rec.pod.metadata.name.clone()) else { continue };
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({"status": value}))).await {
                Ok(_) => {
                    sent.insert(rec.uid.clone(), cmp);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => tracing::warn!(pod = %name, error = %e, "cannot report the pod status"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
