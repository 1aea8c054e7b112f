//! Self-registration: minik-dns makes itself the cluster DNS Service, as a kube-dns
//! Deployment and its Service would. It ensures
//!
//! - the selector-less Service (`kube-system/kube-dns`, ClusterIP `--service-ip`, ports
//!   `dns` 53/UDP and `dns-tcp` 53/TCP, label `k8s-app: kube-dns`);
//! - its own EndpointSlice `<service>-<dashed address>` (labels
//!   `kubernetes.io/service-name`, `endpointslice.kubernetes.io/managed-by: minik-dns`)
//!   with one ready endpoint at `--advertise-address`:<listen port>, so that several
//!   minik-dns instances each keep their own slice;
//! - its address in the Service's Endpoints (read, merge, replace: several instances
//!   share that object).
//!
//! Each step is idempotent: create, else a JSON merge patch of the fields minik-dns owns
//! (whose lists replace the old ones whole; a server-side apply would merge the two
//! port-53 entries by their key). The Service proxy then forwards the ClusterIP to it.
//! [`deregister`] takes the slice and the address away again on shutdown.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::objects::SERVICE_NAME_LABEL;
use crate::zone::{dashed_ip, Key};

/// The field manager (and `managed-by` value) minik-dns writes with.
pub const MANAGER: &str = "minik-dns";
/// The label EndpointSlice controllers mark their slices with.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// What to register.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The Service (`kube-system/kube-dns`).
    pub service: Key,
    /// Its ClusterIP.
    pub service_ip: IpAddr,
    /// Where this server is reached.
    pub address: IpAddr,
    /// The port this server listens on.
    pub port: u16,
}

/// A registration step that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The Service could not be applied (most often: it exists with another ClusterIP).
    #[error("cannot register Service {service} with ClusterIP {ip}: {source}; is the IP taken by another Service, or outside the service CIDR? choose another --service-ip")]
    Service {
        /// The Service.
        service: Key,
        /// The ClusterIP asked for.
        ip: IpAddr,
        /// The API's answer.
        source: kube::Error,
    },
    /// The Service exists with another ClusterIP (which cannot change).
    #[error("Service {service} exists with ClusterIP {has}, not {want}: pass --service-ip {has}, or delete it (kubectl -n {ns} delete svc {name}) to take {want}", ns = service.namespace, name = service.name)]
    ClusterIpTaken {
        /// The Service.
        service: Key,
        /// Its ClusterIP.
        has: String,
        /// The one asked for.
        want: IpAddr,
    },
    /// An object could not be encoded (a bug).
    #[error("cannot encode an object: {0}")]
    Encode(String),
    /// Another object could not be written.
    #[error("cannot write {what}: {source}")]
    Object {
        /// Which object.
        what: String,
        /// The API's answer.
        source: kube::Error,
    },
}

impl RegisterError {
    /// Whether retrying cannot help: the API server refused the Service itself.
    pub fn is_permanent(&self) -> bool {
        matches!(self, RegisterError::ClusterIpTaken { .. } | RegisterError::Service { source: kube::Error::Api(_), .. })
    }
}

impl Registration {
    /// The name of this instance's EndpointSlice.
    pub fn slice_name(&self) -> String {
        format!("{}-{}", self.service.name, dashed_ip(self.address))
    }

    fn ports(&self) -> serde_json::Value {
        json!([
            {"name": "dns", "port": self.port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": self.port, "protocol": "TCP"}
        ])
    }
}

/// Ensures the Service, this instance's EndpointSlice and its address in the Endpoints.
pub async fn register(client: &Client, r: &Registration) -> Result<(), RegisterError> {
    let ns = &r.service.namespace;
    let object = |what: &str| {
        let what = format!("{what} {}", r.service);
        move |source| RegisterError::Object { what, source }
    };

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let nsobj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    if namespaces.get_opt(ns).await.map_err(object("Namespace of"))?.is_none() {
        let obj: Namespace = serde_json::from_value(nsobj).map_err(|e| RegisterError::Encode(e.to_string()))?;
        match namespaces.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 409) => {}
            Err(e) => return Err(object("Namespace of")(e)),
        }
    }

    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": r.service.name, "namespace": ns, "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "clusterIP": r.service_ip.to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": r.port},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": r.port}
            ]
        }
    });
    let service_err = |source| RegisterError::Service { service: r.service.clone(), ip: r.service_ip, source };
    match services.get_opt(&r.service.name).await.map_err(object("Service"))? {
        Some(existing) => {
            let has = existing.spec.as_ref().and_then(|s| s.cluster_ip.clone()).unwrap_or_default();
            if has != r.service_ip.to_string() {
                return Err(RegisterError::ClusterIpTaken { service: r.service.clone(), has, want: r.service_ip });
            }
            services.patch(&r.service.name, &PatchParams::default(), &Patch::Merge(&svc)).await.map_err(service_err)?;
        }
        None => {
            let obj: Service = serde_json::from_value(svc).map_err(|e| RegisterError::Encode(e.to_string()))?;
            services.create(&PostParams::default(), &obj).await.map_err(service_err)?;
        }
    }

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": r.slice_name(),
            "namespace": ns,
            "labels": {SERVICE_NAME_LABEL: r.service.name, MANAGED_BY_LABEL: MANAGER, "k8s-app": "kube-dns"}
        },
        "addressType": if r.address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{
            "addresses": [r.address.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false}
        }],
        "ports": r.ports()
    });
    // Create, else merge-patch: lists in a merge patch replace the old ones whole.
    if slices.get_opt(&r.slice_name()).await.map_err(object("EndpointSlice of"))?.is_some() {
        slices
            .patch(&r.slice_name(), &PatchParams::default(), &Patch::Merge(&slice))
            .await
            .map_err(object("EndpointSlice of"))?;
    } else {
        let obj: EndpointSlice = serde_json::from_value(slice).map_err(|e| RegisterError::Encode(e.to_string()))?;
        slices.create(&PostParams::default(), &obj).await.map_err(object("EndpointSlice of"))?;
    }

    update_endpoints(client, r, true).await
}

/// Removes this instance's EndpointSlice and its address from the Endpoints (the Service
/// stays: another instance, or the next start, serves it).
pub async fn deregister(client: &Client, r: &Registration) -> Result<(), RegisterError> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &r.service.namespace);
    match slices.delete(&r.slice_name(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(source) => return Err(RegisterError::Object { what: format!("EndpointSlice {}", r.slice_name()), source }),
    }
    update_endpoints(client, r, false).await
}

/// Adds (or removes) this instance's address in the Endpoints; retries on conflicts.
async fn update_endpoints(client: &Client, r: &Registration, present: bool) -> Result<(), RegisterError> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), &r.service.namespace);
    let err = |source| RegisterError::Object { what: format!("Endpoints {}", r.service), source };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = api.get_opt(&r.service.name).await.map_err(err)?;
        let exists = current.is_some();
        let mut eps = current.unwrap_or_else(|| Endpoints {
            metadata: ObjectMeta {
                name: Some(r.service.name.clone()),
                namespace: Some(r.service.namespace.clone()),
                ..Default::default()
            },
            subsets: None,
        });
        if !merge_address(&mut eps, r, present) {
            return Ok(());
        }
        let labels = eps.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert("k8s-app".into(), "kube-dns".into());
        // Not mirrored into another slice: minik-dns writes its own.
        labels.insert("endpointslice.kubernetes.io/skip-mirror".into(), "true".into());
        let result = if exists {
            api.replace(&r.service.name, &PostParams::default(), &eps).await
        } else {
            api.create(&PostParams::default(), &eps).await
        };
        match result {
            Ok(_) => return Ok(()),
            Err(e) if attempts < 5 && (is_status(&e, 409)) => continue,
            Err(e) => return Err(err(e)),
        }
    }
}

/// Puts this instance's address into (or takes it out of) the subset with its ports.
/// Returns whether the object changed.
fn merge_address(eps: &mut Endpoints, r: &Registration, present: bool) -> bool {
    let ip = r.address.to_string();
    let ports = vec![
        EndpointPort { name: Some("dns".into()), port: i32::from(r.port), protocol: Some("UDP".into()), app_protocol: None },
        EndpointPort { name: Some("dns-tcp".into()), port: i32::from(r.port), protocol: Some("TCP".into()), app_protocol: None },
    ];
    let subsets = eps.subsets.get_or_insert_with(Vec::new);
    let has = |s: &EndpointSubset| s.addresses.iter().flatten().any(|a| a.ip == ip);
    let ours = |s: &EndpointSubset| s.ports.as_ref() == Some(&ports);
    if present {
        if subsets.iter().any(|s| has(s) && ours(s)) {
            return false;
        }
        // Moved to another port: out of the old subset first.
        for s in subsets.iter_mut() {
            if let Some(addrs) = s.addresses.as_mut() {
                addrs.retain(|a| a.ip != ip);
            }
        }
        let address = EndpointAddress { ip: ip.clone(), ..Default::default() };
        match subsets.iter_mut().find(|s| ours(s)) {
            Some(s) => s.addresses.get_or_insert_with(Vec::new).push(address),
            None => subsets.push(EndpointSubset { addresses: Some(vec![address]), ports: Some(ports), not_ready_addresses: None }),
        }
    } else {
        if !subsets.iter().any(has) {
            return false;
        }
        for s in subsets.iter_mut() {
            if let Some(addrs) = s.addresses.as_mut() {
                addrs.retain(|a| a.ip != ip);
            }
        }
    }
    subsets.retain(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()) || s.not_ready_addresses.as_ref().is_some_and(|a| !a.is_empty()));
    true
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn is_not_found(e: &kube::Error) -> bool {
    is_status(e, 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(addr: &str, port: u16) -> Registration {
        Registration {
            service: Key::new("kube-system", "kube-dns"),
            service_ip: "10.96.0.10".parse().expect("ip"),
            address: addr.parse().expect("ip"),
            port,
        }
    }

    fn ips(eps: &Endpoints) -> Vec<String> {
        eps.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone())).collect()
    }

    #[test]
    fn addresses_merge_idempotently() {
        let mut eps = Endpoints::default();
        assert!(merge_address(&mut eps, &reg("192.168.50.11", 53), true));
        assert!(!merge_address(&mut eps, &reg("192.168.50.11", 53), true));
        assert!(merge_address(&mut eps, &reg("192.168.50.12", 53), true));
        assert_eq!(ips(&eps), ["192.168.50.11", "192.168.50.12"]);
        assert_eq!(eps.subsets.as_ref().map(Vec::len), Some(1));
        // Another port: its own subset, and out of the old one.
        assert!(merge_address(&mut eps, &reg("192.168.50.12", 1053), true));
        assert_eq!(eps.subsets.as_ref().map(Vec::len), Some(2));
        assert!(merge_address(&mut eps, &reg("192.168.50.12", 1053), false));
        assert!(!merge_address(&mut eps, &reg("192.168.50.12", 1053), false));
        assert_eq!(ips(&eps), ["192.168.50.11"]);
    }

    #[test]
    fn slice_is_named_for_the_instance() {
        assert_eq!(reg("192.168.50.11", 53).slice_name(), "kube-dns-192-168-50-11");
    }
}
