//! ReplicaSets and Deployments (apps/v1): defaults, validation, and the `scale`
//! subresource (autoscaling/v1 `Scale`).

use serde_json::{json, Value};

use super::pods::{default_field, default_pod_spec, validate_pod_spec};
use super::validation::{invalid, not_supported, required, validate_labels};
use crate::resources::Kind;
use crate::selectors::{labels_of, LabelSelector};
use crate::status::Cause;

/// Defaults for ReplicaSets and Deployments.
pub fn apply_defaults(kind: Kind, obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    default_field(spec, "replicas", json!(1));
    if kind == Kind::Deployment {
        default_field(spec, "revisionHistoryLimit", json!(10));
        default_field(spec, "progressDeadlineSeconds", json!(600));
        default_field(spec, "strategy", json!({"type": "RollingUpdate"}));
        if let Some(st) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
            default_field(st, "type", json!("RollingUpdate"));
            if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                default_field(st, "rollingUpdate", json!({}));
                if let Some(ru) = st.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                    default_field(ru, "maxUnavailable", json!("25%"));
                    default_field(ru, "maxSurge", json!("25%"));
                }
            }
        }
    }
    if let Some(tspec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(tspec);
    }
}

/// Status starts empty on create.
pub fn prepare_create(kind: Kind, obj: &mut Value) {
    obj["status"] = if kind == Kind::ReplicaSet {
        json!({"replicas": 0})
    } else {
        json!({})
    };
}

/// Validate spec.selector, spec.template and spec.replicas.
pub fn validate(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64) {
        if r < 0 {
            causes.push(invalid(
                "spec.replicas",
                &json!(r),
                "must be greater than or equal to 0",
            ));
        }
    }
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let sel = selector
        .map(LabelSelector::from_label_selector)
        .unwrap_or_default();
    if selector.is_none() {
        causes.push(required("spec.selector", ""));
    } else if sel.is_empty() {
        causes.push(invalid(
            "spec.selector",
            selector.unwrap_or(&Value::Null),
            "empty selector is invalid for deployment",
        ));
    }
    validate_labels(
        selector.and_then(|s| s.get("matchLabels")),
        "spec.selector.matchLabels",
        causes,
    );
    let template = spec.get("template");
    match template {
        None => causes.push(required("spec.template", "")),
        Some(t) => {
            let tl = t.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
            if !sel.is_empty() && !sel.matches(&labels_of(t)) {
                causes.push(invalid(
                    "spec.template.metadata.labels",
                    &tl,
                    "`selector` does not match template `labels`",
                ));
            }
            validate_labels(
                t.pointer("/metadata/labels"),
                "spec.template.metadata.labels",
                causes,
            );
            validate_pod_spec(t.get("spec"), "spec.template.spec", causes);
            if let Some(rp) = t.pointer("/spec/restartPolicy").and_then(Value::as_str) {
                if rp != "Always" {
                    causes.push(not_supported(
                        "spec.template.spec.restartPolicy",
                        &json!(rp),
                        &["Always"],
                    ));
                }
            }
        }
    }
    if let Some(old) = old {
        if old.pointer("/spec/selector") != obj.pointer("/spec/selector") {
            causes.push(invalid(
                "spec.selector",
                selector.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
}

/// The `Scale` view of a ReplicaSet or Deployment.
pub fn to_scale(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let selector = obj
        .pointer("/spec/selector")
        .map(LabelSelector::from_label_selector)
        .unwrap_or_default()
        .to_string_form();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// Write a Scale's `spec.replicas` back into the object.
pub fn apply_scale(obj: &mut Value, scale: &Value) -> Result<(), Cause> {
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    match replicas.as_i64() {
        Some(r) if r >= 0 => {
            obj["spec"]["replicas"] = json!(r);
            Ok(())
        }
        _ => Err(invalid(
            "spec.replicas",
            &replicas,
            "must be greater than or equal to 0",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_must_match_template() {
        let rs = json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let mut c = Vec::new();
        validate(&rs, None, &mut c);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.template.metadata.labels");
        assert_eq!(c[0].message, "Invalid value: map[string]string{\"app\":\"b\"}: `selector` does not match template `labels`");
    }

    #[test]
    fn scale_view() {
        let mut rs = json!({"metadata": {"name": "r"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}}}});
        let s = to_scale(&rs);
        assert_eq!(s["status"]["selector"], "app=a");
        apply_scale(&mut rs, &json!({"spec": {"replicas": 5}})).expect("scale");
        assert_eq!(rs["spec"]["replicas"], 5);
    }
}
