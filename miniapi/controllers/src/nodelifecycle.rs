//! The node lifecycle controller and the pod garbage collector.
//!
//! Node lifecycle: a node is healthy while its kubelet renews its Lease in
//! `kube-node-lease` or posts status (the Ready condition's lastHeartbeatTime). If
//! neither changes for `node_monitor_grace_period`, its conditions become Unknown
//! (`NodeStatusUnknown`, "Kubelet stopped posting node status.": `NotReady` in
//! kubectl), its pods are marked not Ready, and it is tainted
//! `node.kubernetes.io/unreachable` (NoSchedule and NoExecute). A node reporting
//! Ready=False gets the `not-ready` taints instead; `spec.unschedulable` gets
//! `node.kubernetes.io/unschedulable:NoSchedule`. Pods on a node with a NoExecute
//! taint are evicted (deleted): at once if they do not tolerate it, after
//! min(tolerationSeconds, pod_eviction_timeout) if they tolerate it for a while
//! (API servers add 300 s tolerations by default), never if they tolerate it forever.
//!
//! Pod GC: pods bound to nodes that no longer exist, terminating pods that were
//! never scheduled, and terminating pods on nodes tainted
//! `node.kubernetes.io/out-of-service` are deleted with grace period 0.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::runtime::{spawn_reflector, watch_config};
use crate::util::{
    ignore_not_found, is_deleting, now, pod_node, pod_tolerations, seconds_since, tolerates,
};

/// Taint of a node whose kubelet stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node reporting Ready=False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint of a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Taint marking a node as out of service (its terminating pods are force-deleted).
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// Node lifecycle settings.
#[derive(Debug, Clone)]
pub struct NodeLifecycleConfig {
    /// How long a node may go without a heartbeat before it is Unknown (40 s).
    pub node_monitor_grace_period: Duration,
    /// Longest wait before evicting pods from a NoExecute-tainted node (5 min).
    pub pod_eviction_timeout: Duration,
    /// How often node health is checked (5 s, or less for short grace periods).
    pub node_monitor_period: Duration,
}

impl NodeLifecycleConfig {
    /// Upstream defaults with a monitor period that fits the grace period.
    pub fn new(grace: Duration, eviction: Duration) -> Self {
        let period = (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        NodeLifecycleConfig {
            node_monitor_grace_period: grace,
            pod_eviction_timeout: eviction,
            node_monitor_period: period,
        }
    }
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self::new(Duration::from_secs(40), Duration::from_secs(300))
    }
}

#[derive(Debug)]
struct Health {
    heartbeat: Option<String>,
    lease: Option<String>,
    probe: Instant,
}

/// Run the node lifecycle controller (and pod GC) forever.
pub async fn run(client: Client, cfg: NodeLifecycleConfig) {
    let (nodes, h1) = spawn_reflector(Api::<Node>::all(client.clone()), watch_config(), |_| {});
    let (leases, h2) = spawn_reflector(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        watch_config(),
        |_| {},
    );
    let (pods, h3) = spawn_reflector(Api::<Pod>::all(client.clone()), watch_config(), |_| {});
    for r in [
        nodes.wait_until_ready().await,
        leases.wait_until_ready().await,
        pods.wait_until_ready().await,
    ] {
        if r.is_err() {
            return;
        }
    }
    let recorder = Arc::new(Recorder::new(client.clone(), "node-controller", None));
    let mut health: HashMap<String, Health> = HashMap::new();
    let mut tick = tokio::time::interval(cfg.node_monitor_period);
    let mut gc_tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                monitor(&client, &cfg, &nodes, &leases, &pods, &mut health, &recorder).await;
            }
            _ = gc_tick.tick() => {
                pod_gc(&client, &nodes, &pods).await;
            }
        }
        if h1.is_finished() || h2.is_finished() || h3.is_finished() {
            return;
        }
    }
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

fn ts_string<T: serde::Serialize>(t: &T) -> Option<String> {
    serde_json::to_value(t).ok().map(|v| v.to_string())
}

async fn monitor(
    client: &Client,
    cfg: &NodeLifecycleConfig,
    nodes: &Store<Node>,
    leases: &Store<Lease>,
    pods: &Store<Pod>,
    health: &mut HashMap<String, Health>,
    recorder: &Recorder,
) {
    let all = nodes.state();
    health.retain(|name, _| all.iter().any(|n| &n.name_any() == name));
    for node in all {
        let name = node.name_any();
        let heartbeat = ready_condition(&node)
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .and_then(ts_string);
        let lease = leases
            .get(&kube::runtime::reflector::ObjectRef::new(&name).within("kube-node-lease"))
            .and_then(|l| {
                l.spec
                    .as_ref()
                    .and_then(|s| s.renew_time.as_ref())
                    .and_then(ts_string)
            });
        let h = health.entry(name.clone()).or_insert_with(|| Health {
            heartbeat: heartbeat.clone(),
            lease: lease.clone(),
            probe: Instant::now(),
        });
        if h.heartbeat != heartbeat || h.lease != lease {
            h.heartbeat = heartbeat;
            h.lease = lease;
            h.probe = Instant::now();
        }
        let stale = h.probe.elapsed() > cfg.node_monitor_grace_period;
        let ready_status = ready_condition(&node).map(|c| c.status.clone());
        if stale && ready_status.as_deref() != Some("Unknown") {
            if let Err(e) = mark_unknown(client, &node).await {
                tracing::warn!(node = %name, error = %e, "could not mark node status unknown");
                continue;
            }
            tracing::info!(node = %name, "node stopped posting status: Ready=Unknown");
            recorder
                .publish(
                    node.as_ref(),
                    EventType::Normal,
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                )
                .await;
            mark_pods_not_ready(client, pods, &name, recorder).await;
        }
        let status = if stale {
            Some("Unknown".to_string())
        } else {
            ready_status
        };
        // Evict on the taints as just synced: a node that came back must not lose the
        // pods it was given meanwhile to the taints it had a moment ago.
        let taints = match sync_taints(client, &node, status.as_deref()).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "could not update node taints");
                continue;
            }
        };
        evict(client, cfg, &name, &taints, pods, recorder).await;
    }
}

async fn mark_unknown(client: &Client, node: &Node) -> kube::Result<()> {
    let t = now();
    let mut conds: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for ty in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        if !conds.iter().any(|c| c.type_ == ty) && ty == "Ready" {
            conds.push(NodeCondition {
                type_: ty.into(),
                ..Default::default()
            });
        }
    }
    for c in conds.iter_mut() {
        if matches!(
            c.type_.as_str(),
            "Ready" | "MemoryPressure" | "DiskPressure" | "PIDPressure"
        ) {
            if c.status != "Unknown" {
                c.last_transition_time = Some(t.clone());
            }
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
        }
    }
    let api: Api<Node> = Api::all(client.clone());
    ignore_not_found(
        api.patch_status(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": conds}})),
        )
        .await,
    )?;
    Ok(())
}

async fn mark_pods_not_ready(client: &Client, pods: &Store<Pod>, node: &str, recorder: &Recorder) {
    for pod in pods.state().iter().filter(|p| pod_node(p) == Some(node)) {
        let Some(mut conds) = pod.status.as_ref().and_then(|s| s.conditions.clone()) else {
            continue;
        };
        let mut changed = false;
        for c in conds
            .iter_mut()
            .filter(|c| c.type_ == "Ready" && c.status != "False")
        {
            c.status = "False".into();
            c.last_transition_time = Some(now());
            changed = true;
        }
        if !changed {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": conds}});
        match ignore_not_found(
            api.patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await,
        ) {
            Ok(_) => {
                recorder
                    .publish(
                        pod.as_ref(),
                        EventType::Warning,
                        "NodeNotReady",
                        "Node is not ready",
                    )
                    .await
            }
            Err(e) => {
                tracing::warn!(pod = %pod.name_any(), error = %e, "could not mark pod not ready")
            }
        }
    }
}

fn managed_taint(key: &str) -> bool {
    matches!(key, UNREACHABLE | NOT_READY | UNSCHEDULABLE)
}

/// The taints this controller maintains for a node in `ready` state.
fn wanted_taints(node: &Node, ready: Option<&str>) -> Vec<(String, String)> {
    let mut want = Vec::new();
    match ready {
        Some("True") => {}
        Some("False") => {
            want.push((NOT_READY.to_string(), "NoSchedule".to_string()));
            want.push((NOT_READY.to_string(), "NoExecute".to_string()));
        }
        Some(_) => {
            want.push((UNREACHABLE.to_string(), "NoSchedule".to_string()));
            want.push((UNREACHABLE.to_string(), "NoExecute".to_string()));
        }
        // No Ready condition posted yet, within the grace period: nothing to say.
        None => {}
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        want.push((UNSCHEDULABLE.to_string(), "NoSchedule".to_string()));
    }
    want
}

/// Brings the node's managed taints in line with its Ready status; returns the node's
/// taints as they are now (the store's copy may not show the update yet).
async fn sync_taints(client: &Client, node: &Node, ready: Option<&str>) -> kube::Result<Vec<Taint>> {
    let current: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let want = wanted_taints(node, ready);
    let have: Vec<(String, String)> = current
        .iter()
        .filter(|t| managed_taint(&t.key))
        .map(|t| (t.key.clone(), t.effect.clone()))
        .collect();
    let same = have.len() == want.len() && want.iter().all(|w| have.contains(w));
    if same {
        return Ok(current);
    }
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !managed_taint(&t.key) || want.contains(&(t.key.clone(), t.effect.clone())))
        .cloned()
        .collect();
    for (k, e) in &want {
        if !taints.iter().any(|t| &t.key == k && &t.effect == e) {
            taints.push(Taint {
                key: k.clone(),
                effect: e.clone(),
                time_added: (e == "NoExecute").then(now),
                value: None,
            });
        }
    }
    tracing::info!(node = %node.name_any(), taints = ?taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect::<Vec<_>>(), "updating node taints");
    let api: Api<Node> = Api::all(client.clone());
    ignore_not_found(
        api.patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": taints}})),
        )
        .await,
    )?;
    Ok(taints)
}

/// Seconds after the taint was added at which a pod is evicted, `None` for never.
fn eviction_delay(pod: &Pod, taint: &Taint, cap: Duration) -> Option<f64> {
    let tols: Vec<_> = pod_tolerations(pod)
        .iter()
        .filter(|t| tolerates(t, taint))
        .collect();
    if tols.is_empty() {
        return Some(0.0);
    }
    // The shortest finite toleration wins; one without tolerationSeconds is forever.
    if tols.iter().any(|t| t.toleration_seconds.is_none()) {
        return None;
    }
    let secs = tols
        .iter()
        .filter_map(|t| t.toleration_seconds)
        .min()
        .unwrap_or(0)
        .max(0);
    Some((secs as f64).min(cap.as_secs_f64()))
}

async fn evict(
    client: &Client,
    cfg: &NodeLifecycleConfig,
    name: &str,
    taints: &[Taint],
    pods: &Store<Pod>,
    recorder: &Recorder,
) {
    let taints: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if taints.is_empty() {
        return;
    }
    for pod in pods
        .state()
        .iter()
        .filter(|p| pod_node(p) == Some(name) && !is_deleting(p.as_ref()))
    {
        let due = taints.iter().any(|t| {
            let since = t.time_added.as_ref().map(seconds_since).unwrap_or(f64::MAX);
            eviction_delay(pod, t, cfg.pod_eviction_timeout).is_some_and(|d| since >= d)
        });
        if !due {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        match ignore_not_found(api.delete(&pod.name_any(), &DeleteParams::default()).await) {
            Ok(_) => {
                tracing::info!(node = %name, namespace = %ns, pod = %pod.name_any(), "evicted pod from tainted node");
                recorder
                    .publish(
                        pod.as_ref(),
                        EventType::Normal,
                        "TaintManagerEviction",
                        &format!("Marking for deletion Pod {ns}/{}", pod.name_any()),
                    )
                    .await;
            }
            Err(e) => tracing::warn!(pod = %pod.name_any(), error = %e, "eviction failed"),
        }
    }
}

async fn pod_gc(client: &Client, nodes: &Store<Node>, pods: &Store<Pod>) {
    let node_list = nodes.state();
    for pod in pods.state() {
        let reason = match pod_node(&pod) {
            Some(n) => match node_list.iter().find(|x| x.name_any() == n) {
                None => Some("its node no longer exists"),
                Some(node) if is_deleting(pod.as_ref()) => node
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.key == OUT_OF_SERVICE))
                    .then_some("its node is out of service"),
                _ => None,
            },
            None if is_deleting(pod.as_ref()) => Some("it is terminating and was never scheduled"),
            None => None,
        };
        let Some(reason) = reason else { continue };
        // Re-check the node live before force-deleting on a possibly stale cache.
        if let Some(n) = pod_node(&pod) {
            if reason.contains("no longer exists") {
                match Api::<Node>::all(client.clone()).get_opt(n).await {
                    Ok(None) => {}
                    _ => continue,
                }
            }
        }
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        match ignore_not_found(api.delete(&pod.name_any(), &dp).await) {
            Ok(_) => {
                tracing::info!(namespace = %ns, pod = %pod.name_any(), reason, "pod GC force-deleted pod")
            }
            Err(e) => tracing::warn!(pod = %pod.name_any(), error = %e, "pod GC failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, Toleration};

    fn pod_with(tols: Vec<Toleration>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                tolerations: Some(tols),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn eviction_delays() {
        let taint = Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        let cap = Duration::from_secs(3);
        assert_eq!(eviction_delay(&pod_with(vec![]), &taint, cap), Some(0.0));
        let t300 = Toleration {
            key: Some(UNREACHABLE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(300),
            ..Default::default()
        };
        assert_eq!(
            eviction_delay(&pod_with(vec![t300.clone()]), &taint, cap),
            Some(3.0)
        );
        let forever = Toleration {
            toleration_seconds: None,
            ..t300
        };
        assert_eq!(eviction_delay(&pod_with(vec![forever]), &taint, cap), None);
    }
}
