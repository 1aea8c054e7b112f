//! From the API's objects to the [`crate::model`]: a core/v1 Service and the
//! discovery/v1 EndpointSlices labelled `kubernetes.io/service-name` with its name.
//! Only IPv4 is handled; ExternalName and headless Services get no rules.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service as ApiService;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{Endpoint, Protocol, Service, ServiceEndpoints, ServiceKey, ServicePort};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (3 hours, as upstream).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// The Service a slice belongs to, from its namespace and label.
pub fn slice_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let ns = slice.metadata.namespace.as_deref()?;
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(ServiceKey::new(ns, name))
}

/// The model of a Service, or `None` when it gets no rules (ExternalName, headless,
/// no IPv4 ClusterIP, no ports).
pub fn service(svc: &ApiService) -> Option<Service> {
    let key = ServiceKey::new(svc.metadata.namespace.as_deref()?, svc.metadata.name.as_deref()?);
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let mut ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if ips.is_empty() {
        ips.extend(spec.cluster_ip.clone());
    }
    let cluster_ips: Vec<Ipv4Addr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
    if cluster_ips.is_empty() {
        return None;
    }
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::from_api(p.protocol.as_deref())?,
                port: u16::try_from(p.port).ok()?,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0),
            })
        })
        .collect();
    if ports.is_empty() {
        return None;
    }
    let lb_ips = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| ing.iter().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect())
        .unwrap_or_default();
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let external = matches!(spec.type_.as_deref(), Some("NodePort") | Some("LoadBalancer"));
    let external_local = external && spec.external_traffic_policy.as_deref() == Some("Local");
    Some(Service { key, cluster_ips, lb_ips, ports, affinity_timeout, external_local })
}

/// The endpoints of one Service from all of its slices, per port, deduplicated by
/// address (a ready copy wins), sorted by address.
pub fn endpoints<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> ServiceEndpoints {
    let mut out: BTreeMap<_, BTreeMap<Ipv4Addr, Endpoint>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        for port in slice.ports.iter().flatten() {
            let (Some(number), Some(protocol)) =
                (port.port.and_then(|p| u16::try_from(p).ok()), Protocol::from_api(port.protocol.as_deref()))
            else {
                continue;
            };
            let per_port = out.entry((port.name.clone().unwrap_or_default(), protocol)).or_default();
            for ep in &slice.endpoints {
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
                    continue;
                };
                let cond = ep.conditions.as_ref();
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                let new = Endpoint {
                    ip,
                    port: number,
                    ready: ready && !terminating,
                    terminating,
                    node: ep.node_name.clone(),
                };
                match per_port.get(&ip) {
                    Some(old) if old.ready && !new.ready => {}
                    _ => {
                        per_port.insert(ip, new);
                    }
                }
            }
        }
    }
    out.into_iter().map(|(k, v)| (k, v.into_values().collect())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> ApiService {
        serde_json::from_value(v).expect("service")
    }

    #[test]
    fn a_nodeport_service_with_affinity() {
        let s = service(&svc(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "ports": [{"name": "http", "port": 80, "nodePort": 30001}, {"port": 53, "protocol": "UDP"}],
                     "sessionAffinity": "ClientIP", "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.50.200"}]}}
        })))
        .expect("model");
        assert_eq!(s.key.to_string(), "ns/web");
        assert_eq!(s.cluster_ips, vec![Ipv4Addr::new(10, 96, 0, 10)]);
        assert_eq!(s.lb_ips, vec![Ipv4Addr::new(192, 168, 50, 200)]);
        assert_eq!(s.ports[0].node_port, Some(30001));
        assert_eq!(s.ports[1].protocol, Protocol::Udp);
        assert_eq!(s.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert!(s.external_local);
    }

    #[test]
    fn headless_and_external_name_get_no_rules() {
        let headless = svc(json!({"metadata": {"namespace": "a", "name": "h"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
        assert!(service(&headless).is_none());
        let ext = svc(json!({"metadata": {"namespace": "a", "name": "e"},
            "spec": {"type": "ExternalName", "externalName": "example.org"}}));
        assert!(service(&ext).is_none());
    }

    #[test]
    fn slices_merge_per_port_and_terminating_endpoints_are_not_ready() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web-1", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.1.3"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.244.1.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.2.2"]}
            ]
        }))
        .expect("slice");
        assert_eq!(slice_service(&slice), Some(ServiceKey::new("ns", "web")));
        let eps = endpoints([&slice]);
        let http = &eps[&("http".to_string(), Protocol::Tcp)];
        let ips: Vec<String> = http.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips, ["10.244.1.2", "10.244.1.3", "10.244.2.2"]);
        assert!(!http[0].ready && http[0].terminating);
        assert!(http[1].ready && http[2].ready);
        assert_eq!(http[1].node.as_deref(), Some("n1"));
        assert_eq!(http[1].port, 8080);
    }
}
