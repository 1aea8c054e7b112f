//! Field sets for managed fields: the paths of an object's fields in `FieldsV1`
//! notation (`f:<field>`, `k:{"name":"x"}` for keyed list elements, `v:<json>` for
//! set members, `.` for the element itself), and their encoding.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::strategic::{list_strategy, ListStrategy};
use crate::resources::Kind;

/// One field path (`["f:spec", "f:ports", "k:{\"port\":80}", "f:port"]`).
pub type FieldPath = Vec<String>;
/// A set of field paths.
pub type FieldSet = BTreeSet<FieldPath>;

const SKIP_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The field set of an object.
pub fn field_set(kind: Kind, obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        if !SKIP_META.contains(&mk.as_str()) {
                            walk(
                                kind,
                                mv,
                                &mut vec!["metadata".into()],
                                mk,
                                &mut vec!["f:metadata".into(), format!("f:{mk}")],
                                &mut out,
                            );
                        }
                    }
                }
                continue;
            }
            walk(
                kind,
                v,
                &mut Vec::new(),
                k,
                &mut vec![format!("f:{k}")],
                &mut out,
            );
        }
    }
    out
}

fn walk(
    kind: Kind,
    v: &Value,
    names: &mut Vec<String>,
    field: &str,
    path: &mut FieldPath,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            names.push(field.to_string());
            for (k, cv) in m {
                path.push(format!("f:{k}"));
                walk(kind, cv, names, k, path, out);
                path.pop();
            }
            names.pop();
        }
        Value::Array(a) => match list_strategy(kind, names, field) {
            ListStrategy::MergeKey(key) => {
                names.push(field.to_string());
                for e in a {
                    let Some(kv) = e.get(key) else { continue };
                    // Ports are keyed by port and protocol, as the API's list-map keys.
                    let k = match e.get("protocol") {
                        Some(proto) if matches!(key, "port" | "containerPort") => json!({ key: kv, "protocol": proto }),
                        _ => json!({ key: kv }),
                    };
                    path.push(format!("k:{k}"));
                    out.insert(path.clone());
                    if let Value::Object(em) = e {
                        for (k, cv) in em {
                            path.push(format!("f:{k}"));
                            walk(kind, cv, names, k, path, out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
                names.pop();
            }
            ListStrategy::Set => {
                for e in a {
                    path.push(format!("v:{e}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListStrategy::Replace => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at a field path.
pub fn get_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        cur = step(cur, seg)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, seg: &str) -> Option<&'a Value> {
    if let Some(f) = seg.strip_prefix("f:") {
        return cur.get(f);
    }
    let arr = cur.as_array()?;
    if let Some(k) = seg.strip_prefix("k:") {
        let want: Map<String, Value> = serde_json::from_str(k).ok()?;
        return arr
            .iter()
            .find(|e| want.iter().all(|(wk, wv)| e.get(wk) == Some(wv)));
    }
    let want: Value = serde_json::from_str(seg.strip_prefix("v:")?).ok()?;
    arr.iter().find(|e| **e == want)
}

/// Remove the field at a path (no-op when absent).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if !rest.is_empty() {
        if let Some(child) = find_mut(obj, first) {
            remove_at(child, rest);
        }
        return;
    }
    if let Some(f) = first.strip_prefix("f:") {
        if let Some(m) = obj.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(t) = step(obj, first).cloned() {
        if let Some(arr) = obj.as_array_mut() {
            if let Some(i) = arr.iter().position(|e| *e == t) {
                arr.remove(i);
            }
        }
    }
}

fn find_mut<'a>(cur: &'a mut Value, seg: &str) -> Option<&'a mut Value> {
    if let Some(f) = seg.strip_prefix("f:") {
        return cur.get_mut(f);
    }
    let target = step(cur, seg)?.clone();
    cur.as_array_mut()?.iter_mut().find(|e| **e == target)
}

/// Render a path as `.spec.ports[port=80].port`.
pub fn render_path(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map(String::from).unwrap_or(v.to_string())
                    )
                })
                .collect();
            s.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(v) = seg.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

/// Encode a field set as a `FieldsV1` tree.
pub fn encode(set: &FieldSet) -> Value {
    fn insert(node: &mut Map<String, Value>, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let entry = node
            .entry(first.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(child) = entry.as_object_mut() {
            if rest.is_empty() {
                if first.starts_with("k:") {
                    child.insert(".".into(), Value::Object(Map::new()));
                }
            } else {
                insert(child, rest);
            }
        }
    }
    let mut root = Map::new();
    for path in set {
        insert(&mut root, path);
    }
    Value::Object(root)
}

/// Decode a `FieldsV1` tree.
pub fn decode(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn rec(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, cv) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            rec(cv, path, out);
            path.pop();
        }
    }
    rec(v, &mut Vec::new(), &mut out);
    out
}
