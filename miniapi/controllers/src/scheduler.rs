//! The scheduler: pods with an empty `spec.nodeName` and `schedulerName`
//! `default-scheduler` are placed on a node that passes the filters (not
//! unschedulable, taints tolerated, Ready, nodeSelector and required node affinity,
//! cpu/memory/pods requests within allocatable minus what is already bound there),
//! preferring the node with the fewest pods of the same owner, then the fewest pods.
//! The pod is bound with `POST pods/NAME/binding`; `Scheduled` and
//! `FailedScheduling` events are posted as upstream words them, and the pod's
//! PodScheduled condition says why it waits. Unschedulable pods are retried when
//! nodes change (or pods go away), and every 30 s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Binding, Node, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, Pod, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::events::{EventType, Recorder};
use crate::runtime::{spawn_reflector, watch_config};
use crate::util::{
    controller_of, cpu_millis, is_deleting, is_status, map_matches, now, pod_node, pod_phase,
    pod_tolerations, quantity_value, tolerates,
};

/// The scheduler name this scheduler serves.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
const RETRY_UNSCHEDULABLE: Duration = Duration::from_secs(30);

/// Requested resources: cpu in millicores, memory in bytes, pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Pod count.
    pub pods: i64,
}

/// What a pod requests (upstream: max(sum of containers, each init container) + overhead).
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources {
            pods: 1,
            ..Default::default()
        };
    };
    let get = |c: &k8s_openapi::api::core::v1::Container| {
        let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        (
            req.and_then(|r| r.get("cpu"))
                .map(|q| cpu_millis(&q.0))
                .unwrap_or(0),
            req.and_then(|r| r.get("memory"))
                .map(|q| quantity_value(&q.0))
                .unwrap_or(0),
        )
    };
    let (mut cpu, mut mem) = spec
        .containers
        .iter()
        .map(get)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    for ic in spec.init_containers.iter().flatten() {
        let (c, m) = get(ic);
        cpu = cpu.max(c);
        mem = mem.max(m);
    }
    if let Some(o) = spec.overhead.as_ref() {
        cpu += o.get("cpu").map(|q| cpu_millis(&q.0)).unwrap_or(0);
        mem += o.get("memory").map(|q| quantity_value(&q.0)).unwrap_or(0);
    }
    Resources {
        cpu,
        memory: mem,
        pods: 1,
    }
}

/// A node's allocatable resources (capacity when allocatable is missing).
pub fn allocatable(node: &Node) -> Resources {
    let st = node.status.as_ref();
    let a = st.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
    Resources {
        cpu: a
            .and_then(|a| a.get("cpu"))
            .map(|q| cpu_millis(&q.0))
            .unwrap_or(0),
        memory: a
            .and_then(|a| a.get("memory"))
            .map(|q| quantity_value(&q.0))
            .unwrap_or(0),
        pods: a
            .and_then(|a| a.get("pods"))
            .map(|q| quantity_value(&q.0))
            .unwrap_or(0),
    }
}

fn is_node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(want)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|w| w.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > want
            } else {
                v < want
            }
        }
        _ => false,
    }
}

fn term_matches(t: &NodeSelectorTerm, node: &Node) -> bool {
    let labels = node.labels();
    let name = node.name_any();
    let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
    let fields = t.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(&name)))
}

/// nodeSelector and required node affinity.
pub fn node_matches_pod(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(sel) = spec.node_selector.as_ref() {
        if !map_matches(sel, node.labels()) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(r) => r.node_selector_terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

fn taint_string(t: &Taint) -> String {
    format!("{{{}: {}}}", t.key, t.value.as_deref().unwrap_or(""))
}

/// Why `node` cannot take `pod` (upstream's reasons; empty when it fits).
pub fn filter(pod: &Pod, node: &Node, used: Resources) -> Vec<String> {
    let tols = pod_tolerations(pod);
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        let t = Taint {
            key: crate::nodelifecycle::UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tols.iter().any(|x| tolerates(x, &t)) {
            return vec!["node(s) were unschedulable".into()];
        }
    }
    let untolerated = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .find(|t| {
            (t.effect == "NoSchedule" || t.effect == "NoExecute")
                && !tols.iter().any(|x| tolerates(x, t))
        });
    if let Some(t) = untolerated {
        return vec![format!("node(s) had untolerated taint {}", taint_string(t))];
    }
    if !is_node_ready(node) {
        return vec!["node(s) were not ready".into()];
    }
    if !node_matches_pod(pod, node) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    let req = pod_requests(pod);
    let alloc = allocatable(node);
    let mut out = Vec::new();
    if used.pods + 1 > alloc.pods {
        out.push("Too many pods".to_string());
    }
    if req.cpu > 0 && used.cpu + req.cpu > alloc.cpu {
        out.push("Insufficient cpu".to_string());
    }
    if req.memory > 0 && used.memory + req.memory > alloc.memory {
        out.push("Insufficient memory".to_string());
    }
    out
}

/// Upstream's FitError message: `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) ...`.
pub fn fit_error(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

#[derive(Debug, Clone)]
struct Assumed {
    node: String,
    res: Resources,
    owner: Option<String>,
    at: Instant,
}

struct Attempt {
    version: u64,
    at: Instant,
    message: String,
}

/// Scheduler state shared across passes.
struct Scheduler {
    client: Client,
    name: String,
    recorder: Recorder,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Pods bound by this scheduler that the cache does not show bound yet.
    assumed: HashMap<String, Assumed>,
    /// Last failed attempt per pod uid.
    failed: HashMap<String, Attempt>,
}

fn node_fingerprint(n: &Node) -> String {
    let spec = n.spec.as_ref();
    json!([
        n.name_any(),
        n.labels(),
        spec.and_then(|s| s.taints.as_ref()).map(|t| t
            .iter()
            .map(|t| (t.key.clone(), t.value.clone(), t.effect.clone()))
            .collect::<Vec<_>>()),
        spec.and_then(|s| s.unschedulable),
        n.status.as_ref().and_then(|s| s.allocatable.clone()),
        is_node_ready(n),
    ])
    .to_string()
}

/// Options of [`run`].
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The `schedulerName` served (default `default-scheduler`).
    pub scheduler_name: String,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            scheduler_name: DEFAULT_SCHEDULER.into(),
        }
    }
}

/// Run the scheduler until its watches end.
pub async fn run(client: Client, opts: SchedulerOptions) {
    let notify = Arc::new(Notify::new());
    let version = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let (n1, v1) = (notify.clone(), version.clone());
    let mut prints: HashMap<String, String> = HashMap::new();
    let (nodes, h1) = spawn_reflector(
        Api::<Node>::all(client.clone()),
        watch_config(),
        move |ev| {
            let changed = match ev {
                watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                    let fp = node_fingerprint(n);
                    prints.insert(n.name_any(), fp.clone()) != Some(fp)
                }
                watcher::Event::Delete(n) => prints.remove(&n.name_any()).is_some(),
                watcher::Event::InitDone => true,
                watcher::Event::Init => false,
            };
            if changed {
                v1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                n1.notify_one();
            }
        },
    );
    let (n2, v2) = (notify.clone(), version.clone());
    let (pods, h2) = spawn_reflector(Api::<Pod>::all(client.clone()), watch_config(), move |ev| {
        match ev {
            // A pod going away or finishing frees room on its node.
            watcher::Event::Delete(_) | watcher::Event::InitDone => {
                v2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            watcher::Event::Apply(p) if matches!(pod_phase(p), "Succeeded" | "Failed") => {
                v2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            _ => {}
        }
        n2.notify_one();
    });
    if nodes.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
        return;
    }
    tracing::info!(scheduler = %opts.scheduler_name, "scheduler caches synced");
    let mut s = Scheduler {
        recorder: Recorder::new(client.clone(), &opts.scheduler_name, None),
        client,
        name: opts.scheduler_name,
        pods,
        nodes,
        assumed: HashMap::new(),
        failed: HashMap::new(),
    };
    loop {
        let v = version.load(std::sync::atomic::Ordering::SeqCst);
        s.pass(v).await;
        if h1.is_finished() || h2.is_finished() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), notify.notified()).await;
    }
}

impl Scheduler {
    fn pending(&self) -> Vec<Arc<Pod>> {
        let mut v: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| {
                let spec = p.spec.as_ref();
                let sched = spec
                    .and_then(|s| s.scheduler_name.as_deref())
                    .filter(|n| !n.is_empty())
                    .unwrap_or(DEFAULT_SCHEDULER);
                pod_node(p).is_none()
                    && sched == self.name
                    && !is_deleting(p.as_ref())
                    && !matches!(pod_phase(p), "Succeeded" | "Failed")
                    && !p
                        .metadata
                        .uid
                        .as_ref()
                        .is_some_and(|u| self.assumed.contains_key(u))
            })
            .collect();
        v.sort_by_key(|p| {
            (
                std::cmp::Reverse(p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)),
                p.metadata.creation_timestamp.clone().map(|t| t.0),
                p.name_any(),
            )
        });
        v
    }

    /// Resources and per-owner pod counts bound to each node (cache plus assumed).
    fn usage(&mut self) -> (HashMap<String, Resources>, HashMap<(String, String), usize>) {
        let mut used: HashMap<String, Resources> = HashMap::new();
        let mut per_owner: HashMap<(String, String), usize> = HashMap::new();
        let pods = self.pods.state();
        // Forget assumptions the cache has caught up with (or that are stale).
        self.assumed.retain(|uid, a| {
            let seen = pods
                .iter()
                .find(|p| p.metadata.uid.as_deref() == Some(uid.as_str()));
            match seen {
                Some(p) => pod_node(p).is_none() && a.at.elapsed() < Duration::from_secs(30),
                None => a.at.elapsed() < Duration::from_secs(5),
            }
        });
        for p in &pods {
            let Some(n) = pod_node(p) else { continue };
            if matches!(pod_phase(p), "Succeeded" | "Failed") {
                continue;
            }
            let r = pod_requests(p);
            let u = used.entry(n.to_string()).or_default();
            u.cpu += r.cpu;
            u.memory += r.memory;
            u.pods += 1;
            if let Some(o) = controller_of(p.as_ref()) {
                *per_owner.entry((n.to_string(), o.uid.clone())).or_default() += 1;
            }
        }
        for a in self.assumed.values() {
            let u = used.entry(a.node.clone()).or_default();
            u.cpu += a.res.cpu;
            u.memory += a.res.memory;
            u.pods += 1;
            if let Some(o) = &a.owner {
                *per_owner.entry((a.node.clone(), o.clone())).or_default() += 1;
            }
        }
        (used, per_owner)
    }

    async fn pass(&mut self, version: u64) {
        let pending = self.pending();
        let live: std::collections::HashSet<String> = pending
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        self.failed.retain(|uid, _| live.contains(uid));
        for pod in pending {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if let Some(a) = self.failed.get(&uid) {
                if a.version == version && a.at.elapsed() < RETRY_UNSCHEDULABLE {
                    continue;
                }
            }
            self.schedule_one(&pod, &uid, version).await;
        }
    }

    async fn schedule_one(&mut self, pod: &Pod, uid: &str, version: u64) {
        let (used, per_owner) = self.usage();
        let nodes = self.nodes.state();
        let owner = controller_of(pod).map(|o| o.uid.clone());
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<((usize, i64, String), String)> = None;
        for node in &nodes {
            let name = node.name_any();
            let u = used.get(&name).copied().unwrap_or_default();
            let why = filter(pod, node, u);
            if !why.is_empty() {
                for r in why {
                    *reasons.entry(r).or_default() += 1;
                }
                continue;
            }
            let same = owner
                .as_ref()
                .and_then(|o| per_owner.get(&(name.clone(), o.clone())))
                .copied()
                .unwrap_or(0);
            let score = (same, u.pods, name.clone());
            if best.as_ref().is_none_or(|(b, _)| score < *b) {
                best = Some((score, name));
            }
        }
        let ns = pod.namespace().unwrap_or_default();
        let pname = pod.name_any();
        let Some((_, node)) = best else {
            let msg = fit_error(nodes.len(), &reasons);
            self.unschedulable(pod, uid, version, &msg).await;
            return;
        };
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pname.clone()),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let r: kube::Result<serde_json::Value> = api
            .create_subresource("binding", &pname, &PostParams::default(), &binding)
            .await;
        match r {
            Ok(_) => {
                tracing::info!(namespace = %ns, pod = %pname, node = %node, "bound pod");
                self.assumed.insert(
                    uid.to_string(),
                    Assumed {
                        node: node.clone(),
                        res: pod_requests(pod),
                        owner,
                        at: Instant::now(),
                    },
                );
                self.failed.remove(uid);
                self.recorder
                    .publish(
                        pod,
                        EventType::Normal,
                        "Scheduled",
                        &format!("Successfully assigned {ns}/{pname} to {node}"),
                    )
                    .await;
            }
            Err(e) if is_status(&e, 404) => {}
            Err(e) if is_status(&e, 409) => {
                // Already bound (by someone else) or a stale view: the cache will tell.
                tracing::debug!(namespace = %ns, pod = %pname, error = %e, "binding conflict");
            }
            Err(e) => {
                let msg = format!("Binding rejected: {e}");
                tracing::warn!(namespace = %ns, pod = %pname, node = %node, error = %e, "binding failed");
                self.unschedulable(pod, uid, version, &msg).await;
            }
        }
    }

    async fn unschedulable(&mut self, pod: &Pod, uid: &str, version: u64, msg: &str) {
        let ns = pod.namespace().unwrap_or_default();
        let pname = pod.name_any();
        let repeat = self.failed.get(uid).is_some_and(|a| a.message == msg);
        self.failed.insert(
            uid.to_string(),
            Attempt {
                version,
                at: Instant::now(),
                message: msg.to_string(),
            },
        );
        tracing::info!(namespace = %ns, pod = %pname, reason = %msg, "pod unschedulable");
        self.recorder
            .publish(pod, EventType::Warning, "FailedScheduling", msg)
            .await;
        if repeat {
            return;
        }
        let cond = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": msg, "lastProbeTime": null, "lastTransitionTime": now(),
        }]}});
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api
            .patch_status(&pname, &PatchParams::default(), &Patch::Strategic(&cond))
            .await
        {
            tracing::debug!(namespace = %ns, pod = %pname, error = %e, "could not set PodScheduled condition");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_message() {
        let mut r = BTreeMap::new();
        r.insert(
            "node(s) didn't match Pod's node affinity/selector".to_string(),
            2,
        );
        r.insert("Insufficient cpu".to_string(), 1);
        assert_eq!(
            fit_error(3, &r),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
        );
        assert_eq!(fit_error(0, &r), "no nodes available to schedule pods");
    }
}
