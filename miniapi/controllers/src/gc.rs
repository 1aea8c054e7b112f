//! The garbage collector: a graph of every object with its owner references, fed
//! by watches on all discovered resources (list+watch+delete). An object all of
//! whose owners are gone (verified by uid with a live GET) is deleted in the
//! background; one that lost only some owners has those references removed.
//! Owners deleted with `propagationPolicy=Foreground` (finalizer
//! `foregroundDeletion`) get their dependents deleted first, then the finalizer
//! removed; `Orphan` (finalizer `orphan`) gets the references removed from its
//! dependents, then the finalizer removed — for servers that implement those
//! policies with the upstream finalizers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::discovery::{verbs, ApiCapabilities, ApiResource, Scope};
use kube::core::DynamicObject;
use kube::discovery::Discovery;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

use crate::util::{is_status, Result};

/// A discovered resource type.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Group/version/kind/plural.
    pub ar: ApiResource,
    /// Scope and verbs.
    pub namespaced: bool,
    /// Verbs.
    pub verbs: Vec<String>,
}

/// Discover the preferred version of every resource the server serves.
pub async fn discover(client: &Client) -> kube::Result<Vec<Resource>> {
    let d = Discovery::new(client.clone()).run().await?;
    let mut out = Vec::new();
    for g in d.groups() {
        for (ar, caps) in g.recommended_resources() {
            out.push(resource(ar, &caps));
        }
    }
    Ok(out)
}

fn resource(ar: ApiResource, caps: &ApiCapabilities) -> Resource {
    Resource {
        ar,
        namespaced: caps.scope == Scope::Namespaced,
        verbs: caps.operations.clone(),
    }
}

impl Resource {
    /// Whether the resource supports a verb.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// A dynamic API in `ns` (ignored for cluster-scoped resources).
    pub fn api(&self, client: &Client, ns: Option<&str>) -> Api<DynamicObject> {
        match (self.namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &self.ar),
            _ => Api::all_with(client.clone(), &self.ar),
        }
    }
}

/// Whether the collector tracks a resource: it must list, watch and delete; events
/// are skipped (never owners, and served twice, as core/v1 and events.k8s.io/v1).
fn tracked(r: &Resource) -> bool {
    r.supports(verbs::LIST)
        && r.supports(verbs::WATCH)
        && r.supports(verbs::DELETE)
        && r.ar.plural != "events"
}

#[derive(Debug, Clone)]
struct Node {
    res: usize,
    ns: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

enum Msg {
    Init(usize),
    Apply(usize, DynamicObject, bool),
    Delete(DynamicObject),
    InitDone(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Work {
    /// Check that a dependent's owners exist.
    Owners(String),
    /// Progress a Foreground or Orphan deletion of an owner.
    Finalize(String),
}

struct Graph {
    resources: Vec<Resource>,
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    relisting: HashMap<usize, HashSet<String>>,
    synced: HashSet<usize>,
    queue: VecDeque<Work>,
    queued: HashSet<Work>,
}

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

impl Graph {
    fn push(&mut self, w: Work) {
        if self.queued.insert(w.clone()) {
            self.queue.push_back(w);
        }
    }

    fn upsert(&mut self, res: usize, obj: &DynamicObject) {
        let Some(uid) = obj.metadata.uid.clone() else {
            return;
        };
        let node = Node {
            res,
            ns: obj.namespace(),
            name: obj.name_any(),
            owners: obj.owner_references().to_vec(),
            deleting: obj.metadata.deletion_timestamp.is_some(),
            finalizers: obj.finalizers().to_vec(),
        };
        if let Some(old) = self.nodes.get(&uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(&uid);
                }
            }
        }
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        if !node.owners.is_empty() {
            self.push(Work::Owners(uid.clone()));
        }
        if node.deleting
            && node
                .finalizers
                .iter()
                .any(|f| f == FOREGROUND || f == ORPHAN)
        {
            self.push(Work::Finalize(uid.clone()));
        }
        // An owner being deleted in the foreground waits on its dependents.
        if node.deleting {
            for o in &node.owners {
                self.push(Work::Finalize(o.uid.clone()));
            }
        }
        self.nodes.insert(uid, node);
    }

    fn remove(&mut self, uid: &str) {
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        for o in &node.owners {
            if let Some(d) = self.dependents.get_mut(&o.uid) {
                d.remove(uid);
            }
            self.push(Work::Finalize(o.uid.clone()));
        }
        if let Some(deps) = self.dependents.get(uid).cloned() {
            for d in deps {
                self.push(Work::Owners(d));
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Init(r) => {
                self.relisting.insert(r, HashSet::new());
            }
            Msg::Apply(r, obj, initial) => {
                if initial {
                    if let (Some(set), Some(uid)) =
                        (self.relisting.get_mut(&r), obj.metadata.uid.clone())
                    {
                        set.insert(uid);
                    }
                }
                self.upsert(r, &obj);
            }
            Msg::Delete(obj) => {
                if let Some(uid) = obj.metadata.uid.as_deref() {
                    self.remove(uid);
                }
            }
            Msg::InitDone(r) => {
                if let Some(seen) = self.relisting.remove(&r) {
                    let stale: Vec<String> = self
                        .nodes
                        .iter()
                        .filter(|(uid, n)| n.res == r && !seen.contains(*uid))
                        .map(|(uid, _)| uid.clone())
                        .collect();
                    for uid in stale {
                        self.remove(&uid);
                    }
                }
                self.synced.insert(r);
            }
        }
    }

    fn find_resource(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        self.resources
            .iter()
            .find(|r| r.ar.api_version == api_version && r.ar.kind == kind)
            .or_else(|| {
                self.resources
                    .iter()
                    .find(|r| r.ar.group == group && r.ar.kind == kind)
            })
    }
}

/// Run the garbage collector until the client fails for good.
pub async fn run(client: Client) {
    let resources = loop {
        match discover(&client).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector: discovery failed, retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let resources: Vec<Resource> = resources.into_iter().filter(tracked).collect();
    tracing::info!(
        resources = ?resources.iter().map(|r| r.ar.plural.as_str()).collect::<Vec<_>>(),
        "garbage collector watching"
    );
    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    let mut tasks = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &r.ar);
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = s.next().await {
                let msg = match ev {
                    Ok(watcher::Event::Init) => Msg::Init(i),
                    Ok(watcher::Event::InitApply(o)) => Msg::Apply(i, o, true),
                    Ok(watcher::Event::Apply(o)) => Msg::Apply(i, o, false),
                    Ok(watcher::Event::Delete(o)) => Msg::Delete(o),
                    Ok(watcher::Event::InitDone) => Msg::InitDone(i),
                    Err(e) => {
                        tracing::debug!(error = %e, "garbage collector watch error");
                        continue;
                    }
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let n = resources.len();
    let mut g = Graph {
        resources,
        nodes: HashMap::new(),
        dependents: HashMap::new(),
        relisting: HashMap::new(),
        synced: HashSet::new(),
        queue: VecDeque::new(),
        queued: HashSet::new(),
    };
    let mut resync = tokio::time::interval(Duration::from_secs(30));
    let mut retry: Vec<Work> = Vec::new();
    loop {
        // Take in every pending event before working.
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => g.handle(m),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_secs(1)), if !retry.is_empty() => {
                for w in retry.drain(..) { g.push(w); }
            }
            _ = resync.tick() => {
                // Dependents of owners the collector does not watch need a periodic look.
                let missing: Vec<String> = g.nodes.iter()
                    .filter(|(_, node)| node.owners.iter().any(|o| !g.nodes.contains_key(&o.uid)))
                    .map(|(uid, _)| uid.clone()).collect();
                for uid in missing { g.push(Work::Owners(uid)); }
            }
        }
        while let Ok(m) = rx.try_recv() {
            g.handle(m);
        }
        if g.synced.len() < n {
            continue;
        }
        while let Some(w) = g.queue.pop_front() {
            g.queued.remove(&w);
            let r = match &w {
                Work::Owners(uid) => check_owners(&client, &g, uid).await,
                Work::Finalize(uid) => finalize(&client, &g, uid).await,
            };
            if let Err(e) = r {
                tracing::warn!(work = ?w, error = %e, "garbage collection failed, retrying in 1s");
                retry.push(w);
            }
            while let Ok(m) = rx.try_recv() {
                g.handle(m);
            }
        }
    }
    for t in tasks {
        t.abort();
    }
}

/// A 409 from a failed uid precondition (the object was replaced): nothing to do.
/// Other conflicts are retried.
fn precondition_failed(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.message.contains("recondition"))
}

/// Whether an owner exists (by uid): in the graph, or by a live GET.
async fn owner_exists(client: &Client, g: &Graph, dep: &Node, o: &OwnerReference) -> Result<bool> {
    if g.nodes.contains_key(&o.uid) {
        return Ok(true);
    }
    let Some(res) = g.find_resource(&o.api_version, &o.kind) else {
        // Unknown kind: never delete on a guess.
        return Ok(true);
    };
    let api = res.api(client, dep.ns.as_deref());
    match api.get_metadata_opt(&o.name).await {
        Ok(Some(m)) => Ok(m.metadata.uid.as_deref() == Some(o.uid.as_str())),
        Ok(None) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn check_owners(client: &Client, g: &Graph, uid: &str) -> Result<()> {
    let Some(node) = g.nodes.get(uid).cloned() else {
        return Ok(());
    };
    if node.owners.is_empty() || node.deleting {
        return Ok(());
    }
    let mut gone = Vec::new();
    for o in &node.owners {
        if !owner_exists(client, g, &node, o).await? {
            gone.push(o.uid.clone());
        }
    }
    if gone.is_empty() {
        return Ok(());
    }
    let res = &g.resources[node.res];
    let api = res.api(client, node.ns.as_deref());
    if gone.len() == node.owners.len() {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&node.name, &dp).await {
            Ok(_) => tracing::info!(
                kind = %res.ar.kind, namespace = ?node.ns, name = %node.name,
                "garbage collector deleted object whose owners are gone"
            ),
            Err(e) if is_status(&e, 404) || precondition_failed(&e) => {}
            Err(e) => return Err(e.into()),
        }
    } else {
        let keep: Vec<&OwnerReference> = node
            .owners
            .iter()
            .filter(|o| !gone.contains(&o.uid))
            .collect();
        let patch = json!({"metadata": {"ownerReferences": keep, "uid": uid}});
        match api
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(kind = %res.ar.kind, namespace = ?node.ns, name = %node.name, "removed references to deleted owners")
            }
            Err(e) if is_status(&e, 404) || precondition_failed(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Progress the Foreground/Orphan deletion of `uid`.
async fn finalize(client: &Client, g: &Graph, uid: &str) -> Result<()> {
    let Some(node) = g.nodes.get(uid).cloned() else {
        return Ok(());
    };
    if !node.deleting {
        return Ok(());
    }
    let foreground = node.finalizers.iter().any(|f| f == FOREGROUND);
    let orphan = node.finalizers.iter().any(|f| f == ORPHAN);
    if !foreground && !orphan {
        return Ok(());
    }
    let deps: Vec<(String, Node)> = g
        .dependents
        .get(uid)
        .into_iter()
        .flatten()
        .filter_map(|d| g.nodes.get(d).map(|n| (d.clone(), n.clone())))
        .collect();
    let mut remove = Vec::new();
    if orphan {
        for (duid, d) in &deps {
            let keep: Vec<&OwnerReference> = d.owners.iter().filter(|o| o.uid != uid).collect();
            let patch = json!({"metadata": {"ownerReferences": keep, "uid": duid}});
            let api = g.resources[d.res].api(client, d.ns.as_deref());
            match api
                .patch(&d.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        remove.push(ORPHAN);
    } else {
        let mut blocking = 0;
        for (duid, d) in &deps {
            let blocks = d
                .owners
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
            if blocks {
                blocking += 1;
            }
            if d.deleting {
                continue;
            }
            let api = g.resources[d.res].api(client, d.ns.as_deref());
            let dp = DeleteParams {
                propagation_policy: Some(if blocks {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                }),
                preconditions: Some(Preconditions {
                    uid: Some(duid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&d.name, &dp).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) || precondition_failed(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if blocking > 0 {
            return Ok(());
        }
        remove.push(FOREGROUND);
    }
    let keep: Vec<&String> = node
        .finalizers
        .iter()
        .filter(|f| !remove.contains(&f.as_str()))
        .collect();
    let api = g.resources[node.res].api(client, node.ns.as_deref());
    let patch = json!({"metadata": {"finalizers": keep}});
    match api
        .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = ?node.ns, name = %node.name, removed = ?remove, "finalized owner deletion")
        }
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Shared reference-counted resource list (for other controllers).
pub type Resources = Arc<Vec<Resource>>;
