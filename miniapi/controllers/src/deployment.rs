//! The Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>` and labelled with the hash; RollingUpdate
//! (maxSurge/maxUnavailable, 25% each by default) or Recreate; revision
//! annotations, history cleanup and status with the Available and Progressing
//! conditions that `kubectl rollout status` reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::runtime::{drain, error_policy, watch_config};
use crate::util::{
    controller_of, controller_ref, int_or_percent, is_deleting, is_status, now, pod_phase,
    pod_template_hash, seconds_since, selector_matches, Error, Result,
};

const NAME: &str = "deployment-controller";
/// The label carrying the template hash.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Revision annotation on deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

struct Ctx {
    client: Client,
    recorder: Recorder,
}

/// Run the Deployment controller until the watch streams end.
pub async fn run(client: Client) {
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), NAME, None),
        client: client.clone(),
    });
    let ctrl = Controller::new(Api::<Deployment>::all(client.clone()), watch_config());
    let store = ctrl.store();
    let stream = ctrl
        .watches(Api::<ReplicaSet>::all(client), watch_config(), move |rs| {
            deployments_for_rs(&store, &rs)
        })
        .run(reconcile, |d, e, _| error_policy(d.as_ref(), e, NAME), ctx);
    drain(NAME, stream).await;
}

fn deployments_for_rs(store: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(r) = controller_of(rs) {
        if r.kind == "Deployment" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    store
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| {
            d.spec
                .as_ref()
                .is_some_and(|s| selector_matches(&s.selector, rs.labels()))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Plan {
    replicas: i32,
    max_surge: i32,
    max_unavailable: i32,
}

impl Plan {
    fn new(d: &Deployment) -> Plan {
        let spec = d.spec.as_ref();
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
        let ru = spec
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.rolling_update.as_ref());
        let recreate = spec
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        let (mut max_surge, mut max_unavailable) = if recreate {
            (0, replicas)
        } else {
            (
                int_or_percent(ru.and_then(|r| r.max_surge.as_ref()), "25%", replicas, true),
                int_or_percent(
                    ru.and_then(|r| r.max_unavailable.as_ref()),
                    "25%",
                    replicas,
                    false,
                ),
            )
        };
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        max_surge = max_surge.max(0);
        Plan {
            replicas,
            max_surge,
            max_unavailable: max_unavailable.min(replicas).max(0),
        }
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action> {
    if is_deleting(d.as_ref()) {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| Error::Other("deployment without spec".into()))?;
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = controller_ref("apps/v1", "Deployment", &d.name_any(), &uid);

    // Claim ReplicaSets.
    let mut owned: Vec<ReplicaSet> = Vec::new();
    for rs in rs_api.list(&ListParams::default()).await?.items {
        let matches = selector_matches(&spec.selector, rs.labels());
        match controller_of(&rs).map(|r| r.uid.clone()) {
            Some(u) if u == uid => {
                if matches {
                    owned.push(rs);
                } else if !is_deleting(&rs) {
                    let refs: Vec<&OwnerReference> = rs
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != uid)
                        .collect();
                    let patch =
                        json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                    crate::util::ignore_not_found(
                        rs_api
                            .patch(
                                &rs.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await,
                    )?;
                }
            }
            None if matches && !is_deleting(&rs) => {
                let mut refs = rs.owner_references().to_vec();
                refs.push(owner.clone());
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                if let Some(rs) = crate::util::ignore_not_found(
                    rs_api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await,
                )? {
                    owned.push(rs);
                }
            }
            _ => {}
        }
    }
    owned.sort_by(|a, b| {
        (a.metadata.creation_timestamp.clone(), a.name_any())
            .cmp(&(b.metadata.creation_timestamp.clone(), b.name_any()))
    });

    let template = spec.template.clone();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = pod_template_hash(&template, collision);
    let new_idx = owned
        .iter()
        .position(|rs| rs.labels().get(HASH_LABEL) == Some(&hash));
    let max_old_rev = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| revision_of(rs))
        .max()
        .unwrap_or(0);
    let plan = Plan::new(&d);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let paused = spec.paused.unwrap_or(false);

    let mut new_rs: Option<ReplicaSet> = new_idx.map(|i| owned[i].clone());
    let mut old: Vec<ReplicaSet> = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| rs.clone())
        .collect();
    let mut just_created = false;

    // Keep the new set's revision the highest (a rollback re-uses an old set).
    if let Some(rs) = &new_rs {
        if revision_of(rs) <= max_old_rev {
            let rev = (max_old_rev + 1).to_string();
            let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
            new_rs = Some(
                rs_api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?,
            );
        }
    }

    if !paused {
        let old_active = old.iter().any(|rs| spec_replicas(rs) > 0);
        if recreate {
            if old_active {
                for rs in old.iter_mut() {
                    if spec_replicas(rs) > 0 {
                        *rs = scale(&ctx, &d, rs, 0, &plan).await?;
                    }
                }
                sync_status(
                    &ctx,
                    &d,
                    new_rs.as_ref(),
                    &owned_now(&new_rs, &old),
                    &plan,
                    false,
                )
                .await?;
                return Ok(Action::requeue(Duration::from_secs(300)));
            }
            if old_pods_running(&ctx, &ns, &old).await? {
                sync_status(
                    &ctx,
                    &d,
                    new_rs.as_ref(),
                    &owned_now(&new_rs, &old),
                    &plan,
                    false,
                )
                .await?;
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            if new_rs.is_none() {
                new_rs = Some(
                    create_new_rs(&ctx, &d, &hash, plan.replicas, max_old_rev + 1, &plan).await?,
                );
                just_created = true;
            } else if let Some(rs) = new_rs.as_mut() {
                if spec_replicas(rs) != plan.replicas {
                    *rs = scale(&ctx, &d, rs, plan.replicas, &plan).await?;
                }
            }
        } else {
            // Rolling update: scale the new set up within maxSurge.
            let all_spec: i32 = old.iter().map(spec_replicas).sum::<i32>()
                + new_rs.as_ref().map(spec_replicas).unwrap_or(0);
            match new_rs.as_mut() {
                None => {
                    let max_total = plan.replicas + plan.max_surge;
                    let n = if old.is_empty() {
                        plan.replicas
                    } else {
                        (max_total - all_spec).clamp(0, plan.replicas)
                    };
                    new_rs = Some(create_new_rs(&ctx, &d, &hash, n, max_old_rev + 1, &plan).await?);
                    just_created = true;
                }
                Some(rs) => {
                    let cur = spec_replicas(rs);
                    let target = if cur > plan.replicas {
                        plan.replicas
                    } else if cur < plan.replicas {
                        let max_total = plan.replicas + plan.max_surge;
                        if all_spec >= max_total {
                            cur
                        } else {
                            cur + (max_total - all_spec).min(plan.replicas - cur)
                        }
                    } else {
                        cur
                    };
                    if target != cur {
                        *rs = scale(&ctx, &d, rs, target, &plan).await?;
                    }
                }
            }
            if let Some(nrs) = new_rs.clone() {
                scale_down_old(&ctx, &d, &nrs, &mut old, &plan).await?;
            }
        }
    }

    let all = owned_now(&new_rs, &old);
    let complete = sync_status(&ctx, &d, new_rs.as_ref(), &all, &plan, just_created).await?;
    if complete {
        cleanup_history(&ctx, &d, &old).await?;
    }
    let deadline = spec.progress_deadline_seconds.unwrap_or(600).max(1) as u64;
    Ok(Action::requeue(Duration::from_secs(if complete {
        300
    } else {
        deadline.min(30)
    })))
}

fn owned_now(new_rs: &Option<ReplicaSet>, old: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let mut v: Vec<ReplicaSet> = old.to_vec();
    if let Some(n) = new_rs {
        v.push(n.clone());
    }
    v
}

/// Whether any pod of the old sets still exists and is not terminal (Recreate waits).
async fn old_pods_running(ctx: &Ctx, ns: &str, old: &[ReplicaSet]) -> Result<bool> {
    if old.is_empty() {
        return Ok(false);
    }
    let uids: Vec<String> = old.iter().filter_map(|r| r.metadata.uid.clone()).collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    Ok(pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|p| {
            controller_of(p).is_some_and(|r| uids.contains(&r.uid))
                && !matches!(pod_phase(p), "Succeeded" | "Failed")
        }))
}

async fn create_new_rs(
    ctx: &Ctx,
    d: &Deployment,
    hash: &str,
    replicas: i32,
    revision: i64,
    plan: &Plan,
) -> Result<ReplicaSet> {
    let ns = d.namespace().unwrap_or_default();
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| Error::Other("no spec".into()))?;
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(Default::default);
    tmeta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let labels = tmeta.labels.clone();
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let mut annotations: BTreeMap<String, String> = d
        .annotations()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("deployment.kubernetes.io/")
                && k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED.into(), plan.replicas.to_string());
    annotations.insert(
        MAX_REPLICAS.into(),
        (plan.replicas + plan.max_surge).to_string(),
    );
    let name = format!("{}-{}", d.name_any(), hash);
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(
                "apps/v1",
                "Deployment",
                &d.name_any(),
                d.metadata.uid.as_deref().unwrap_or(""),
            )]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &rs).await {
        Ok(created) => {
            tracing::info!(namespace = %ns, deployment = %d.name_any(), replicaset = %name, replicas, "created replicaset");
            ctx.recorder
                .publish(
                    d,
                    EventType::Normal,
                    "ScalingReplicaSet",
                    &format!("Scaled up replica set {name} from 0 to {replicas}"),
                )
                .await;
            Ok(created)
        }
        Err(e) if is_status(&e, 409) => {
            // A set of that name exists but is not ours (or not yet seen): a hash
            // collision bumps collisionCount, which changes the hash.
            let existing = api.get(&name).await?;
            let ours = controller_of(&existing)
                .is_some_and(|r| Some(r.uid.as_str()) == d.metadata.uid.as_deref());
            if ours {
                return Ok(existing);
            }
            let count = d
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0)
                + 1;
            let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            dapi.patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"collisionCount": count}})),
            )
            .await?;
            Err(Error::Other(format!("replicaset {name} exists and is not owned by the deployment; collisionCount now {count}")))
        }
        Err(e) => Err(e.into()),
    }
}

async fn scale(
    ctx: &Ctx,
    d: &Deployment,
    rs: &ReplicaSet,
    to: i32,
    plan: &Plan,
) -> Result<ReplicaSet> {
    let from = spec_replicas(rs);
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let patch = json!({
        "metadata": {"annotations": {
            DESIRED: plan.replicas.to_string(),
            MAX_REPLICAS: (plan.replicas + plan.max_surge).to_string(),
        }},
        "spec": {"replicas": to},
    });
    let out = api
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    let verb = if to > from { "up" } else { "down" };
    tracing::info!(namespace = ?rs.namespace(), deployment = %d.name_any(), replicaset = %rs.name_any(), from, to, "scaled replicaset");
    ctx.recorder
        .publish(
            d,
            EventType::Normal,
            "ScalingReplicaSet",
            &format!(
                "Scaled {verb} replica set {} from {from} to {to}",
                rs.name_any()
            ),
        )
        .await;
    Ok(out)
}

/// Upstream's reconcileOldReplicaSets: clean up unhealthy old pods, then scale old
/// sets down as far as maxUnavailable allows (oldest first).
async fn scale_down_old(
    ctx: &Ctx,
    d: &Deployment,
    new_rs: &ReplicaSet,
    old: &mut [ReplicaSet],
    plan: &Plan,
) -> Result<()> {
    let old_count: i32 = old.iter().map(spec_replicas).sum();
    if old_count == 0 {
        return Ok(());
    }
    let all_count = old_count + spec_replicas(new_rs);
    let min_available = plan.replicas - plan.max_unavailable;
    let new_unavailable = spec_replicas(new_rs) - status_of(new_rs).2;
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(());
    }
    // Unhealthy replicas of old sets go first.
    let mut budget = max_scaled_down;
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if budget <= 0 {
            break;
        }
        let (sp, avail) = (spec_replicas(rs), status_of(rs).2);
        if sp == 0 || sp <= avail {
            continue;
        }
        let n = budget.min(sp - avail);
        *rs = scale(ctx, d, rs, sp - n, plan).await?;
        budget -= n;
        cleaned += n;
    }
    // Then healthy ones, keeping minAvailable.
    let available: i32 = old
        .iter()
        .map(|r| status_of(r).2.min(spec_replicas(r)))
        .sum::<i32>()
        + status_of(new_rs).2;
    if available <= min_available {
        return Ok(());
    }
    let mut remaining = (available - min_available).min(max_scaled_down - cleaned);
    for rs in old.iter_mut() {
        if remaining <= 0 {
            break;
        }
        let sp = spec_replicas(rs);
        if sp == 0 {
            continue;
        }
        let n = sp.min(remaining);
        *rs = scale(ctx, d, rs, sp - n, plan).await?;
        remaining -= n;
    }
    Ok(())
}

fn set_condition(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    bump_update: bool,
) {
    let t = now();
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(t.clone());
            }
            if c.status != status
                || c.reason.as_deref() != Some(reason)
                || c.message.as_deref() != Some(message.as_str())
                || bump_update
            {
                c.last_update_time = Some(t);
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message);
        }
        None => conds.push(DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(t.clone()),
            last_update_time: Some(t),
        }),
    }
}

/// Compute and write the status; returns whether the rollout is complete.
async fn sync_status(
    ctx: &Ctx,
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[ReplicaSet],
    plan: &Plan,
    just_created: bool,
) -> Result<bool> {
    let replicas: i32 = all.iter().map(|r| status_of(r).0).sum();
    let ready: i32 = all.iter().map(|r| status_of(r).1).sum();
    let available: i32 = all.iter().map(|r| status_of(r).2).sum();
    let total_spec: i32 = all.iter().map(spec_replicas).sum();
    let updated = new_rs.map(|r| status_of(r).0).unwrap_or(0);
    let generation = d.metadata.generation.unwrap_or(0);
    let old = d.status.clone().unwrap_or_default();
    let mut conds = old.conditions.clone().unwrap_or_default();
    let want = plan.replicas;

    if available >= want - plan.max_unavailable {
        set_condition(
            &mut conds,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            false,
        );
    } else {
        set_condition(
            &mut conds,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            false,
        );
    }
    let complete = updated == want
        && replicas == want
        && available == want
        && new_rs.is_some_and(|r| spec_replicas(r) == want);
    let rs_name = new_rs.map(|r| r.name_any()).unwrap_or_default();
    let progressed = old.replicas.unwrap_or(0) != replicas
        || old.updated_replicas.unwrap_or(0) != updated
        || old.ready_replicas.unwrap_or(0) != ready
        || old.available_replicas.unwrap_or(0) != available;
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused {
        set_condition(
            &mut conds,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            false,
        );
    } else if complete {
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            false,
        );
    } else if just_created {
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{rs_name}\""),
            true,
        );
    } else {
        let deadline = d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600);
        let stalled = !progressed
            && conds
                .iter()
                .find(|c| c.type_ == "Progressing")
                .and_then(|c| c.last_update_time.as_ref())
                .is_some_and(|t| seconds_since(t) > f64::from(deadline));
        if stalled {
            set_condition(
                &mut conds,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                false,
            );
        } else {
            set_condition(
                &mut conds,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
                progressed,
            );
        }
    }
    conds.sort_by(|a, b| {
        let rank = |t: &str| if t == "Available" { 0 } else { 1 };
        rank(&a.type_).cmp(&rank(&b.type_))
    });
    let status = DeploymentStatus {
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        observed_generation: Some(generation),
        collision_count: old.collision_count,
        conditions: Some(conds),
        terminating_replicas: old.terminating_replicas,
    };
    let norm = |s: &DeploymentStatus| {
        let mut s = s.clone();
        for f in [
            &mut s.replicas,
            &mut s.updated_replicas,
            &mut s.ready_replicas,
            &mut s.available_replicas,
            &mut s.unavailable_replicas,
        ] {
            f.get_or_insert(0);
        }
        s.observed_generation.get_or_insert(0);
        s
    };
    let rev = new_rs.map(|r| revision_of(r).to_string());
    let ns = d.namespace().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(rev) = rev.filter(|r| d.annotations().get(REVISION) != Some(r) && r != "0") {
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        crate::util::ignore_not_found(
            api.patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await,
        )?;
    }
    if norm(&old) != norm(&status) {
        let patch = json!({"status": {
            "replicas": status.replicas, "updatedReplicas": status.updated_replicas,
            "readyReplicas": status.ready_replicas, "availableReplicas": status.available_replicas,
            "unavailableReplicas": status.unavailable_replicas,
            "observedGeneration": status.observed_generation, "conditions": status.conditions,
        }});
        crate::util::ignore_not_found(
            api.patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await,
        )?;
    }
    Ok(complete)
}

/// Delete old, scaled-down sets beyond `revisionHistoryLimit` (default 10), oldest first.
async fn cleanup_history(ctx: &Ctx, d: &Deployment, old: &[ReplicaSet]) -> Result<()> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let mut idle: Vec<&ReplicaSet> = old
        .iter()
        .filter(|rs| spec_replicas(rs) == 0 && status_of(rs).0 == 0 && !is_deleting(*rs))
        .collect();
    if idle.len() <= limit {
        return Ok(());
    }
    idle.sort_by_key(|rs| revision_of(rs));
    let n = idle.len() - limit;
    for rs in idle.into_iter().take(n) {
        let api: Api<ReplicaSet> =
            Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
        tracing::info!(namespace = ?rs.namespace(), replicaset = %rs.name_any(), "deleting old replicaset (revision history limit)");
        crate::util::ignore_not_found(
            api.delete(&rs.name_any(), &DeleteParams::background())
                .await,
        )?;
    }
    Ok(())
}
