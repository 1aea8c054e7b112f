//! The simpler core kinds: Namespace, Node, ConfigMap, Secret, ServiceAccount,
//! Endpoints, Event (and its events.k8s.io/v1 view), Lease and EndpointSlice.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::pods::default_field;
use super::validation::{invalid, not_supported, required};
use crate::status::Cause;

/// Namespaces start Active, with the `kubernetes` finalizer and the name label.
pub fn prepare_namespace(ns: &mut Value) {
    let name = ns
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(meta) = ns.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    ns["spec"] = json!({"finalizers": ["kubernetes"]});
    ns["status"] = json!({"phase": "Active"});
}

/// `stringData` is write-only: merge it into `data`; default `type: Opaque`.
pub fn prepare_secret(secret: &mut Value) {
    let Some(m) = secret.as_object_mut() else {
        return;
    };
    default_field(m, "type", json!("Opaque"));
    if let Some(Value::Object(sd)) = m.remove("stringData") {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if let Some(d) = data.as_object_mut() {
            for (k, v) in sd {
                let raw = v.as_str().unwrap_or("").as_bytes().to_vec();
                d.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(raw)),
                );
            }
        }
    }
}

fn valid_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// ConfigMap/Secret data keys.
pub fn validate_data_keys(obj: &Value, causes: &mut Vec<Cause>) {
    for field in ["data", "binaryData"] {
        if let Some(m) = obj.get(field).and_then(Value::as_object) {
            for k in m.keys().filter(|k| !valid_config_key(k)) {
                causes.push(invalid(&format!("{field}[{k}]"), &json!(k), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
            }
        }
    }
}

/// EndpointSlices need a supported addressType.
pub fn validate_endpoint_slice(obj: &Value, causes: &mut Vec<Cause>) {
    match obj.get("addressType").and_then(Value::as_str) {
        None | Some("") => causes.push(required("addressType", "")),
        Some(t) if !["IPv4", "IPv6", "FQDN"].contains(&t) => causes.push(not_supported(
            "addressType",
            &json!(t),
            &["FQDN", "IPv4", "IPv6"],
        )),
        _ => {}
    }
}

/// core/v1 ↔ events.k8s.io/v1 field names.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(v: &Value, to_v1: bool, api_version: &str) -> Value {
    let Some(m) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in m {
        let new_key = EVENT_FIELDS
            .iter()
            .find_map(|(core, v1)| {
                if to_v1 && k == core {
                    Some(*v1)
                } else if !to_v1 && k == v1 {
                    Some(*core)
                } else {
                    None
                }
            })
            .unwrap_or(k.as_str());
        out.insert(new_key.to_string(), val.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// A stored core/v1 Event as events.k8s.io/v1.
pub fn event_to_v1(core: &Value) -> Value {
    rename(core, true, "events.k8s.io/v1")
}

/// An events.k8s.io/v1 Event in its core/v1 storage form.
pub fn event_from_v1(v1: &Value) -> Value {
    rename(v1, false, "v1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data() {
        let mut s = json!({"stringData": {"k": "v"}});
        prepare_secret(&mut s);
        assert_eq!(s, json!({"type": "Opaque", "data": {"k": "dg=="}}));
    }

    #[test]
    fn event_views() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "involvedObject": {"name": "p"}, "message": "m", "reason": "r"});
        let v1 = event_to_v1(&core);
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "m");
        assert_eq!(event_from_v1(&v1), core);
    }
}
