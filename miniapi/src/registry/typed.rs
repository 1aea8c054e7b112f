//! Typed decoding through k8s-openapi: every object the server stores is decoded
//! into its k8s-openapi type and re-encoded, exactly as the real server decodes into
//! Go structs. That enforces the schema (types, enums of shapes), prunes unknown
//! fields, and lets us report those fields for `fieldValidation=Strict|Warn`.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event as EventV1;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::resources::Kind;

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Decode `v` as `kind`'s type and re-encode it (unknown fields dropped).
pub fn normalize(kind: Kind, v: &Value) -> Result<Value, String> {
    match kind {
        Kind::Namespace => roundtrip::<Namespace>(v),
        Kind::Pod => roundtrip::<Pod>(v),
        Kind::Node => roundtrip::<Node>(v),
        Kind::Service => roundtrip::<Service>(v),
        Kind::Endpoints => roundtrip::<Endpoints>(v),
        Kind::ConfigMap => roundtrip::<ConfigMap>(v),
        Kind::Secret => roundtrip::<Secret>(v),
        Kind::ServiceAccount => roundtrip::<ServiceAccount>(v),
        Kind::Event => roundtrip::<Event>(v),
        Kind::EventV1 => roundtrip::<EventV1>(v),
        Kind::Lease => roundtrip::<Lease>(v),
        Kind::ReplicaSet => roundtrip::<ReplicaSet>(v),
        Kind::Deployment => roundtrip::<Deployment>(v),
        Kind::EndpointSlice => roundtrip::<EndpointSlice>(v),
    }
}

/// Paths present in `input` but absent from `normalized` (the unknown fields), in
/// the API server's notation (`spec.ports[0].foo`). `null`s are not reported.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(input, normalized, String::new(), &mut out);
    out
}

fn diff(input: &Value, norm: &Value, path: String, out: &mut Vec<String>) {
    match (input, norm) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(nv) => diff(v, nv, p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff(x, y, format!("{path}[{i}]"), out);
            }
        }
        // Free-form maps (labels, data) and scalars have nothing unknown.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "creationTimestamp": null},
            "spec": {"ports": [{"port": 80, "bogus": 1}], "extra": true}});
        let n = normalize(Kind::Service, &svc).expect("normalize");
        let mut u = unknown_fields(&svc, &n);
        u.sort();
        assert_eq!(
            u,
            vec!["spec.extra".to_string(), "spec.ports[0].bogus".to_string()]
        );
    }

    #[test]
    fn type_errors_are_reported() {
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nope"}});
        assert!(normalize(Kind::Pod, &bad).is_err());
    }
}
