//! Services: defaulting, validation and ClusterIP/NodePort allocation.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::pods::default_field;
use super::validation::{
    duplicate, forbidden, invalid, not_supported, required, validate_labels, validate_port,
};
use crate::allocators::{AllocError, Allocators, InUse};
use crate::status::Cause;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn svc_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn needs_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        _ => false,
    }
}

/// `SetDefaults_Service` and friends.
pub fn apply_defaults(svc: &mut Value) {
    let ty = svc_type(svc).to_string();
    let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    default_field(spec, "type", json!("ClusterIP"));
    default_field(spec, "sessionAffinity", json!("None"));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_field(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                default_field(p, "targetPort", port);
            }
        }
    }
    if ty != "ExternalName" {
        default_field(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        default_field(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty == "ClusterIP" {
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
}

/// Validate the user-written fields of a Service.
pub fn validate(svc: &Value, causes: &mut Vec<Cause>) {
    let Some(spec) = svc.get("spec") else {
        causes.push(required("spec.ports", ""));
        return;
    };
    let ty = svc_type(svc);
    if !TYPES.contains(&ty) {
        causes.push(not_supported("spec.type", &json!(ty), TYPES));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports: Vec<&Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(required("spec.ports", ""));
    }
    let mut names: Vec<&str> = Vec::new();
    let mut seen: Vec<(i64, &str)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            causes.push(required(&format!("{f}.name"), ""));
        } else if !name.is_empty() {
            if names.contains(&name) {
                causes.push(duplicate(&format!("{f}.name"), &json!(name)));
            }
            names.push(name);
        }
        validate_port(p.get("port"), &format!("{f}.port"), causes);
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            causes.push(not_supported(
                &format!("{f}.protocol"),
                &json!(proto),
                &["SCTP", "TCP", "UDP"],
            ));
        }
        if let Some(port) = p.get("port").and_then(Value::as_i64) {
            if seen.contains(&(port, proto)) {
                causes.push(duplicate(&f, &json!(format!("{port}/{proto}"))));
            }
            seen.push((port, proto));
        }
        if let Some(tp) = p.get("targetPort").and_then(Value::as_i64) {
            if !(1..=65535).contains(&tp) {
                causes.push(invalid(
                    &format!("{f}.targetPort"),
                    &json!(tp),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
        if p.get("nodePort")
            .and_then(Value::as_i64)
            .is_some_and(|n| n != 0)
            && ty == "ClusterIP"
        {
            causes.push(forbidden(
                &format!("{f}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
    if let Some(a) = spec.get("sessionAffinity").and_then(Value::as_str) {
        if !["ClientIP", "None"].contains(&a) {
            causes.push(not_supported(
                "spec.sessionAffinity",
                &json!(a),
                &["ClientIP", "None"],
            ));
        }
    }
    if ty == "ExternalName"
        && spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        causes.push(required("spec.externalName", ""));
    }
    validate_labels(spec.get("selector"), "spec.selector", causes);
}

/// Carry allocated values from `old` into an update that does not specify them.
pub fn carry_over(old: &Value, new: &mut Value) {
    let new_ty = svc_type(new).to_string();
    if new_ty != "ExternalName" {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if let (Some(v), Some(spec)) = (
                old.pointer(&format!("/spec/{f}")).cloned(),
                new.get_mut("spec").and_then(Value::as_object_mut),
            ) {
                default_field(spec, f, v);
            }
        }
    }
    if !needs_node_ports(new) {
        return;
    }
    let old_ports: Vec<Value> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                continue;
            }
            let same = old_ports
                .iter()
                .find(|o| o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol"));
            if let Some(np) = same.and_then(|o| o.get("nodePort")).cloned() {
                p.insert("nodePort".into(), np);
            }
        }
    }
}

/// Allocate (or check) ClusterIPs and NodePorts; `used` excludes this Service.
pub fn allocate(
    svc: &mut Value,
    alloc: &Allocators,
    used: &InUse,
    old: Option<&Value>,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ty = svc_type(svc).to_string();
    let old_ip = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
        .map(String::from);
    if ty != "ExternalName" {
        let requested = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ip = if requested == "None" {
            Some("None".to_string())
        } else if requested.is_empty() {
            match alloc.allocate_ip(used) {
                Ok(ip) => Some(ip.to_string()),
                Err(e) => {
                    causes.push(invalid(
                        "spec.clusterIPs",
                        &json!(""),
                        &format!("failed to allocate IP: {e}"),
                    ));
                    None
                }
            }
        } else if old_ip.as_deref() == Some(requested.as_str()) {
            Some(requested)
        } else if let Some(prev) = old_ip.filter(|p| !p.is_empty()) {
            causes.push(invalid(
                "spec.clusterIPs[0]",
                &json!(requested),
                &format!("may not change once set (was {prev:?})"),
            ));
            None
        } else {
            let list = format!("[]string{{{requested:?}}}");
            match requested.parse::<Ipv4Addr>() {
                Err(_) => {
                    causes.push(invalid(
                        "spec.clusterIPs[0]",
                        &json!(requested),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                    None
                }
                Ok(a) => match alloc.check_ip(a, used) {
                    Ok(()) => Some(requested),
                    Err(e) => {
                        let detail = match e {
                            AllocError::OutOfRange { .. } => format!("failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}", alloc.range()),
                            other => format!("failed to allocate IP {requested}: {other}"),
                        };
                        causes.push(Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!("Invalid value: {list}: {detail}"),
                            field: "spec.clusterIPs".into(),
                        });
                        None
                    }
                },
            }
        };
        if let (Some(ip), Some(spec)) = (ip, svc.get_mut("spec").and_then(Value::as_object_mut)) {
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
            default_field(spec, "ipFamilies", json!(["IPv4"]));
            default_field(spec, "ipFamilyPolicy", json!("SingleStack"));
        }
    }
    if needs_node_ports(svc) {
        let mut taken = used.clone();
        if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(pm) = p.as_object_mut() else {
                    continue;
                };
                let requested = pm.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
                let kept = old.is_some_and(|o| {
                    o.pointer("/spec/ports")
                        .and_then(Value::as_array)
                        .is_some_and(|op| {
                            op.iter().any(|x| {
                                x.get("nodePort").and_then(Value::as_i64) == Some(requested)
                            })
                        })
                });
                if requested != 0 {
                    if kept && !taken.ports.contains(&(requested as u16)) {
                        taken.ports.insert(requested as u16);
                        continue;
                    }
                    match alloc.check_port(requested, &taken) {
                        Ok(()) => {
                            taken.ports.insert(requested as u16);
                        }
                        Err(e) => causes.push(invalid(
                            &format!("spec.ports[{i}].nodePort"),
                            &json!(requested),
                            &e.to_string(),
                        )),
                    }
                } else {
                    match alloc.allocate_port(&taken) {
                        Ok(np) => {
                            taken.ports.insert(np);
                            pm.insert("nodePort".into(), json!(np));
                        }
                        Err(e) => causes.push(invalid(
                            &format!("spec.ports[{i}].nodePort"),
                            &json!(0),
                            &e.to_string(),
                        )),
                    }
                }
            }
        }
    }
    causes
}

/// A fresh Service gets an empty load-balancer status.
pub fn prepare_create(svc: &mut Value) {
    svc["status"] = json!({"loadBalancer": {}});
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> Allocators {
        Allocators::new("10.96.0.0/12".parse().expect("cidr"), (30000, 32767))
    }

    #[test]
    fn nodeport_defaults_and_allocation() {
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 28017, "nodePort": 30001}]}});
        apply_defaults(&mut svc);
        let mut c = Vec::new();
        validate(&svc, &mut c);
        assert!(c.is_empty(), "{c:?}");
        assert!(allocate(&mut svc, &alloc(), &InUse::default(), None).is_empty());
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 28017);
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        assert!(svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|s| s.starts_with("10.")));
        let used = InUse::from_services([&svc].into_iter(), None);
        let mut other = json!({"spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 30001, "protocol": "TCP"}]}});
        let causes = allocate(&mut other, &alloc(), &used, None);
        assert_eq!(causes[0].field, "spec.ports[0].nodePort");
        assert_eq!(
            causes[0].message,
            "Invalid value: 30001: provided port is already allocated"
        );
    }
}
