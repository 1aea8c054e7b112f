//! Deletes: finalizers, graceful pod deletion, namespace termination, cascading
//! deletion of owned objects, and delete-collection.

use serde_json::{json, Value};

use super::read::{list_object, Filter};
use super::{required_name, store_err, strategy, ApiRequest, ApiResponse, Registry};
use crate::resources::{by_kind, Kind, ResourceInfo};
use crate::status::{ApiError, ApiResult};
use crate::store::KeyValue;
use crate::timeutil::{now_rfc3339, unix_seconds};

const UNDELETABLE: &[&str] = &["default", "kube-system", "kube-public"];

fn rfc3339_in(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix_seconds() + secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now_rfc3339())
}

impl Registry {
    /// DELETE one object.
    pub(super) fn delete(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let name = required_name(req)?.to_string();
        let old = self.load(res, req.namespace.as_deref(), &name)?;
        if let Some(pre) = req.body.as_ref().and_then(|b| b.get("preconditions")) {
            let uid = old
                .value
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Some(want) = pre.get("uid").and_then(Value::as_str) {
                if want != uid {
                    return Err(ApiError::conflict_msg(res.group, res.plural, &name, &format!(
                        "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                    )));
                }
            }
            if let Some(want) = pre.get("resourceVersion").and_then(Value::as_str) {
                if want != old.mod_revision.to_string() {
                    return Err(ApiError::conflict_msg(res.group, res.plural, &name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                        old.mod_revision
                    )));
                }
            }
        }
        let grace = req.options.grace_period_seconds.or_else(|| {
            req.body
                .as_ref()
                .and_then(|b| b.get("gracePeriodSeconds"))
                .and_then(Value::as_i64)
        });
        self.delete_kv(req, res, old, grace)
    }

    fn mark(
        &self,
        req: &ApiRequest,
        res: &ResourceInfo,
        old: &KeyValue,
        grace: i64,
        extra: impl FnOnce(&mut Value),
    ) -> ApiResult<ApiResponse> {
        let mut new = old.value.clone();
        if new.pointer("/metadata/deletionTimestamp").is_none() || grace == 0 {
            new["metadata"]["deletionTimestamp"] = json!(rfc3339_in(grace));
            new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        }
        extra(&mut new);
        let name = super::name_of(&old.value).to_string();
        if req.options.dry_run {
            return Ok(ApiResponse::ok(strategy::from_storage(res, new)));
        }
        let kv = self
            .store
            .update(&old.key, new, Some(old.mod_revision))
            .map_err(|e| store_err(res, &name, e))?;
        Ok(ApiResponse::ok(strategy::from_storage(res, kv.value)))
    }

    fn delete_kv(
        &self,
        req: &ApiRequest,
        res: &ResourceInfo,
        old: KeyValue,
        grace: Option<i64>,
    ) -> ApiResult<ApiResponse> {
        let name = super::name_of(&old.value).to_string();
        let kind = strategy::storage_kind(res.id);
        if kind == Kind::Namespace {
            if UNDELETABLE.contains(&name.as_str()) {
                return Err(ApiError::forbidden(format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                )));
            }
            let out = self.mark(req, res, &old, 0, |ns| {
                ns["status"]["phase"] = json!("Terminating")
            })?;
            if !req.options.dry_run {
                self.enqueue_namespace(&name);
            }
            return Ok(out);
        }
        let has_finalizers = old
            .value
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            return self.mark(req, res, &old, 0, |_| {});
        }
        if kind == Kind::Pod {
            let bound = old
                .value
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            let phase = old
                .value
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            let terminal = phase == "Succeeded" || phase == "Failed";
            let default_grace = old
                .value
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            let g = grace.unwrap_or(default_grace);
            if bound && !terminal && g > 0 {
                return self.mark(req, res, &old, g, |_| {});
            }
        }
        if req.options.dry_run {
            return Ok(ApiResponse::ok(strategy::from_storage(res, old.value)));
        }
        let kv = self
            .store
            .delete(&old.key, Some(old.mod_revision))
            .map_err(|e| store_err(res, &name, e))?;
        if req.options.propagation_policy.as_deref() != Some("Orphan") {
            self.delete_dependents(&kv.value);
        }
        Ok(ApiResponse::ok(strategy::from_storage(res, kv.value)))
    }

    /// Cascade: delete pods, replicasets and endpointslices owned by `owner`.
    fn delete_dependents(&self, owner: &Value) {
        let (Some(uid), Some(ns)) = (
            owner.pointer("/metadata/uid").and_then(Value::as_str),
            super::namespace_of(owner),
        ) else {
            return;
        };
        for kind in [Kind::ReplicaSet, Kind::Pod, Kind::EndpointSlice] {
            let res = by_kind(kind);
            let Ok(list) = self.store.list(&res.prefix(Some(ns))) else {
                continue;
            };
            for kv in list.items {
                let owned = kv
                    .value
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                    });
                if owned {
                    let req = internal_request(res, Some(ns));
                    if let Err(e) = self.delete_kv(&req, res, kv, None) {
                        tracing::warn!("cascading delete failed: {e}");
                    }
                }
            }
        }
    }

    /// DELETE a collection.
    pub(super) fn delete_collection(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let filter = Filter::from_request(req)?;
        let (items, rev) = self.matching(req, &filter)?;
        let mut deleted = Vec::new();
        for (key, _) in items {
            let Ok(Some(kv)) = self.store.get(&key) else {
                continue;
            };
            match self.delete_kv(req, res, kv, req.options.grace_period_seconds) {
                Ok(r) => deleted.push(r.body),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ApiResponse::ok(list_object(res, deleted, rev, None, None)))
    }

    /// Delete everything in a terminating namespace, then the namespace itself.
    pub fn finalize_namespace(&self, ns: &str) -> ApiResult<()> {
        for res in crate::resources::RESOURCES
            .iter()
            .filter(|r| r.namespaced && r.id != Kind::EventV1)
        {
            let list = self
                .store
                .list(&res.prefix(Some(ns)))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            for kv in list.items {
                let name = super::name_of(&kv.value).to_string();
                match self.store.delete(&kv.key, None) {
                    Ok(_) => {}
                    Err(crate::store::StoreError::NotFound(_)) => {}
                    Err(e) => return Err(store_err(res, &name, e)),
                }
            }
        }
        let res = by_kind(Kind::Namespace);
        match self.store.delete(&res.key(None, ns), None) {
            Ok(_) | Err(crate::store::StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(store_err(res, ns, e)),
        }
    }
}

/// A request the registry makes to itself.
pub fn internal_request(res: &'static ResourceInfo, ns: Option<&str>) -> ApiRequest {
    ApiRequest {
        verb: super::Verb::Delete,
        resource: res,
        namespace: ns.map(String::from),
        name: None,
        subresource: None,
        options: Default::default(),
        body: None,
        user: "system:apiserver".into(),
    }
}
