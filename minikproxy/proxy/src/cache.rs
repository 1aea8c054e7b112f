//! The objects minikproxy watches, mirrored from kube-rs watcher events, and which
//! Services each event touches. A relist (`Init` … `InitDone`) is buffered and swapped in
//! whole, as kube-rs's reflector does, and marks every Service that was or is there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Node, Service as ApiService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use kube::ResourceExt;

use crate::convert;
use crate::model::ServiceKey;
use crate::rules::{service_rules, RuleConfig, ServiceRules};

type ObjKey = (String, String);

/// One watched kind: its objects, and the relist buffer while a relist runs.
#[derive(Debug)]
struct Mirror<K> {
    items: HashMap<ObjKey, K>,
    buffer: Option<HashMap<ObjKey, K>>,
    synced: bool,
}

impl<K> Default for Mirror<K> {
    fn default() -> Self {
        Mirror { items: HashMap::new(), buffer: None, synced: false }
    }
}

impl<K: ResourceExt + Clone> Mirror<K> {
    /// Applies an event; returns the objects it touched (old and new versions).
    fn apply(&mut self, ev: Event<K>) -> Vec<K> {
        let key = obj_key::<K>;
        match ev {
            Event::Apply(o) => {
                let old = self.items.insert(key(&o), o.clone());
                old.into_iter().chain([o]).collect()
            }
            Event::Delete(o) => {
                let old = self.items.remove(&key(&o));
                old.into_iter().chain([o]).collect()
            }
            Event::Init => {
                self.buffer = Some(HashMap::new());
                vec![]
            }
            Event::InitApply(o) => {
                self.buffer.get_or_insert_with(HashMap::new).insert(key(&o), o);
                vec![]
            }
            Event::InitDone => {
                let new = self.buffer.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.items, new);
                self.synced = true;
                old.into_values().chain(self.items.values().cloned()).collect()
            }
        }
    }
}

/// Everything watched.
#[derive(Debug, Default)]
pub struct Cache {
    services: Mirror<ApiService>,
    slices: Mirror<EndpointSlice>,
    nodes: Mirror<Node>,
    /// Which slices belong to which Service, so one Service's endpoints are found
    /// without looking at every slice.
    slice_index: HashMap<ServiceKey, BTreeSet<ObjKey>>,
}

fn obj_key<K: ResourceExt>(o: &K) -> ObjKey {
    (o.namespace().unwrap_or_default(), o.name_any())
}

fn service_key(s: &ApiService) -> ServiceKey {
    ServiceKey::new(&s.namespace().unwrap_or_default(), &s.name_any())
}

impl Cache {
    /// A Service event; returns the Services it touches.
    pub fn on_service(&mut self, ev: Event<ApiService>) -> BTreeSet<ServiceKey> {
        self.services.apply(ev).iter().map(service_key).collect()
    }

    /// An EndpointSlice event; returns the Services it touches.
    pub fn on_slice(&mut self, ev: Event<EndpointSlice>) -> BTreeSet<ServiceKey> {
        let relist = matches!(ev, Event::InitDone);
        let touched = self.slices.apply(ev);
        if relist {
            self.slice_index.clear();
            for s in self.slices.items.values() {
                if let Some(k) = convert::slice_service(s) {
                    self.slice_index.entry(k).or_default().insert(obj_key(s));
                }
            }
        } else {
            for s in &touched {
                let ok = obj_key(s);
                if let Some(k) = convert::slice_service(s) {
                    if let Some(set) = self.slice_index.get_mut(&k) {
                        set.remove(&ok);
                        if set.is_empty() {
                            self.slice_index.remove(&k);
                        }
                    }
                }
                if let Some(k) = self.slices.items.get(&ok).and_then(convert::slice_service) {
                    self.slice_index.entry(k).or_default().insert(ok);
                }
            }
        }
        touched.iter().filter_map(convert::slice_service).collect()
    }

    /// A Node event; returns whether the set of Ready nodes changed.
    pub fn on_node(&mut self, ev: Event<Node>) -> bool {
        let before = self.ready_nodes();
        self.nodes.apply(ev);
        before != self.ready_nodes()
    }

    /// Whether every watch has finished its first list.
    pub fn synced(&self) -> bool {
        self.services.synced && self.slices.synced && self.nodes.synced
    }

    /// Every Service key known.
    pub fn service_keys(&self) -> BTreeSet<ServiceKey> {
        self.services.items.values().map(service_key).collect()
    }

    /// The Service object, for Events.
    pub fn service(&self, key: &ServiceKey) -> Option<&ApiService> {
        self.services.items.get(&(key.namespace.clone(), key.name.clone()))
    }

    /// The rules the Service needs now (`None`: it needs none, or is gone).
    pub fn desired(&self, cfg: &RuleConfig, key: &ServiceKey) -> Option<ServiceRules> {
        let svc = convert::service(self.service(key)?)?;
        let slices = self.slice_index.get(key).into_iter().flatten().filter_map(|ok| self.slices.items.get(ok));
        let eps = convert::endpoints(slices);
        Some(service_rules(cfg, &svc, &eps))
    }

    /// The rules of every Service.
    pub fn desired_all(&self, cfg: &RuleConfig) -> BTreeMap<ServiceKey, ServiceRules> {
        let mut by_service: HashMap<ServiceKey, Vec<&EndpointSlice>> = HashMap::new();
        for s in self.slices.items.values() {
            if let Some(k) = convert::slice_service(s) {
                by_service.entry(k).or_default().push(s);
            }
        }
        self.services
            .items
            .values()
            .filter_map(|s| {
                let svc = convert::service(s)?;
                let eps = convert::endpoints(by_service.get(&svc.key).into_iter().flatten().copied());
                Some((svc.key.clone(), service_rules(cfg, &svc, &eps)))
            })
            .collect()
    }

    /// The load-balancer IPs of every Service.
    pub fn lb_ips(&self) -> BTreeSet<Ipv4Addr> {
        self.services.items.values().filter_map(convert::service).flat_map(|s| s.lb_ips).collect()
    }

    /// The names of the Ready nodes.
    pub fn ready_nodes(&self) -> BTreeSet<String> {
        self.nodes
            .items
            .values()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .map(|n| n.name_any())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str) -> ApiService {
        serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": name},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}))
        .expect("svc")
    }

    #[test]
    fn a_relist_swaps_whole_and_marks_what_went_away() {
        let mut c = Cache::default();
        c.on_service(Event::Init);
        c.on_service(Event::InitApply(svc("a")));
        let touched = c.on_service(Event::InitDone);
        assert_eq!(touched.len(), 1);
        assert!(c
            .desired(&RuleConfig { cluster_cidr: None, node_name: "n".into() }, &ServiceKey::new("ns", "a"))
            .is_some());
        c.on_service(Event::Init);
        c.on_service(Event::InitApply(svc("b")));
        let touched = c.on_service(Event::InitDone);
        assert_eq!(touched, [ServiceKey::new("ns", "a"), ServiceKey::new("ns", "b")].into_iter().collect());
        assert_eq!(c.service_keys().len(), 1);
        assert!(!c.synced(), "slices and nodes have not listed yet");
    }

    fn slice(name: &str, svc: &str, ip: &str) -> EndpointSlice {
        serde_json::from_value(
            json!({"metadata": {"namespace": "ns", "name": name, "labels": {convert::SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4", "ports": [{"port": 8080}], "endpoints": [{"addresses": [ip]}]}),
        )
        .expect("slice")
    }

    #[test]
    fn slices_are_found_by_service_even_when_they_move() {
        let cfg = RuleConfig { cluster_cidr: None, node_name: "n".into() };
        let mut c = Cache::default();
        c.on_service(Event::Apply(svc("a")));
        c.on_service(Event::Apply(svc("b")));
        c.on_slice(Event::Init);
        c.on_slice(Event::InitApply(slice("s1", "a", "10.244.1.2")));
        c.on_slice(Event::InitDone);
        let a = ServiceKey::new("ns", "a");
        let b = ServiceKey::new("ns", "b");
        assert_eq!(c.desired(&cfg, &a).map(|r| r.endpoints), Some(1));
        assert_eq!(c.desired(&cfg, &b).map(|r| r.endpoints), Some(0));
        // The slice is relabelled to b: both Services are touched, and the endpoints move.
        let touched = c.on_slice(Event::Apply(slice("s1", "b", "10.244.1.2")));
        assert_eq!(touched, [a.clone(), b.clone()].into_iter().collect());
        assert_eq!(c.desired(&cfg, &a).map(|r| r.endpoints), Some(0));
        assert_eq!(c.desired(&cfg, &b).map(|r| r.endpoints), Some(1));
        c.on_slice(Event::Delete(slice("s1", "b", "10.244.1.2")));
        assert_eq!(c.desired(&cfg, &b).map(|r| r.endpoints), Some(0));
    }
}
