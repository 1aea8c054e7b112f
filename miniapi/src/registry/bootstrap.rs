//! Objects the server creates at start (the system namespaces, the `kubernetes`
//! Service with its Endpoints and EndpointSlice) and per namespace (the `default`
//! ServiceAccount and the `kube-root-ca.crt` ConfigMap), plus the namespace
//! finalizer worker.

use std::net::IpAddr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::Registry;
use crate::resources::{by_kind, Kind};
use crate::timeutil::now_rfc3339;

/// Namespaces that always exist.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn meta(name: &str, ns: Option<&str>) -> Value {
    let mut m = json!({"name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now_rfc3339()});
    if let Some(n) = ns {
        m["namespace"] = json!(n);
    }
    m
}

impl Registry {
    fn ensure(&self, kind: Kind, ns: Option<&str>, name: &str, mut obj: Value) {
        let res = by_kind(kind);
        let key = res.key(ns, name);
        if matches!(self.store.get(&key), Ok(Some(_))) {
            return;
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let m = meta(name, ns);
        match obj.get_mut("metadata").and_then(Value::as_object_mut) {
            Some(existing) => {
                if let Some(mm) = m.as_object() {
                    for (k, v) in mm {
                        existing.entry(k.clone()).or_insert(v.clone());
                    }
                }
            }
            None => obj["metadata"] = m,
        }
        match self.store.create(&key, obj) {
            Ok(_) => tracing::info!(%key, "created"),
            Err(e) => tracing::warn!(%key, "bootstrap create failed: {e}"),
        }
    }

    /// Create, or bring the non-metadata fields of an existing object up to date
    /// (the `kubernetes` Service must follow the current port and address).
    fn reconcile(&self, kind: Kind, ns: Option<&str>, name: &str, obj: Value) {
        let res = by_kind(kind);
        let key = res.key(ns, name);
        let Ok(Some(kv)) = self.store.get(&key) else {
            self.ensure(kind, ns, name, obj);
            return;
        };
        let mut new = kv.value.clone();
        if let (Some(n), Some(o)) = (new.as_object_mut(), obj.as_object()) {
            for (k, v) in o.iter().filter(|(k, _)| k.as_str() != "metadata") {
                n.insert(k.clone(), v.clone());
            }
        }
        if new != kv.value {
            if let Err(e) = self.store.update(&key, new, Some(kv.mod_revision)) {
                tracing::warn!(%key, "bootstrap update failed: {e}");
            }
        }
    }

    /// The `default` ServiceAccount and `kube-root-ca.crt` ConfigMap of a namespace.
    pub fn populate_namespace(&self, ns: &str) {
        self.ensure(Kind::ServiceAccount, Some(ns), "default", json!({}));
        if let Some(ca) = self.ca_pem() {
            self.ensure(Kind::ConfigMap, Some(ns), "kube-root-ca.crt", json!({
                "metadata": {"annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": ca},
            }));
        }
    }

    fn ca_pem(&self) -> Option<String> {
        self.ca_pem.lock().ok().and_then(|g| g.clone())
    }

    /// Remember the CA bundle published in every namespace.
    pub fn set_ca_pem(&self, pem: String) {
        if let Ok(mut g) = self.ca_pem.lock() {
            *g = Some(pem);
        }
    }

    /// Create the system namespaces and the `kubernetes` Service/Endpoints/EndpointSlice.
    pub fn bootstrap(&self, endpoint_ip: IpAddr, port: u16) {
        for ns in SYSTEM_NAMESPACES {
            let mut obj = json!({"metadata": {"name": ns}});
            super::core::prepare_namespace(&mut obj);
            self.ensure(Kind::Namespace, None, ns, obj);
            self.populate_namespace(ns);
        }
        let ip = self.alloc.kubernetes_ip().to_string();
        let labels = json!({"component": "apiserver", "provider": "kubernetes"});
        self.reconcile(Kind::Service, Some("default"), "kubernetes", json!({
            "metadata": {"labels": labels},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster", "sessionAffinity": "None", "type": "ClusterIP",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
            "status": {"loadBalancer": {}},
        }));
        self.reconcile(Kind::Endpoints, Some("default"), "kubernetes", json!({
            "metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": endpoint_ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        }));
        self.reconcile(Kind::EndpointSlice, Some("default"), "kubernetes", json!({
            "metadata": {"labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [endpoint_ip.to_string()], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }));
    }

    /// Namespaces left Terminating by a previous run.
    pub fn terminating_namespaces(&self) -> Vec<String> {
        let res = by_kind(Kind::Namespace);
        self.store
            .list(&res.prefix(None))
            .map(|l| {
                l.items
                    .iter()
                    .filter(|kv| {
                        kv.value.pointer("/status/phase").and_then(Value::as_str)
                            == Some("Terminating")
                    })
                    .map(|kv| super::name_of(&kv.value).to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The namespace controller: delete the contents of each queued namespace, then the
/// namespace. Runs on its own thread until the registry is dropped.
pub fn run_namespace_finalizer(registry: Arc<Registry>, queue: Receiver<String>) {
    for ns in registry.terminating_namespaces() {
        if let Err(e) = registry.finalize_namespace(&ns) {
            tracing::warn!(%ns, "namespace finalization failed: {e}");
        }
    }
    while let Ok(ns) = queue.recv() {
        // Let the client see the Terminating phase before the namespace disappears.
        std::thread::sleep(Duration::from_millis(200));
        for attempt in 0..5 {
            match registry.finalize_namespace(&ns) {
                Ok(()) => {
                    tracing::info!(%ns, "namespace deleted");
                    break;
                }
                Err(e) => {
                    tracing::warn!(%ns, attempt, "namespace finalization failed: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
}
