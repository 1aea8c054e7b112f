//! Server-side apply, in a simplified but honest form.
//!
//! Each manager's ownership is a set of field paths kept in `metadata.managedFields`
//! (`FieldsV1` encoding: `f:<field>`, `k:{"name":"x"}` for keyed list elements,
//! `v:<json>` for set members, `.` for the element itself). An apply:
//!
//! 1. computes the applied configuration's field set;
//! 2. refuses (409) fields whose live value differs and that another manager owns,
//!    unless `force` (which takes ownership);
//! 3. merges the configuration into the live object with the strategic-merge list
//!    semantics;
//! 4. removes fields this manager applied before but no longer applies, when no
//!    one else owns them;
//! 5. records the new set as the manager's `Apply` entry.
//!
//! Non-apply writes call [`record_update`], which gives the writing manager the
//! fields whose values it changed (an `Update` entry).

use serde_json::{json, Value};

use super::fieldset::{
    decode, encode, field_set, get_at, remove_at, render_path, FieldPath, FieldSet,
};
use super::strategic;
use crate::resources::Kind;

/// A conflict: another manager owns a field with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The API version the other manager used.
    pub api_version: String,
    /// Dotted rendering of the field (`.spec.replicas`).
    pub field: String,
}

/// Why an apply failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    /// Field conflicts (→ 409).
    #[error("Apply failed with {} conflict{}: {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, render_conflicts(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration is not an object.
    #[error("{0}")]
    Malformed(String),
}

fn render_conflicts(c: &[Conflict]) -> String {
    c.iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager, c.api_version, c.field
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Entry {
    manager: String,
    operation: String,
    raw: Value,
    set: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                    operation: e
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                    set: e.get("fieldsV1").map(decode).unwrap_or_default(),
                    raw: e.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn store_entries(obj: &mut Value, list: Vec<Entry>) {
    let arr: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut raw = e.raw;
            raw["fieldsV1"] = encode(&e.set);
            raw
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if arr.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(arr));
        }
    }
}

fn new_entry(manager: &str, operation: &str, api_version: &str, set: FieldSet) -> Entry {
    Entry {
        manager: manager.into(),
        operation: operation.into(),
        raw: json!({"manager": manager, "operation": operation, "apiVersion": api_version,
            "time": crate::timeutil::now_rfc3339(), "fieldsType": "FieldsV1"}),
        set,
    }
}

/// Apply `config` as `manager` onto `live` (or onto nothing, for a create).
pub fn server_side_apply(
    kind: Kind,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Malformed(
            "apply configuration must be an object".into(),
        ));
    }
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let applied = field_set(kind, config);
    let mut list = entries(&base);
    let mut conflicts = Vec::new();
    for e in list
        .iter_mut()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
    {
        let owned: Vec<FieldPath> = applied
            .iter()
            .filter(|p| e.set.contains(*p) && !p.last().is_some_and(|s| s.starts_with("k:")))
            .filter(|p| get_at(&base, p).is_some_and(|lv| Some(lv) != get_at(config, p)))
            .cloned()
            .collect();
        if force {
            for p in &owned {
                e.set.remove(p);
            }
        } else {
            let av = e
                .raw
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or(api_version)
                .to_string();
            conflicts.extend(owned.iter().map(|p| Conflict {
                manager: e.manager.clone(),
                api_version: av.clone(),
                field: render_path(p),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    let previous = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut merged =
        strategic::merge(kind, &base, config).map_err(|e| ApplyError::Malformed(e.to_string()))?;
    let mut removed: Vec<&FieldPath> = previous
        .iter()
        .filter(|p| !applied.contains(*p))
        .filter(|p| {
            !list
                .iter()
                .any(|e| !(e.manager == manager && e.operation == "Apply") && e.set.contains(*p))
        })
        .collect();
    removed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in removed {
        remove_at(&mut merged, p);
    }
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(new_entry(manager, "Apply", api_version, applied));
    store_entries(&mut merged, list);
    Ok(merged)
}

/// Record a non-apply write: `manager` owns the fields whose values it changed.
pub fn record_update(
    kind: Kind,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
) {
    let now_set = field_set(kind, new);
    let changed: FieldSet = now_set
        .iter()
        .filter(|p| old.and_then(|o| get_at(o, p)) != get_at(new, p))
        .cloned()
        .collect();
    let mut list = entries(new);
    for e in list.iter_mut() {
        e.set.retain(|p| now_set.contains(p));
        if !(e.manager == manager && e.operation == "Update") {
            for p in &changed {
                e.set.remove(p);
            }
        }
    }
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update")
    {
        Some(e) => e.set.extend(changed),
        None if !changed.is_empty() => {
            list.push(new_entry(manager, "Update", api_version, changed))
        }
        None => {}
    }
    store_entries(new, list);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_roundtrip() {
        let obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80, "name": "x"}], "type": "NodePort"}});
        let set = field_set(Kind::Service, &obj);
        assert!(set.contains(&vec![
            "f:spec".to_string(),
            "f:ports".into(),
            "k:{\"port\":80}".into(),
            "f:name".into()
        ]));
        assert_eq!(decode(&encode(&set)), set);
    }

    #[test]
    fn apply_removes_dropped_fields_and_detects_conflicts() {
        let cfg1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let live =
            server_side_apply(Kind::ConfigMap, None, &cfg1, "mgr", false, "v1").expect("apply");
        let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}});
        let live2 = server_side_apply(Kind::ConfigMap, Some(&live), &cfg2, "mgr", false, "v1")
            .expect("apply2");
        assert_eq!(live2["metadata"]["labels"], json!({"a": "1"}));
        let cfg3 = json!({"data": {"k": "other"}});
        let err = server_side_apply(Kind::ConfigMap, Some(&live2), &cfg3, "other", false, "v1");
        assert!(matches!(err, Err(ApplyError::Conflicts(ref c)) if c[0].field == ".data.k"));
        let forced = server_side_apply(Kind::ConfigMap, Some(&live2), &cfg3, "other", true, "v1")
            .expect("force");
        assert_eq!(forced["data"]["k"], "other");
    }

    #[test]
    fn updates_take_ownership() {
        let old = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
        let mut new = json!({"metadata": {"name": "c"}, "data": {"k": "w"}});
        record_update(Kind::ConfigMap, Some(&old), &mut new, "kubectl-edit", "v1");
        assert_eq!(
            new["metadata"]["managedFields"][0]["manager"],
            "kubectl-edit"
        );
        assert_eq!(
            new["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:k": {}}})
        );
    }
}
