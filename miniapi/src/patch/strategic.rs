//! Strategic merge patch, for the built-in types' patch strategies.
//!
//! Lists with a merge key merge element-wise (containers, volumes, env, ports, ...);
//! `finalizers` merge as a set; other lists replace. Directives: `$patch: delete`
//! and `$patch: replace` (in maps and list elements), `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`.

use serde_json::{Map, Value};

use super::PatchError;
use crate::resources::Kind;

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Merge elements by this key.
    MergeKey(&'static str),
    /// Merge as a set of primitives.
    Set,
    /// Replace the whole list (atomic).
    Replace,
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The strategy of list field `field` at `path` (field names from the root; list
/// elements add no segment) in an object of kind `kind`.
pub fn list_strategy(kind: Kind, path: &[String], field: &str) -> ListStrategy {
    let parent = path.last().map(String::as_str).unwrap_or("");
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => ListStrategy::MergeKey("name"),
        "volumeMounts" => ListStrategy::MergeKey("mountPath"),
        "volumeDevices" => ListStrategy::MergeKey("devicePath"),
        "hostAliases" => ListStrategy::MergeKey("ip"),
        "topologySpreadConstraints" => ListStrategy::MergeKey("topologyKey"),
        "podIPs" | "hostIPs" => ListStrategy::MergeKey("ip"),
        "conditions" => ListStrategy::MergeKey("type"),
        "addresses" if parent == "status" && kind == Kind::Node => ListStrategy::MergeKey("type"),
        "ownerReferences" => ListStrategy::MergeKey("uid"),
        "finalizers" if parent == "metadata" => ListStrategy::Set,
        "podCIDRs" => ListStrategy::Set,
        "secrets" if kind == Kind::ServiceAccount => ListStrategy::MergeKey("name"),
        "ports" if CONTAINER_LISTS.contains(&parent) => ListStrategy::MergeKey("containerPort"),
        "ports" if kind == Kind::Service && path.len() == 1 && parent == "spec" => {
            ListStrategy::MergeKey("port")
        }
        _ => ListStrategy::Replace,
    }
}

/// Apply a strategic merge patch to `current`.
pub fn merge(kind: Kind, current: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(p) = patch else {
        return Err(PatchError::Malformed(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    let base = match current {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    match merge_map(kind, base, p, &mut Vec::new())? {
        Some(m) => Ok(Value::Object(m)),
        None => Ok(Value::Object(Map::new())),
    }
}

/// Remove every `$`-directive from a patch fragment that is inserted as-is.
pub fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| !is_directive_element(e))
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_directive_element(e: &Value) -> bool {
    e.as_object()
        .is_some_and(|m| m.len() == 1 && m.get("$patch").is_some())
}

fn merge_map(
    kind: Kind,
    mut base: Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            return match strip_directives(&Value::Object(patch.clone())) {
                Value::Object(m) => Ok(Some(m)),
                _ => Ok(Some(Map::new())),
            }
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Malformed(format!(
                "unknown patch type: {other}"
            )))
        }
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Value::Array(a) = v {
                orders.push((field.to_string(), a.clone()));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (base.get_mut(field), v) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                base.remove(k);
            }
            Value::Object(pm) => {
                let cur = match base.remove(k) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                path.push(k.clone());
                let merged = merge_map(kind, cur, pm, path)?;
                path.pop();
                if let Some(m) = merged {
                    base.insert(k.clone(), Value::Object(m));
                }
            }
            Value::Array(pa) => {
                let strategy = list_strategy(kind, path, k);
                let cur = match base.remove(k) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                path.push(k.clone());
                let merged = merge_list(kind, cur, pa, strategy, path)?;
                path.pop();
                base.insert(k.clone(), Value::Array(merged));
            }
            scalar => {
                base.insert(k.clone(), scalar.clone());
            }
        }
    }
    for (field, order) in orders {
        let strategy = list_strategy(kind, path, &field);
        if let Some(Value::Array(list)) = base.get_mut(&field) {
            reorder(list, &order, strategy);
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        base.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(base))
}

fn key_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

fn merge_list(
    kind: Kind,
    mut cur: Vec<Value>,
    patch: &[Value],
    strategy: ListStrategy,
    path: &mut Vec<String>,
) -> Result<Vec<Value>, PatchError> {
    if patch.iter().any(|e| {
        e.get("$patch").and_then(Value::as_str) == Some("replace") && is_directive_element(e)
    }) {
        return Ok(patch
            .iter()
            .filter(|e| !is_directive_element(e))
            .map(strip_directives)
            .collect());
    }
    match strategy {
        ListStrategy::Replace => Ok(patch.iter().map(strip_directives).collect()),
        ListStrategy::Set => {
            for e in patch {
                if !cur.contains(e) {
                    cur.push(e.clone());
                }
            }
            Ok(cur)
        }
        ListStrategy::MergeKey(key) => {
            for pe in patch {
                let Some(pm) = pe.as_object() else {
                    cur.push(pe.clone());
                    continue;
                };
                let Some(kv) = pm.get(key) else {
                    if !is_directive_element(pe) {
                        cur.push(strip_directives(pe));
                    }
                    continue;
                };
                let same = |c: &Value| key_of(c, key) == Some(kv) && same_protocol(key, c, pm);
                let pos = cur.iter().position(same);
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    cur.retain(|c| !same(c));
                    continue;
                }
                match pos {
                    Some(i) => {
                        let base = match std::mem::take(&mut cur[i]) {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        };
                        match merge_map(kind, base, pm, path)? {
                            Some(m) => cur[i] = Value::Object(m),
                            None => {
                                cur.remove(i);
                            }
                        }
                    }
                    None => cur.push(strip_directives(pe)),
                }
            }
            Ok(cur)
        }
    }
}

/// Ports are told apart by port *and* protocol (the API's list-map keys), so 53/UDP and
/// 53/TCP stay two elements. A patch element that names no protocol matches by port
/// alone, as kubectl's strategic merge patches (merge key `port`) expect.
fn same_protocol(key: &str, current: &Value, patch: &Map<String, Value>) -> bool {
    if !matches!(key, "port" | "containerPort") {
        return true;
    }
    match patch.get("protocol").and_then(Value::as_str) {
        None => true,
        Some(p) => current.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == p,
    }
}

fn reorder(list: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let matches = |item: &Value, o: &Value| match strategy {
        ListStrategy::MergeKey(k) => key_of(item, k).is_some() && key_of(item, k) == key_of(o, k),
        _ => item == o,
    };
    let mut rest = std::mem::take(list);
    for o in order {
        if let Some(i) = rest.iter().position(|it| matches(it, o)) {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_with_one_number_and_two_protocols_stay_two() {
        let cur = json!({"spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}});
        let p = json!({"spec": {"ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}});
        let out = merge(Kind::Service, &cur, &p).expect("merge");
        assert_eq!(out["spec"]["ports"].as_array().map(Vec::len), Some(2), "{out}");
        let p = json!({"spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "d"}]}});
        let out = merge(Kind::Service, &out, &p).expect("merge");
        assert_eq!(out["spec"]["ports"][0]["name"], "d");
        assert_eq!(out["spec"]["ports"][1]["name"], "dns-tcp");
    }

    #[test]
    fn containers_merge_by_name() {
        let cur = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let p = json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}});
        let out = merge(Kind::Pod, &cur, &p).expect("merge");
        assert_eq!(out["spec"]["containers"][0]["image"], "x");
        assert_eq!(out["spec"]["containers"][1]["image"], "z");
        assert_eq!(out["spec"]["containers"][2]["name"], "c");
    }

    #[test]
    fn directives() {
        let cur = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}], "selector": {"k": "v"}}});
        let p = json!({"metadata": {"labels": {"a": null}, "finalizers": ["y"]},
            "spec": {"ports": [{"port": 80, "$patch": "delete"}], "selector": {"$patch": "replace", "n": "m"},
                "$setElementOrder/ports": [{"port": 443}]}});
        let out = merge(Kind::Service, &cur, &p).expect("merge");
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 443, "name": "https"}])
        );
        assert_eq!(out["spec"]["selector"], json!({"n": "m"}));
    }

    #[test]
    fn retain_keys_and_primitive_delete() {
        let cur = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "args": ["a"]},
            "metadata": {"finalizers": ["a", "b"]}});
        let p = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}},
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}});
        let out = merge(Kind::Deployment, &cur, &p).expect("merge");
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn container_ports_use_container_port() {
        let cur =
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}});
        let p = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 81}]}]}});
        let out = merge(Kind::Pod, &cur, &p).expect("merge");
        assert_eq!(
            out["spec"]["containers"][0]["ports"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }
}
