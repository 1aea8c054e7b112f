//! Writes: create and update (PUT, including the `status`, `scale` and `finalize`
//! subresources); the shared update path used by PATCH ([`super::patching`]).

use rand::Rng;
use serde_json::{json, Value};

use super::{
    apps, check_gvk, decode, name_of, namespace_of, required_name, store_err, strategy, ApiRequest,
    ApiResponse, Registry,
};
use crate::allocators::InUse;
use crate::patch;
use crate::resources::{by_kind, Kind, ResourceInfo};
use crate::status::{ApiError, ApiResult};
use crate::store::KeyValue;
use crate::timeutil::now_rfc3339;

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| NAME_CHARS[rng.random_range(0..NAME_CHARS.len())] as char)
        .collect()
}

fn meta_mut(obj: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let m = obj.as_object_mut()?;
    let meta = m.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
}

fn not_object() -> ApiError {
    ApiError::bad_request("the body of the request must be a JSON or YAML object")
}

fn spec_view(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    c
}

impl Registry {
    /// The namespace a write goes to: from the path, checked against the body.
    fn target_namespace(&self, req: &ApiRequest, obj: &mut Value) -> ApiResult<Option<String>> {
        if !req.resource.namespaced {
            if let Some(m) = meta_mut(obj) {
                m.remove("namespace");
            }
            return Ok(None);
        }
        let path_ns = req.namespace.clone().unwrap_or_else(|| "default".into());
        match namespace_of(obj) {
            Some(ns) if !ns.is_empty() && ns != path_ns => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )),
            _ => {
                meta_mut(obj).ok_or_else(not_object)?.insert("namespace".into(), json!(path_ns));
                Ok(Some(path_ns))
            }
        }
    }

    fn check_namespace_usable(&self, ns: &str) -> ApiResult<()> {
        let res = by_kind(Kind::Namespace);
        let kv = self
            .store
            .get(&res.key(None, ns))
            .map_err(|e| store_err(res, ns, e))?
            .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
        if kv.value.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
            return Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// Service allocation against every other stored Service.
    fn allocate_service(&self, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        let res = by_kind(Kind::Service);
        let all = self
            .store
            .list(&res.prefix(None))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let me = (
            namespace_of(obj).unwrap_or("").to_string(),
            name_of(obj).to_string(),
        );
        let used = InUse::from_services(all.items.iter().map(|kv| &kv.value), Some((&me.0, &me.1)));
        let causes = super::services::allocate(obj, &self.alloc, &used, old);
        if !causes.is_empty() {
            return Err(ApiError::invalid(res.group, res.kind, &me.1, causes));
        }
        Ok(())
    }

    /// POST.
    pub(super) fn create(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let mut obj = req
            .body
            .clone()
            .ok_or_else(|| ApiError::bad_request("request body is required"))?;
        check_gvk(res, &mut obj)?;
        let (obj, warnings) = decode(res, &obj, req.options.field_validation)?;
        self.create_object(req, obj, warnings, true)
    }

    /// Create from an already decoded object (also used by PUT-creates and apply).
    pub(super) fn create_object(
        &self,
        req: &ApiRequest,
        obj: Value,
        warnings: Vec<String>,
        record: bool,
    ) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let mut obj = strategy::to_storage(res, obj);
        let ns = self.target_namespace(req, &mut obj)?;
        let kind = strategy::storage_kind(res.id);
        {
            let meta = meta_mut(&mut obj).ok_or_else(not_object)?;
            let has_name = meta
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name {
                match meta
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|g| !g.is_empty())
                {
                    Some(g) => {
                        let n = format!("{g}{}", random_suffix());
                        meta.insert("name".into(), json!(n));
                    }
                    None => {
                        return Err(ApiError::invalid(
                            res.group,
                            res.kind,
                            "",
                            vec![super::validation::required(
                                "metadata.name",
                                "name or generateName is required",
                            )],
                        ))
                    }
                }
            }
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                meta.remove(k);
            }
            if record {
                meta.remove("managedFields");
            }
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
            if strategy::uses_generation(kind) {
                meta.insert("generation".into(), json!(1));
            }
        }
        if let Some(n) = &ns {
            self.check_namespace_usable(n)?;
        }
        strategy::prepare_create(kind, &mut obj);
        let name = name_of(&obj).to_string();
        let causes = strategy::validate(kind, &obj, None);
        if !causes.is_empty() {
            return Err(ApiError::invalid(res.group, res.kind, &name, causes));
        }
        let _guard = (kind == Kind::Service).then(|| self.alloc.guard());
        if kind == Kind::Service {
            self.allocate_service(&mut obj, None)?;
        }
        if record {
            let manager = req
                .options
                .field_manager
                .clone()
                .unwrap_or_else(|| "unknown".into());
            patch::apply::record_update(kind, None, &mut obj, &manager, &res.api_version());
        }
        let body = if req.options.dry_run {
            obj
        } else {
            let kv = self
                .store
                .create(&res.key(ns.as_deref(), &name), obj)
                .map_err(|e| store_err(res, &name, e))?;
            if kind == Kind::Namespace {
                self.populate_namespace(&name);
            }
            kv.value
        };
        Ok(ApiResponse {
            code: 201,
            body: strategy::from_storage(res, body),
            warnings,
        })
    }

    /// PUT.
    pub(super) fn update(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let name = required_name(req)?.to_string();
        let mut obj = req
            .body
            .clone()
            .ok_or_else(|| ApiError::bad_request("request body is required"))?;
        let sub = req.subresource.as_deref();
        if sub == Some("scale") {
            let old = self.load(res, req.namespace.as_deref(), &name)?;
            let mut new = old.value.clone();
            apps::apply_scale(&mut new, &obj)
                .map_err(|c| ApiError::invalid("autoscaling", "Scale", &name, vec![c]))?;
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            let out = self.write_update(
                req,
                &old,
                new,
                rv,
                req.options.field_manager.as_deref(),
                Vec::new(),
            )?;
            return Ok(ApiResponse {
                body: apps::to_scale(&out.body),
                ..out
            });
        }
        check_gvk(res, &mut obj)?;
        if name_of(&obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&obj)
            )));
        }
        let (obj, warnings) = decode(res, &obj, req.options.field_validation)?;
        let obj = strategy::to_storage(res, obj);
        let old = match self
            .store
            .get(&res.key(req.namespace.as_deref(), &name))
            .map_err(|e| store_err(res, &name, e))?
        {
            Some(kv) => kv,
            None if strategy::allow_create_on_update(res.id) && sub.is_none() => {
                let back = strategy::from_storage(res, obj);
                return self.create_object(req, back, warnings, true);
            }
            None => return Err(ApiError::not_found(res.group, res.plural, &name)),
        };
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        self.write_update(
            req,
            &old,
            obj,
            rv,
            req.options.field_manager.as_deref(),
            warnings,
        )
    }

    pub(super) fn load(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<KeyValue> {
        self.store
            .get(&res.key(ns, name))
            .map_err(|e| store_err(res, name, e))?
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))
    }

    /// The shared update path: `new` is in storage form; `rv` an explicit precondition.
    pub(super) fn write_update(
        &self,
        req: &ApiRequest,
        old: &KeyValue,
        mut new: Value,
        rv: Option<u64>,
        manager: Option<&str>,
        warnings: Vec<String>,
    ) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let kind = strategy::storage_kind(res.id);
        let name = name_of(&old.value).to_string();
        if let Some(rv) = rv {
            if rv != old.mod_revision {
                return Err(ApiError::conflict(res.group, res.plural, &name));
            }
        }
        let sub = req.subresource.as_deref();
        match sub {
            Some("status") => {
                let mut merged = old.value.clone();
                merged["status"] = new.get("status").cloned().unwrap_or(json!({}));
                if let (Some(m), Some(nm)) = (
                    merged.get_mut("metadata").and_then(Value::as_object_mut),
                    new.get("metadata"),
                ) {
                    for k in ["labels", "annotations"] {
                        if let Some(v) = nm.get(k) {
                            m.insert(k.into(), v.clone());
                        }
                    }
                }
                new = merged;
            }
            Some("finalize") => {
                let mut merged = old.value.clone();
                merged["spec"] = new.get("spec").cloned().unwrap_or(json!({}));
                new = merged;
            }
            _ if res.has_status() => match old.value.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            _ => {}
        }
        {
            let old_meta = old.value.get("metadata").cloned().unwrap_or(json!({}));
            let meta = meta_mut(&mut new).ok_or_else(not_object)?;
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            if manager.is_some() && !meta.contains_key("managedFields") {
                if let Some(mf) = old_meta.get("managedFields") {
                    meta.insert("managedFields".into(), mf.clone());
                }
            }
            meta.remove("resourceVersion");
        }
        if sub.is_none() {
            strategy::prepare_update(kind, &old.value, &mut new);
        }
        if strategy::uses_generation(kind) && spec_view(&old.value) != spec_view(&new) {
            let g = old
                .value
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            if let Some(m) = meta_mut(&mut new) {
                m.insert("generation".into(), json!(g));
            }
        }
        let causes = strategy::validate(kind, &new, Some(&old.value));
        if !causes.is_empty() {
            return Err(ApiError::invalid(res.group, res.kind, &name, causes));
        }
        let _guard = (kind == Kind::Service).then(|| self.alloc.guard());
        if kind == Kind::Service && sub.is_none() {
            self.allocate_service(&mut new, Some(&old.value))?;
        }
        if let Some(m) = manager {
            patch::apply::record_update(kind, Some(&old.value), &mut new, m, &res.api_version());
        }
        if req.options.dry_run {
            return Ok(ApiResponse {
                code: 200,
                body: strategy::from_storage(res, new),
                warnings,
            });
        }
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty())
            && kind != Kind::Namespace;
        let key = old.key.clone();
        let kv = if finalized {
            self.store.delete(&key, Some(old.mod_revision))
        } else {
            self.store.update(&key, new, Some(old.mod_revision))
        }
        .map_err(|e| store_err(res, &name, e))?;
        Ok(ApiResponse {
            code: 200,
            body: strategy::from_storage(res, kv.value),
            warnings,
        })
    }
}
