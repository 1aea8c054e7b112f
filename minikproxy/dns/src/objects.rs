//! From API objects to the zone's inputs: a core/v1 Service to a [`zone::Service`], a
//! discovery.k8s.io/v1 EndpointSlice to a [`zone::Slice`]. Pure; what DNS cannot use
//! (a slice without its Service's label, FQDN slices, unparsable addresses) is left out.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::zone::{self, Endpoint, Key, Kind, Port};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service's key, when it has a namespace and a name.
pub fn service_key(svc: &Service) -> Option<Key> {
    Some(Key::new(svc.metadata.namespace.clone()?, svc.metadata.name.clone()?))
}

/// A slice's key, when it has a namespace and a name.
pub fn slice_key(slice: &EndpointSlice) -> Option<Key> {
    Some(Key::new(slice.metadata.namespace.clone()?, slice.metadata.name.clone()?))
}

/// The zone's view of a Service.
pub fn service(svc: &Service) -> Option<zone::Service> {
    let key = service_key(svc)?;
    let spec = svc.spec.clone().unwrap_or_default();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        Kind::ExternalName(spec.external_name.clone().unwrap_or_default())
    } else if spec.cluster_ip.as_deref() == Some("None") {
        Kind::Headless
    } else {
        let mut ips: Vec<IpAddr> = spec.cluster_ips.iter().flatten().filter_map(|s| s.parse().ok()).collect();
        if ips.is_empty() {
            ips.extend(spec.cluster_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()));
        }
        Kind::ClusterIp(ips)
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    Some(zone::Service { key, kind, ports, publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false) })
}

/// The zone's view of an EndpointSlice; `None` without the Service label or for FQDN slices.
pub fn slice(slice: &EndpointSlice) -> Option<zone::Slice> {
    let key = slice_key(slice)?;
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    if slice.address_type == "FQDN" {
        return None;
    }
    let endpoints = slice
        .endpoints
        .iter()
        .map(|e| Endpoint {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.clone(),
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect();
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    Some(zone::Slice { key, service, endpoints, ports })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("object")
    }

    #[test]
    fn services_of_each_kind() {
        let svc: Service = from(json!({
            "metadata": {"name": "api", "namespace": "lab"},
            "spec": {"clusterIP": "10.96.3.4", "clusterIPs": ["10.96.3.4"], "ports": [{"name": "http", "port": 8080}]}
        }));
        let s = service(&svc).expect("service");
        assert_eq!(s.kind, Kind::ClusterIp(vec!["10.96.3.4".parse().expect("ip")]));
        assert_eq!(s.ports, vec![Port { name: "http".into(), protocol: "TCP".into(), port: 8080 }]);
        let headless: Service = from(json!({"metadata": {"name": "db", "namespace": "lab"}, "spec": {"clusterIP": "None"}}));
        assert_eq!(service(&headless).expect("service").kind, Kind::Headless);
        let ext: Service = from(json!({
            "metadata": {"name": "ext", "namespace": "lab"},
            "spec": {"type": "ExternalName", "externalName": "example.org"}
        }));
        assert_eq!(service(&ext).expect("service").kind, Kind::ExternalName("example.org".into()));
        let unnamed: Service = from(json!({"spec": {}}));
        assert!(service(&unnamed).is_none());
    }

    #[test]
    fn slices_need_their_service_label() {
        let s: EndpointSlice = from(json!({
            "metadata": {"name": "db-1", "namespace": "lab", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.1.6"], "conditions": {"ready": false}},
                {"addresses": ["10.244.1.7"]}
            ],
            "ports": [{"name": "mongo", "port": 27017, "protocol": "TCP"}]
        }));
        let z = slice(&s).expect("slice");
        assert_eq!(z.service, "db");
        assert_eq!(z.endpoints.iter().map(|e| e.ready).collect::<Vec<_>>(), [true, false, true]);
        assert_eq!(z.endpoints[0].hostname.as_deref(), Some("db-0"));
        assert_eq!(z.ports[0].port, 27017);
        let orphan: EndpointSlice = from(json!({"metadata": {"name": "x", "namespace": "lab"}, "addressType": "IPv4", "endpoints": []}));
        assert!(slice(&orphan).is_none());
    }
}
