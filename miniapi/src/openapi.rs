//! OpenAPI v3 documents, as far as kubectl needs them.
//!
//! kubectl 1.32 decides whether to use server-side field validation
//! (`fieldValidation=Strict`) by looking, in `/openapi/v3/<group-version>`, for a
//! PATCH operation tagged with the kind's `x-kubernetes-group-version-kind` that
//! lists a `fieldValidation` parameter; client-side apply checks the same operation
//! accepts `application/strategic-merge-patch+json`. These documents describe
//! exactly those operations. They carry no object schemas, so kubectl computes
//! strategic merge patches from its built-in types (the correct list merge keys)
//! and `kubectl explain` is not supported yet.
//!
//! `/openapi/v2` is an empty (but valid) protobuf document: kubectl falls back to it
//! for a kind it finds in no v3 document (`apiVersion: v1, kind: Deployment`), skips
//! client-side validation for a kind the document does not define, and goes on to
//! print the real cluster's `no matches for kind ... in version ...`.

use serde_json::{json, Map, Value};

use crate::discovery::GIT_VERSION;
use crate::resources::{in_group, ResourceInfo, GROUPS};

const HASH: &str = "minik-v1";

fn gv_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".into()
    } else {
        format!("apis/{group}/v1")
    }
}

/// `/openapi/v3`: the group-version index.
pub fn root() -> Value {
    let mut paths = Map::new();
    for g in std::iter::once("").chain(GROUPS.iter().copied()) {
        let p = gv_path(g);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={HASH}")}),
        );
    }
    json!({"paths": paths})
}

fn query_param(name: &str, description: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn op_id(verb: &str, r: &ResourceInfo) -> String {
    let group = if r.group.is_empty() {
        "Core".to_string()
    } else {
        r.group
            .split('.')
            .next()
            .unwrap_or("")
            .chars()
            .enumerate()
            .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
            .collect()
    };
    format!(
        "{verb}{group}V1{}{}",
        if r.namespaced { "Namespaced" } else { "" },
        r.kind
    )
}

fn operations(r: &ResourceInfo) -> Value {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let patch_schema = json!({"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}});
    let mut content = Map::new();
    for ct in [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        content.insert(ct.into(), patch_schema.clone());
    }
    let write_params = vec![
        query_param("dryRun", "When present, indicates that modifications should not be persisted.", "string"),
        query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes.", "string"),
        query_param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.", "string"),
    ];
    let mut patch_params = write_params.clone();
    patch_params.push(query_param(
        "force",
        "Force is going to \"force\" Apply requests.",
        "boolean",
    ));
    let ok = json!({"200": {"description": "OK"}});
    json!({
        "get": {"operationId": op_id("read", r), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
        "put": {"operationId": op_id("replace", r), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": write_params, "responses": ok},
        "delete": {"operationId": op_id("delete", r), "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": ok},
        "patch": {
            "operationId": op_id("patch", r),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": patch_params,
            "requestBody": {"content": content, "required": true},
            "responses": ok,
        },
        "parameters": [
            {"name": "name", "in": "path", "description": format!("name of the {}", r.kind), "required": true, "schema": {"type": "string", "uniqueItems": true}},
        ],
    })
}

/// The content type of `/openapi/v2` (kube-apiserver's; kubectl asks for
/// `...spec.v2@v1.0+protobuf`, but `@` is not valid in a response media type).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` as gnostic's `openapi_v2.Document` protobuf: `swagger: "2.0"` and
/// `info {title, version}`, no paths and no definitions.
pub fn v2_document() -> Vec<u8> {
    fn field(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
        // Length-delimited (wire type 2); every length here is < 128 (one-byte varint).
        out.push((tag << 3) | 2);
        out.push(u8::try_from(bytes.len()).unwrap_or(0));
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(1, b"Kubernetes", &mut info);
    field(2, GIT_VERSION.as_bytes(), &mut info);
    let mut doc = Vec::new();
    field(1, b"2.0", &mut doc);
    field(2, &info, &mut doc);
    doc
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/v1`.
pub fn group_version(path: &str) -> Option<Value> {
    let group = match path.trim_matches('/') {
        "api/v1" => "",
        p => {
            let g = p.strip_prefix("apis/")?.strip_suffix("/v1")?;
            GROUPS.iter().copied().find(|x| *x == g)?
        }
    };
    let mut paths = Map::new();
    for r in in_group(group) {
        let base = format!("/{}", gv_path(group));
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        paths.insert(item, operations(r));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {
            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch": {"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}
        }},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_ops_advertise_field_validation() {
        let doc = group_version("api/v1").expect("core");
        let op = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Service");
        assert!(op["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x["name"] == "fieldValidation")));
        assert!(group_version("apis/apps/v1").is_some());
        assert!(group_version("apis/nope/v1").is_none());
        assert!(root()["paths"]["apis/apps/v1"]["serverRelativeURL"].is_string());
        assert_eq!(&v2_document()[..5], b"\x0a\x032.0");
    }
}
