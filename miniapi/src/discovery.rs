//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<g>`,
//! `/apis/<g>/<v>` in the legacy form, and the aggregated
//! `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` that kubectl asks for first.

use serde_json::{json, Value};

use crate::resources::{in_group, ResourceInfo, GROUPS};

/// Content-Type of aggregated discovery responses.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The server's version (`kubectl version`).
pub const GIT_VERSION: &str = "v1.33.0-minik";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "minik",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "rustc",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(g: &str) -> Value {
    let gv = format!("{g}/v1");
    json!({"name": g, "versions": [{"groupVersion": gv, "version": "v1"}], "preferredVersion": {"groupVersion": gv, "version": "v1"}})
}

/// `/apis`.
pub fn api_group_list() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": GROUPS.iter().map(|g| group_json(g)).collect::<Vec<_>>()})
}

/// `/apis/<group>`.
pub fn api_group(group: &str) -> Option<Value> {
    GROUPS.contains(&group).then(|| {
        let mut g = group_json(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

/// (subresource, group, version, kind, verbs) of a subresource.
fn subresource_info(
    r: &ResourceInfo,
    sub: &str,
) -> (&'static str, &'static str, &'static str, Vec<&'static str>) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale", vec!["get", "patch", "update"]),
        "binding" => ("", "v1", "Binding", vec!["create"]),
        "log" => ("", "v1", "Pod", vec!["get"]),
        "exec" => ("", "v1", "PodExecOptions", vec!["create", "get"]),
        "attach" => ("", "v1", "PodAttachOptions", vec!["create", "get"]),
        "portforward" => ("", "v1", "PodPortForwardOptions", vec!["create", "get"]),
        "finalize" => (r.group, "v1", r.kind, vec!["update"]),
        _ => (r.group, "v1", r.kind, vec!["get", "patch", "update"]),
    }
}

/// `/api/v1` or `/apis/<g>/v1` (`APIResourceList`).
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if version != "v1" || (!group.is_empty() && !GROUPS.contains(&group)) {
        return None;
    }
    let mut resources = Vec::new();
    for r in in_group(group) {
        let mut e = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        resources.push(e);
        for sub in r.subresources {
            let (g, v, k, verbs) = subresource_info(r, sub);
            let mut s = json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": k, "verbs": verbs});
            if g != r.group {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            resources.push(s);
        }
    }
    let gv = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_group(group: &str) -> Value {
    let resources: Vec<Value> = in_group(group)
        .map(|r| {
            let mut e = json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                e["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                e["categories"] = json!(r.categories);
            }
            if !r.subresources.is_empty() {
                let subs: Vec<Value> = r
                    .subresources
                    .iter()
                    .map(|sub| {
                        let (g, v, k, verbs) = subresource_info(r, sub);
                        json!({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": verbs})
                    })
                    .collect();
                e["subresources"] = json!(subs);
            }
            e
        })
        .collect();
    let mut meta = json!({"creationTimestamp": null});
    if !group.is_empty() {
        meta["name"] = json!(group);
    }
    json!({"metadata": meta, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
}

/// Aggregated discovery for `/api` (`core`) or `/apis`.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("")]
    } else {
        GROUPS.iter().map(|g| aggregated_group(g)).collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resources_have_short_names() {
        let l = resource_list("", "v1").expect("core");
        let pods = l["resources"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == "pods"))
            .cloned()
            .expect("pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let scale = resource_list("apps", "v1").and_then(|l| {
            l["resources"]
                .as_array()
                .and_then(|a| a.iter().find(|r| r["name"] == "deployments/scale").cloned())
        });
        assert_eq!(
            scale.map(|s| s["group"].clone()),
            Some(json!("autoscaling"))
        );
        assert!(resource_list("nope", "v1").is_none());
        assert_eq!(aggregated(false)["items"].as_array().map(Vec::len), Some(4));
    }
}
