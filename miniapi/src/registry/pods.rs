//! Pods and pod templates: defaulting (as `SetDefaults_PodSpec`, the ServiceAccount
//! and DefaultTolerationSeconds admission plugins do) and validation of the fields
//! users write.

use serde_json::{json, Map, Value};

use super::validation::{
    dns1123_label, duplicate, forbidden, invalid, not_supported, required, validate_port,
};
use crate::status::Cause;

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Set `m[k] = v` unless it is already present (and not null).
pub fn default_field(m: &mut Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.into(), v);
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_probe(p: &mut Value) {
    let Some(m) = obj(p) else { return };
    default_field(m, "timeoutSeconds", json!(1));
    default_field(m, "periodSeconds", json!(10));
    default_field(m, "successThreshold", json!(1));
    default_field(m, "failureThreshold", json!(3));
    if let Some(h) = m.get_mut("httpGet").and_then(Value::as_object_mut) {
        default_field(h, "path", json!("/"));
        default_field(h, "scheme", json!("HTTP"));
    }
}

fn default_container(c: &mut Value) {
    let Some(m) = obj(c) else { return };
    let image = m
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    default_field(m, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(m, "terminationMessagePolicy", json!("File"));
    default_field(m, "imagePullPolicy", json!(default_pull_policy(&image)));
    default_field(m, "resources", json!({}));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_field(p, "protocol", json!("TCP"));
        }
    }
    if let Some(env) = m.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(fr) = e
                .pointer_mut("/valueFrom/fieldRef")
                .and_then(Value::as_object_mut)
            {
                default_field(fr, "apiVersion", json!("v1"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = m.get_mut(probe) {
            default_probe(p);
        }
    }
}

/// Defaults of a PodSpec (pods and templates).
pub fn default_pod_spec(spec: &mut Value) {
    let Some(m) = obj(spec) else { return };
    default_field(m, "restartPolicy", json!("Always"));
    default_field(m, "terminationGracePeriodSeconds", json!(30));
    default_field(m, "dnsPolicy", json!("ClusterFirst"));
    default_field(m, "securityContext", json!({}));
    default_field(m, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
    if let Some(vols) = m.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            for src in ["configMap", "secret"] {
                if let Some(s) = v.get_mut(src).and_then(Value::as_object_mut) {
                    default_field(s, "defaultMode", json!(420));
                }
            }
            if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
                default_field(h, "type", json!(""));
            }
        }
    }
}

/// Pod-only defaults (admission): service account, priority, default tolerations.
pub fn default_pod_admission(spec: &mut Value) {
    let Some(m) = obj(spec) else { return };
    let sa = m
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            m.get("serviceAccount")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_string();
    m.insert("serviceAccountName".into(), json!(sa));
    m.insert("serviceAccount".into(), json!(sa));
    default_field(m, "enableServiceLinks", json!(true));
    default_field(m, "priority", json!(0));
    default_field(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    let tol = m.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = tol.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let has = list.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(key)
                    && t.get("effect")
                        .and_then(Value::as_str)
                        .is_none_or(|e| e == "NoExecute")
            });
            if !has {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

/// The QoS class of a pod spec.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec
        .get("containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(res));
            let r = req.and_then(|r| r.get(res)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate_container(
    c: &Value,
    field: &str,
    names: &mut Vec<String>,
    volumes: &[String],
    causes: &mut Vec<Cause>,
) {
    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        causes.push(required(&format!("{field}.name"), ""));
    } else {
        for e in dns1123_label(name) {
            causes.push(invalid(&format!("{field}.name"), &json!(name), &e));
        }
        if names.iter().any(|n| n == name) {
            causes.push(duplicate(&format!("{field}.name"), &json!(name)));
        }
        names.push(name.to_string());
    }
    if c.get("image")
        .and_then(Value::as_str)
        .is_none_or(|i| i.trim().is_empty())
    {
        causes.push(required(&format!("{field}.image"), ""));
    }
    if let Some(p) = c.get("imagePullPolicy").and_then(Value::as_str) {
        if !["Always", "IfNotPresent", "Never"].contains(&p) {
            causes.push(not_supported(
                &format!("{field}.imagePullPolicy"),
                &json!(p),
                &["Always", "IfNotPresent", "Never"],
            ));
        }
    }
    let mut port_names: Vec<String> = Vec::new();
    for (i, p) in c
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let pf = format!("{field}.ports[{i}]");
        validate_port(
            p.get("containerPort"),
            &format!("{pf}.containerPort"),
            causes,
        );
        if let Some(proto) = p.get("protocol").and_then(Value::as_str) {
            if !["TCP", "UDP", "SCTP"].contains(&proto) {
                causes.push(not_supported(
                    &format!("{pf}.protocol"),
                    &json!(proto),
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
        if let Some(n) = p.get("name").and_then(Value::as_str) {
            if port_names.iter().any(|x| x == n) {
                causes.push(duplicate(&format!("{pf}.name"), &json!(n)));
            }
            port_names.push(n.to_string());
        }
    }
    for (i, vm) in c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let vname = vm.get("name").and_then(Value::as_str).unwrap_or("");
        if !volumes.iter().any(|v| v == vname) {
            causes.push(Cause {
                reason: "FieldValueNotFound".into(),
                message: format!("Not found: {vname:?}"),
                field: format!("{field}.volumeMounts[{i}].name"),
            });
        }
        if vm
            .get("mountPath")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(required(
                &format!("{field}.volumeMounts[{i}].mountPath"),
                "",
            ));
        }
    }
}

/// Validate a PodSpec at `field` (`spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        causes.push(required(&format!("{field}.containers"), ""));
        return;
    };
    let mut volumes: Vec<String> = Vec::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let n = v.get("name").and_then(Value::as_str).unwrap_or("");
        let vf = format!("{field}.volumes[{i}].name");
        if n.is_empty() {
            causes.push(required(&vf, ""));
        } else if volumes.iter().any(|x| x == n) {
            causes.push(duplicate(&vf, &json!(n)));
        } else {
            for e in dns1123_label(n) {
                causes.push(invalid(&vf, &json!(n), &e));
            }
        }
        volumes.push(n.to_string());
    }
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        causes.push(required(&format!("{field}.containers"), ""));
    }
    let mut names = Vec::new();
    for (i, c) in spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        validate_container(
            c,
            &format!("{field}.initContainers[{i}]"),
            &mut names,
            &volumes,
            causes,
        );
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        validate_container(
            c,
            &format!("{field}.containers[{i}]"),
            &mut names,
            &volumes,
            causes,
        );
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !["Always", "OnFailure", "Never"].contains(&rp) {
            causes.push(not_supported(
                &format!("{field}.restartPolicy"),
                &json!(rp),
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
    if let Some(dp) = spec.get("dnsPolicy").and_then(Value::as_str) {
        let ok = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
        if !ok.contains(&dp) {
            causes.push(not_supported(
                &format!("{field}.dnsPolicy"),
                &json!(dp),
                &ok,
            ));
        }
    }
    if let Some(g) = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
    {
        if g < 0 {
            causes.push(invalid(
                &format!("{field}.terminationGracePeriodSeconds"),
                &json!(g),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// Prepare a new Pod: defaults and the initial status.
pub fn prepare_create(pod: &mut Value) {
    if let Some(spec) = pod.get_mut("spec") {
        default_pod_spec(spec);
        default_pod_admission(spec);
    }
    let qos = pod.get("spec").map(qos_class).unwrap_or("BestEffort");
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
}

/// Pod updates may change only images, activeDeadlineSeconds, tolerations and
/// terminationGracePeriodSeconds.
pub fn validate_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let strip = |v: &Value| -> Value {
        let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = s.as_object_mut() {
            for k in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                m.remove(k);
            }
            for list in ["containers", "initContainers"] {
                if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        c.remove("image");
                    }
                }
            }
        }
        s
    };
    if strip(old) != strip(new) {
        causes.push(forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}});
        prepare_create(&mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/x"), "Always");
    }

    #[test]
    fn validation() {
        let mut c = Vec::new();
        validate_pod_spec(
            Some(&json!({"containers": [{"name": "a"}, {"name": "a", "image": "x"}]})),
            "spec",
            &mut c,
        );
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.containers[0].image", "spec.containers[1].name"]
        );
    }
}
