//! The `pods/binding` subresource: assign a pod to a node (what a scheduler posts).

use serde_json::{json, Value};

use super::{required_name, store_err, ApiRequest, ApiResponse, Registry};
use crate::status::{success_status, ApiError, ApiResult};
use crate::store::StoreError;
use crate::timeutil::now_rfc3339;

impl Registry {
    /// POST pods/<name>/binding.
    pub(super) fn bind(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let name = required_name(req)?.to_string();
        let body = req.body.clone().unwrap_or(json!({}));
        let node = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                &name,
                vec![super::validation::required("target.name", "")],
            ));
        }
        let old = self.load(res, req.namespace.as_deref(), &name)?;
        if let Some(cur) = old
            .value
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict_msg(
                "",
                "pods/binding",
                &name,
                &format!("pod {name} is already assigned to node {cur:?}"),
            ));
        }
        let mut new = old.value.clone();
        new["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()});
        let status = new.get_mut("status").and_then(Value::as_object_mut);
        if let Some(st) = status {
            let conds = st.entry("conditions").or_insert_with(|| json!([]));
            if let Some(a) = conds.as_array_mut() {
                a.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                a.push(cond);
            }
        }
        if !req.options.dry_run {
            self.store
                .update(&old.key, new, Some(old.mod_revision))
                .map_err(|e| match e {
                    StoreError::Conflict { .. } => ApiError::conflict(res.group, res.plural, &name),
                    other => store_err(res, &name, other),
                })?;
        }
        let uid = old.value.pointer("/metadata/uid").and_then(Value::as_str);
        Ok(ApiResponse {
            code: 201,
            body: success_status("", "pods", &name, uid),
            warnings: Vec::new(),
        })
    }
}
