//! Helpers shared by the controllers and the scheduler: the error type, label
//! selectors, owner references, pod state, quantities and times.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// Errors of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Anything else (invalid object, missing field).
    #[error("{0}")]
    Other(String),
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `e` is an API error with HTTP status `code`.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Treat 404 (already gone) as success.
pub fn ignore_not_found<T>(r: kube::Result<T>) -> kube::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Current time as a Kubernetes `Time`.
pub fn now() -> Time {
    Time(Timestamp::now())
}

/// Seconds elapsed since `t` (negative if in the future).
pub fn seconds_since(t: &Time) -> f64 {
    let d = Timestamp::now().duration_since(t.0);
    d.as_secs_f64()
}

/// Parse a duration like `40s`, `5m`, `1m30s`, `500ms`, `2h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<f64>() {
        return Ok(Duration::from_secs_f64(n));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        total += match unit.as_str() {
            "ms" => v / 1000.0,
            "s" => v,
            "m" => v * 60.0,
            "h" => v * 3600.0,
            _ => return Err(format!("invalid unit {unit:?} in duration {s:?}")),
        };
    }
    if !num.is_empty() {
        return Err(format!("missing unit in duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Whether a label selector matches `labels` (an empty selector matches everything).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels {
        if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let val = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or(&[]);
        let ok = match e.operator.as_str() {
            "In" => val.is_some_and(|v| values.contains(v)),
            "NotIn" => val.is_none_or(|v| !values.contains(v)),
            "Exists" => val.is_some(),
            "DoesNotExist" => val.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a selector selects nothing special (no labels, no expressions).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

/// Whether a plain map selector (Service, nodeSelector) matches `labels`.
pub fn map_matches(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The `labelSelector=` query form of a plain map selector.
pub fn map_selector_string(sel: &BTreeMap<String, String>) -> String {
    sel.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The controller owner reference of an object, if any.
pub fn controller_of<K: ResourceExt>(obj: &K) -> Option<&OwnerReference> {
    obj.owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller owner reference (controller and blockOwnerDeletion set) pointing to `owner`.
pub fn controller_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether an object is being deleted.
pub fn is_deleting<K: ResourceExt>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// Pod phase, `Pending` when unset.
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Active pods: not terminal and not being deleted (what a ReplicaSet counts).
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod_phase(pod);
    phase != "Succeeded" && phase != "Failed" && !is_deleting(pod)
}

/// The pod's Ready condition, if set.
pub fn pod_ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

/// Whether the pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Whether the pod has been Ready for at least `min_ready_seconds`.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32) -> bool {
    let Some(c) = pod_ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    c.last_transition_time
        .as_ref()
        .is_some_and(|t| seconds_since(t) >= f64::from(min_ready_seconds))
}

/// The node a pod is bound to, if any.
pub fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// FNV-1a, 32 bits.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Upstream's `rand.SafeEncodeString`: map each byte onto an alphabet without vowels
/// (so no words) and without look-alike characters.
pub fn safe_encode(s: &str) -> String {
    const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALNUM[usize::from(b) % ALNUM.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a template (with the collision count), as upstream:
/// FNV-32a of the template's serialized form, printed in decimal, safe-encoded.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = template.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove("pod-template-hash");
    }
    let mut data = serde_json::to_vec(&t).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(c.to_string().as_bytes());
    }
    safe_encode(&fnv32a(&data).to_string())
}

/// Parse a CPU quantity into millicores.
pub fn cpu_millis(q: &str) -> i64 {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().map(|v| v.ceil() as i64).unwrap_or(0);
    }
    parse_quantity(q)
        .map(|v| (v * 1000.0).ceil() as i64)
        .unwrap_or(0)
}

/// Parse a quantity (memory, pods) into a plain number.
pub fn quantity_value(q: &str) -> i64 {
    parse_quantity(q.trim())
        .map(|v| v.ceil() as i64)
        .unwrap_or(0)
}

fn parse_quantity(q: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (s, mult) in SUFFIXES {
        if let Some(n) = q.strip_suffix(s) {
            return n.parse::<f64>().ok().map(|v| v * mult);
        }
    }
    q.parse::<f64>().ok()
}

/// Resolve an int-or-percent against `total` (percentages round up when `round_up`).
pub fn int_or_percent(
    v: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    default: &str,
    total: i32,
    round_up: bool,
) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let s = match v {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => s.clone(),
        None => default.to_string(),
    };
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p.parse().unwrap_or(0.0);
        let v = p * f64::from(total) / 100.0;
        return if round_up {
            v.ceil() as i32
        } else {
            v.floor() as i32
        };
    }
    s.parse().unwrap_or(0)
}

/// Whether a toleration tolerates a taint (upstream's `ToleratesTaint`).
pub fn tolerates(
    tol: &k8s_openapi::api::core::v1::Toleration,
    taint: &k8s_openapi::api::core::v1::Taint,
) -> bool {
    if let Some(e) = tol.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let op = tol.operator.as_deref().unwrap_or("Equal");
    match tol.key.as_deref().filter(|k| !k.is_empty()) {
        None => op == "Exists",
        Some(k) => {
            k == taint.key
                && (op == "Exists"
                    || (op == "Equal"
                        && tol.value.as_deref().unwrap_or("")
                            == taint.value.as_deref().unwrap_or("")))
        }
    }
}

/// The pod's tolerations.
pub fn pod_tolerations(pod: &Pod) -> &[k8s_openapi::api::core::v1::Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3x").is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("100m"), 100);
        assert_eq!(cpu_millis("2"), 2000);
        assert_eq!(cpu_millis("0.5"), 500);
        assert_eq!(quantity_value("1Gi"), 1 << 30);
        assert_eq!(quantity_value("128974848"), 128_974_848);
        assert_eq!(quantity_value("129M"), 129_000_000);
        assert_eq!(quantity_value("110"), 110);
    }

    #[test]
    fn percents() {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        assert_eq!(int_or_percent(None, "25%", 4, true), 1);
        assert_eq!(int_or_percent(None, "25%", 3, true), 1);
        assert_eq!(int_or_percent(None, "25%", 3, false), 0);
        assert_eq!(
            int_or_percent(Some(&IntOrString::Int(0)), "25%", 3, false),
            0
        );
        assert_eq!(
            int_or_percent(Some(&IntOrString::String("50%".into())), "25%", 5, true),
            3
        );
    }

    #[test]
    fn selectors() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())]
            .into_iter()
            .collect();
        let sel = LabelSelector {
            match_labels: Some(labels.clone()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "DoesNotExist".into(),
                values: None,
            }]),
        };
        assert!(selector_matches(&sel, &labels));
        let mut other = labels.clone();
        other.insert("tier".into(), "x".into());
        assert!(!selector_matches(&sel, &other));
    }

    #[test]
    fn hash_is_safe_encoded() {
        let h = pod_template_hash(&PodTemplateSpec::default(), None);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(h, pod_template_hash(&PodTemplateSpec::default(), Some(1)));
    }
}
