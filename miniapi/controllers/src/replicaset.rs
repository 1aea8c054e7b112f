//! The ReplicaSet controller: keep `spec.replicas` active pods that match the
//! selector, created from the template with `generateName: <rs>-` and a controller
//! owner reference; adopt matching orphans, release owned pods that stopped
//! matching, and report status (replicas, fullyLabeled, ready, available,
//! observedGeneration).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::runtime::{drain, error_policy, watch_config};
use crate::util::{
    controller_of, controller_ref, is_deleting, is_pod_active, is_pod_available, is_pod_ready,
    map_matches, pod_node, pod_phase, selector_matches, Error, Result,
};

const NAME: &str = "replicaset-controller";
/// At most this many pods are created or deleted in one sync (upstream's burstReplicas).
const BURST: usize = 500;

struct Ctx {
    client: Client,
    recorder: Recorder,
}

/// Run the ReplicaSet controller until the watch streams end.
pub async fn run(client: Client) {
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), NAME, None),
        client: client.clone(),
    });
    let ctrl = Controller::new(Api::<ReplicaSet>::all(client.clone()), watch_config());
    let store = ctrl.store();
    let stream = ctrl
        .watches(Api::<Pod>::all(client), watch_config(), move |pod| {
            replicasets_for_pod(&store, &pod)
        })
        .run(
            reconcile,
            |rs, e, _| error_policy(rs.as_ref(), e, NAME),
            ctx,
        );
    drain(NAME, stream).await;
}

/// The controller of a pod, or (for an orphan) every ReplicaSet whose selector matches it.
fn replicasets_for_pod(store: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = controller_of(pod) {
        if r.kind == "ReplicaSet" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    if is_deleting(pod) {
        return Vec::new();
    }
    store
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .filter(|rs| {
            rs.spec
                .as_ref()
                .is_some_and(|s| selector_matches(&s.selector, pod.labels()))
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

fn rs_ref(rs: &ReplicaSet) -> OwnerReference {
    controller_ref(
        "apps/v1",
        "ReplicaSet",
        &rs.name_any(),
        rs.metadata.uid.as_deref().unwrap_or(""),
    )
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action> {
    if is_deleting(rs.as_ref()) {
        return Ok(Action::await_change());
    }
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let spec = rs
        .spec
        .as_ref()
        .ok_or_else(|| Error::Other("replicaset without spec".into()))?;
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let all = pods_api.list(&ListParams::default()).await?.items;

    // Claim: owned and matching, adopt matching orphans, release owned non-matching.
    let mut owned: Vec<Pod> = Vec::new();
    for pod in all {
        let matches = selector_matches(&spec.selector, pod.labels());
        match controller_of(&pod).map(|r| r.uid.clone()) {
            Some(u) if u == uid => {
                if matches {
                    owned.push(pod);
                } else if !is_deleting(&pod) {
                    release(&pods_api, &pod, &uid).await?;
                }
            }
            None if matches && !is_deleting(&pod) => {
                if let Some(p) = adopt(&pods_api, &pod, rs_ref(&rs)).await? {
                    tracing::info!(namespace = %ns, replicaset = %name, pod = %p.name_any(), "adopted pod");
                    owned.push(p);
                }
            }
            _ => {}
        }
    }
    let active: Vec<&Pod> = owned.iter().filter(|p| is_pod_active(p)).collect();

    let mut failure: Option<String> = None;
    if active.len() < want {
        let n = (want - active.len()).min(BURST);
        if let Err(e) = create_pods(&ctx, &rs, &pods_api, n).await {
            failure = Some(e.to_string());
        }
    } else if active.len() > want {
        let n = (active.len() - want).min(BURST);
        let victims = pods_to_delete(&active, n);
        let results = join_all(victims.iter().map(|p| {
            let api = pods_api.clone();
            let pname = p.name_any();
            async move {
                match api.delete(&pname, &DeleteParams::default()).await {
                    Ok(_) => Ok(pname),
                    Err(e) if crate::util::is_status(&e, 404) => Ok(pname),
                    Err(e) => Err((pname, e)),
                }
            }
        }))
        .await;
        for r in results {
            match r {
                Ok(p) => {
                    ctx.recorder
                        .publish(
                            rs.as_ref(),
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {p}"),
                        )
                        .await
                }
                Err((p, e)) => {
                    ctx.recorder
                        .publish(
                            rs.as_ref(),
                            EventType::Warning,
                            "FailedDelete",
                            &format!("Error deleting: pod {p}: {e}"),
                        )
                        .await;
                    failure.get_or_insert(e.to_string());
                }
            }
        }
    }

    update_status(&ctx, &rs, &owned, min_ready, failure.as_deref()).await?;
    if let Some(f) = failure {
        return Err(Error::Other(f));
    }
    // Pods that are ready but not yet available (minReadySeconds) need a later look.
    if min_ready > 0
        && active
            .iter()
            .any(|p| is_pod_ready(p) && !is_pod_available(p, min_ready))
    {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn adopt(api: &Api<Pod>, pod: &Pod, owner: OwnerReference) -> Result<Option<Pod>> {
    let mut refs = pod.owner_references().to_vec();
    refs.push(owner);
    let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(p) => Ok(Some(p)),
        Err(e) if crate::util::is_status(&e, 404) || crate::util::is_status(&e, 409) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn release(api: &Api<Pod>, pod: &Pod, uid: &str) -> Result<()> {
    let refs: Vec<&OwnerReference> = pod
        .owner_references()
        .iter()
        .filter(|r| r.uid != uid)
        .collect();
    let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
    crate::util::ignore_not_found(
        api.patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await,
    )?;
    tracing::info!(namespace = ?pod.namespace(), pod = %pod.name_any(), "released pod");
    Ok(())
}

/// The pod a ReplicaSet creates from its template.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![rs_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Create `n` pods in slow-start batches (1, 2, 4, ...), stopping at the first failure.
async fn create_pods(ctx: &Ctx, rs: &ReplicaSet, api: &Api<Pod>, n: usize) -> Result<()> {
    let pod = pod_from_template(rs);
    let pp = PostParams::default();
    let mut remaining = n;
    let mut batch = 1usize;
    while remaining > 0 {
        let size = batch.min(remaining);
        let results = join_all((0..size).map(|_| api.create(&pp, &pod))).await;
        let mut err = None;
        for r in results {
            match r {
                Ok(p) => {
                    tracing::debug!(namespace = ?rs.namespace(), replicaset = %rs.name_any(), pod = %p.name_any(), "created pod");
                    ctx.recorder
                        .publish(
                            rs,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {}", p.name_any()),
                        )
                        .await;
                }
                Err(e) => {
                    let msg = match &e {
                        kube::Error::Api(s) => s.message.clone(),
                        other => other.to_string(),
                    };
                    ctx.recorder
                        .publish(
                            rs,
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating: {msg}"),
                        )
                        .await;
                    err = Some(e);
                }
            }
        }
        if let Some(e) = err {
            return Err(e.into());
        }
        remaining -= size;
        batch *= 2;
    }
    Ok(())
}

/// Pick `n` pods to delete, upstream's order: unassigned before assigned, Pending before
/// Unknown before Running, not ready before ready, more pods of this set on the same
/// node first, ready for less time first, more restarts first, newer first.
pub fn pods_to_delete<'a>(active: &[&'a Pod], n: usize) -> Vec<&'a Pod> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in active {
        if let Some(node) = pod_node(p) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let mut pods: Vec<&Pod> = active.to_vec();
    pods.sort_by_key(|p| {
        let assigned = pod_node(p).is_some();
        let phase = match pod_phase(p) {
            "Pending" => 0,
            "Unknown" => 1,
            _ => 2,
        };
        let ready = is_pod_ready(p);
        let colocated = pod_node(p).map(|n| per_node[n]).unwrap_or(0);
        let ready_since = crate::util::pod_ready_condition(p)
            .filter(|c| c.status == "True")
            .and_then(|c| c.last_transition_time.clone())
            .map(|t| t.0);
        let restarts: i32 = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).sum())
            .unwrap_or(0);
        let created = p.metadata.creation_timestamp.clone().map(|t| t.0);
        (
            assigned,
            phase,
            ready,
            Reverse(colocated),
            Reverse(ready_since),
            Reverse(restarts),
            Reverse(created),
        )
    });
    pods.truncate(n);
    pods
}

async fn update_status(
    ctx: &Ctx,
    rs: &ReplicaSet,
    owned: &[Pod],
    min_ready: i32,
    failure: Option<&str>,
) -> Result<()> {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let active: Vec<&Pod> = owned.iter().filter(|p| is_pod_active(p)).collect();
    let replicas = active.len() as i32;
    let fully = active
        .iter()
        .filter(|p| map_matches(&template_labels, p.labels()))
        .count() as i32;
    let ready = active.iter().filter(|p| is_pod_ready(p)).count() as i32;
    let available = active
        .iter()
        .filter(|p| is_pod_available(p, min_ready))
        .count() as i32;
    let generation = rs.metadata.generation.unwrap_or(0);
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let had_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some(msg) if !had_failure => {
            conditions.push(k8s_openapi::api::apps::v1::ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                message: Some(msg.into()),
                last_transition_time: Some(crate::util::now()),
            })
        }
        None if had_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    let same = old.replicas == replicas
        && old.fully_labeled_replicas.unwrap_or(0) == fully
        && old.ready_replicas.unwrap_or(0) == ready
        && old.available_replicas.unwrap_or(0) == available
        && old.observed_generation.unwrap_or(0) == generation
        && old.conditions.clone().unwrap_or_default() == conditions;
    if same {
        return Ok(());
    }
    let patch = json!({"status": {
        "replicas": replicas,
        "fullyLabeledReplicas": fully,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": generation,
        "conditions": conditions,
    }});
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    crate::util::ignore_not_found(
        api.patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn deletion_order() {
        let a = pod("a", Some("n1"), "Running", true);
        let b = pod("b", None, "Pending", false);
        let c = pod("c", Some("n1"), "Running", false);
        let d = pod("d", Some("n2"), "Running", true);
        let active = vec![&a, &b, &c, &d];
        let order: Vec<String> = pods_to_delete(&active, 4)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(order, vec!["b", "c", "a", "d"]);
    }
}
