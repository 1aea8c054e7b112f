//! The Endpoints and EndpointSlice controllers: for every Service with a selector,
//! the pods it selects become endpoints (ready pods under `addresses`, the others
//! under `notReadyAddresses`; in slices, with ready/serving/terminating conditions),
//! each with nodeName and a targetRef, and ports resolved by name from the pods'
//! container ports. Services without a selector are left alone. When a Service is
//! deleted its Endpoints go too (slices are owned by the Service and are removed
//! with it by the garbage collector, or here when the server does not cascade).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};

use crate::runtime::{drain, error_policy, watch_config};
use crate::util::{
    controller_ref, ignore_not_found, is_deleting, is_pod_ready, map_matches, map_selector_string,
    now, pod_node, pod_phase, Error, Result,
};

/// The annotation upstream sets on Endpoints and slices.
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the manager of a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Which object a controller maintains.
#[derive(Clone, Copy, Debug)]
enum Target {
    Endpoints,
    Slices,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Endpoints => "endpoint-controller",
            Target::Slices => "endpointslice-controller",
        }
    }
}

struct Ctx {
    client: Client,
    target: Target,
}

/// Run the Endpoints controller (and the Service-deletion cleanup) until the streams end.
pub async fn run_endpoints(client: Client) {
    let cleanup = tokio::spawn(cleanup_on_service_delete(client.clone()));
    let ctrl = Controller::new(Api::<Service>::all(client.clone()), watch_config());
    let store = ctrl.store();
    let memory = Arc::new(Mutex::new(HashMap::new()));
    let stream = ctrl
        .watches(
            Api::<Pod>::all(client.clone()),
            watch_config(),
            move |pod| services_for_pod(&store, &memory, &pod),
        )
        .watches(
            Api::<Endpoints>::all(client.clone()),
            watch_config(),
            |ep| Some(ObjectRef::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default())),
        )
        .run(
            reconcile,
            |s, e, ctx| error_policy(s.as_ref(), e, ctx.target.name()),
            Arc::new(Ctx {
                client,
                target: Target::Endpoints,
            }),
        );
    drain("endpoint-controller", stream).await;
    cleanup.abort();
}

/// Run the EndpointSlice controller until the streams end.
pub async fn run_slices(client: Client) {
    let ctrl = Controller::new(Api::<Service>::all(client.clone()), watch_config());
    let store = ctrl.store();
    let memory = Arc::new(Mutex::new(HashMap::new()));
    let stream = ctrl
        .watches(
            Api::<Pod>::all(client.clone()),
            watch_config(),
            move |pod| services_for_pod(&store, &memory, &pod),
        )
        .watches(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
            |s| {
                let ns = s.namespace().unwrap_or_default();
                s.labels()
                    .get(SERVICE_NAME_LABEL)
                    .map(|svc| ObjectRef::new(svc).within(&ns))
            },
        )
        .run(
            reconcile,
            |s, e, ctx| error_policy(s.as_ref(), e, ctx.target.name()),
            Arc::new(Ctx {
                client,
                target: Target::Slices,
            }),
        );
    drain("endpointslice-controller", stream).await;
}

type Memory = Arc<Mutex<HashMap<String, HashSet<ObjectRef<Service>>>>>;

/// The Services selecting a pod now, plus those that selected it at its previous
/// event (so a label change or deletion updates the Service it left).
fn services_for_pod(store: &Store<Service>, memory: &Memory, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace().unwrap_or_default();
    let now: HashSet<ObjectRef<Service>> = store
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|sp| sp.selector.as_ref())
                .is_some_and(|sel| !sel.is_empty() && map_matches(sel, pod.labels()))
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect();
    let key = pod
        .metadata
        .uid
        .clone()
        .unwrap_or_else(|| format!("{ns}/{}", pod.name_any()));
    let mut out = now.clone();
    if let Ok(mut m) = memory.lock() {
        if let Some(prev) = m.get(&key) {
            out.extend(prev.iter().cloned());
        }
        m.insert(key, now);
        if m.len() > 100_000 {
            m.clear();
        }
    }
    out.into_iter().collect()
}

/// Delete a Service's Endpoints (and managed slices) when the Service is deleted.
async fn cleanup_on_service_delete(client: Client) {
    let mut stream = watcher(Api::<Service>::all(client.clone()), watch_config())
        .default_backoff()
        .boxed();
    while let Some(ev) = stream.next().await {
        let svc = match ev {
            Ok(watcher::Event::Delete(svc)) => svc,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "service watch error");
                continue;
            }
        };
        let ns = svc.namespace().unwrap_or_default();
        let name = svc.name_any();
        let eps: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
        match ignore_not_found(eps.delete(&name, &DeleteParams::default()).await) {
            Ok(Some(_)) => {
                tracing::info!(namespace = %ns, service = %name, "deleted endpoints of deleted service")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(namespace = %ns, service = %name, error = %e, "could not delete endpoints")
            }
        }
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        let lp = ListParams::default().labels(&format!(
            "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        ));
        if let Ok(list) = slices.list(&lp).await {
            for s in list.items {
                if let Err(e) =
                    ignore_not_found(slices.delete(&s.name_any(), &DeleteParams::default()).await)
                {
                    tracing::warn!(namespace = %ns, slice = %s.name_any(), error = %e, "could not delete endpointslice");
                }
            }
        }
    }
}

/// One pod as an endpoint of one Service.
#[derive(Debug, Clone)]
struct PodEndpoint {
    ip: String,
    node: Option<String>,
    hostname: Option<String>,
    target: ObjectReference,
    ready: bool,
    serving: bool,
    terminating: bool,
    /// Resolved (service port name, port, protocol, appProtocol).
    ports: Vec<(String, i32, String, Option<String>)>,
}

/// The port of `pod` a Service port targets: a number, or a container port looked
/// up by name.
pub fn resolve_target_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(i)) => Some(*i),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

fn pod_endpoints(svc: &Service, pods: &[Pod], include_terminating: bool) -> Vec<PodEndpoint> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let svc_name = svc.name_any();
    let mut out = Vec::new();
    for pod in pods {
        let phase = pod_phase(pod);
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let terminating = is_deleting(pod);
        if terminating && !include_terminating && !publish_not_ready {
            continue;
        }
        let pod_ready = is_pod_ready(pod);
        let ready = (pod_ready && !terminating) || publish_not_ready;
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|sp| {
                resolve_target_port(sp, pod).map(|p| {
                    (
                        sp.name.clone().unwrap_or_default(),
                        p,
                        sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        sp.app_protocol.clone(),
                    )
                })
            })
            .collect();
        let pspec = pod.spec.as_ref();
        let hostname = pspec
            .and_then(|s| s.hostname.clone())
            .filter(|_| pspec.and_then(|s| s.subdomain.as_deref()) == Some(svc_name.as_str()));
        out.push(PodEndpoint {
            ip,
            node: pod_node(pod).map(String::from),
            hostname,
            target: ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            ready,
            serving: pod_ready || publish_not_ready,
            terminating,
            ports,
        });
    }
    out.sort_by(|a, b| (&a.ip, &a.target.name).cmp(&(&b.ip, &b.target.name)));
    out
}

/// Endpoints subsets: one per distinct set of resolved ports.
fn subsets(eps: &[PodEndpoint]) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<PortKey, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for e in eps {
        if e.ports.is_empty() {
            continue;
        }
        let mut ports = e.ports.clone();
        ports.sort();
        let addr = EndpointAddress {
            ip: e.ip.clone(),
            node_name: e.node.clone(),
            hostname: e.hostname.clone(),
            target_ref: Some(e.target.clone()),
        };
        let g = groups.entry(ports).or_default();
        if e.ready {
            g.0.push(addr);
        } else {
            g.1.push(addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: Some(
                ports
                    .into_iter()
                    .map(|(name, port, protocol, app)| EndpointPort {
                        name: (!name.is_empty()).then_some(name),
                        port,
                        protocol: Some(protocol),
                        app_protocol: app,
                    })
                    .collect(),
            ),
        })
        .collect()
}

fn service_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    let spec = svc.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    if selector.is_empty()
        || spec.type_.as_deref() == Some("ExternalName")
        || is_deleting(svc.as_ref())
    {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let lp = ListParams::default().labels(&map_selector_string(&selector));
    let pods = pods.list(&lp).await?.items;
    match ctx.target {
        Target::Endpoints => sync_endpoints(&ctx.client, &svc, &pods).await?,
        Target::Slices => sync_slices(&ctx.client, &svc, &pods).await?,
    }
    Ok(Action::requeue(std::time::Duration::from_secs(300)))
}

async fn sync_endpoints(client: &Client, svc: &Service, pods: &[Pod]) -> Result<()> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
    let want = subsets(&pod_endpoints(svc, pods, false));
    let labels = service_labels(svc);
    let current = api.get_opt(&name).await?;
    match current {
        Some(mut ep) => {
            let have = ep.subsets.clone().unwrap_or_default();
            let have_labels = ep.labels().clone();
            let labels_ok = labels.iter().all(|(k, v)| have_labels.get(k) == Some(v));
            if have == want && labels_ok {
                return Ok(());
            }
            ep.subsets = Some(want);
            ep.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .extend(labels);
            ep.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(TRIGGER_TIME.into(), trigger_time());
            api.replace(&name, &PostParams::default(), &ep).await?;
            tracing::debug!(namespace = %ns, service = %name, "updated endpoints");
        }
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: (!labels.is_empty()).then_some(labels),
                    annotations: Some([(TRIGGER_TIME.to_string(), trigger_time())].into()),
                    ..Default::default()
                },
                subsets: Some(want),
            };
            match api.create(&PostParams::default(), &ep).await {
                Ok(_) => tracing::debug!(namespace = %ns, service = %name, "created endpoints"),
                Err(e) if crate::util::is_status(&e, 409) => {
                    return Err(Error::Other(format!(
                        "endpoints {ns}/{name} appeared concurrently"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn trigger_time() -> String {
    serde_json::to_value(now())
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

type PortKey = Vec<(String, i32, String, Option<String>)>;

fn slice_ports(key: &PortKey) -> Vec<SlicePort> {
    key.iter()
        .map(|(name, port, protocol, app)| SlicePort {
            name: Some(name.clone()),
            port: Some(*port),
            protocol: Some(protocol.clone()),
            app_protocol: app.clone(),
        })
        .collect()
}

fn slice_endpoint(e: &PodEndpoint) -> Endpoint {
    Endpoint {
        addresses: vec![e.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(e.ready),
            serving: Some(e.serving),
            terminating: Some(e.terminating),
        }),
        node_name: e.node.clone(),
        hostname: e.hostname.clone(),
        target_ref: Some(e.target.clone()),
        ..Default::default()
    }
}

fn key_of_slice(s: &EndpointSlice) -> PortKey {
    let mut k: PortKey = s
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    k.sort();
    k
}

async fn sync_slices(client: &Client, svc: &Service, pods: &[Pod]) -> Result<()> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let ipv6 = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .is_some_and(|f| f == "IPv6");
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    let eps: Vec<PodEndpoint> = pod_endpoints(svc, pods, true)
        .into_iter()
        .filter(|e| e.ip.contains(':') == ipv6)
        .collect();

    // Desired slices: endpoints grouped by their port set, in chunks.
    let mut groups: BTreeMap<PortKey, Vec<Endpoint>> = BTreeMap::new();
    for e in &eps {
        let mut k = e.ports.clone();
        k.sort();
        groups.entry(k).or_default().push(slice_endpoint(e));
    }
    let mut desired: Vec<(PortKey, Vec<Endpoint>)> = Vec::new();
    for (k, list) in groups {
        for chunk in list.chunks(MAX_ENDPOINTS_PER_SLICE) {
            desired.push((k.clone(), chunk.to_vec()));
        }
    }
    if desired.is_empty() {
        // Upstream keeps one empty placeholder slice.
        desired.push((Vec::new(), Vec::new()));
    }

    let lp = ListParams::default().labels(&format!(
        "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
    ));
    let mut existing: Vec<EndpointSlice> = api
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|s| !is_deleting(s))
        .collect();
    existing.sort_by_key(|s| s.metadata.creation_timestamp.clone().map(|t| t.0));
    let mut labels = service_labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let owner = controller_ref(
        "v1",
        "Service",
        &name,
        svc.metadata.uid.as_deref().unwrap_or(""),
    );

    for (key, endpoints) in desired {
        let ports = (!key.is_empty()).then(|| slice_ports(&key));
        // Reuse a slice with the same ports (or any unused one) before creating.
        let pos = existing
            .iter()
            .position(|s| key_of_slice(s) == key && s.address_type == family)
            .or_else(|| existing.iter().position(|s| s.address_type == family));
        match pos {
            Some(i) => {
                let mut s = existing.remove(i);
                let same = s.endpoints == endpoints
                    && s.ports.clone().unwrap_or_default() == ports.clone().unwrap_or_default()
                    && labels.iter().all(|(k, v)| s.labels().get(k) == Some(v));
                if same {
                    continue;
                }
                s.endpoints = endpoints;
                s.ports = ports;
                s.metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .extend(labels.clone());
                s.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(TRIGGER_TIME.into(), trigger_time());
                api.replace(&s.name_any(), &PostParams::default(), &s)
                    .await?;
                tracing::debug!(namespace = %ns, service = %name, slice = %s.name_any(), "updated endpointslice");
            }
            None => {
                let s = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(ns.clone()),
                        labels: Some(labels.clone()),
                        annotations: Some([(TRIGGER_TIME.to_string(), trigger_time())].into()),
                        owner_references: Some(vec![owner.clone()]),
                        ..Default::default()
                    },
                    address_type: family.into(),
                    endpoints,
                    ports,
                };
                let created = api.create(&PostParams::default(), &s).await?;
                tracing::debug!(namespace = %ns, service = %name, slice = %created.name_any(), "created endpointslice");
            }
        }
    }
    for s in existing {
        ignore_not_found(api.delete(&s.name_any(), &DeleteParams::default()).await)?;
        tracing::debug!(namespace = %ns, service = %name, slice = %s.name_any(), "deleted endpointslice");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };

    fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
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
    fn ready_and_not_ready_with_named_port() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        let mut no_ip = pod("c", "", true);
        if let Some(s) = no_ip.status.as_mut() {
            s.pod_ip = None;
        }
        let pods = vec![
            pod("a", "10.0.0.1", true),
            pod("b", "10.0.0.2", false),
            no_ip,
        ];
        let s = subsets(&pod_endpoints(&svc, &pods, false));
        assert_eq!(s.len(), 1);
        let ready: Vec<&str> = s[0]
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        let not_ready: Vec<&str> = s[0]
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ready, vec!["10.0.0.1"]);
        assert_eq!(not_ready, vec!["10.0.0.2"]);
        assert_eq!(s[0].ports.as_ref().map(|p| p[0].port), Some(8080));
        assert_eq!(
            s[0].addresses
                .as_ref()
                .and_then(|a| a[0].node_name.as_deref()),
            Some("n1")
        );
    }
}
